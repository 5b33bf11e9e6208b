"""Choosing a split's storage: the smallest exact form, checked in chunks.

``storage="auto"`` (every source's default) keeps values 0/1 as packed bits,
8-bit integers as uint8 (with the source's ``x / 255``-style rule), and other
values as float32; ``"float32"`` keeps the rows resident as float32 tensors
(the old form, for comparison); ``"render"`` (shapes) and ``"mmap"`` (array,
an uncompressed dsprites file) are chosen by the source. Checks run chunk by
chunk, so no float32 copy of a whole split is ever made unless asked for.
"""

from __future__ import annotations

import numpy as np
import torch

from ppl_vae.data.storage import (
    BitStorage,
    ByteStorage,
    FloatStorage,
    Storage,
    to_float,
)
from ppl_vae.errors import PplVaeError

STORAGE = ("auto", "float32")


def check_storage(storage: object, extra: tuple = ()) -> str:
    """Validate a ``storage`` option against the common forms plus a source's ``extra``."""
    allowed = (*STORAGE, *extra)
    if storage not in allowed:
        raise PplVaeError(f"option storage must be one of {', '.join(allowed)}, got {storage!r}")
    return str(storage)


def compact(raw: np.ndarray, multiplier: float = 1.0, divisor: float = 1.0) -> Storage:
    """An in-memory array whose float32 value is ``(raw * multiplier) / divisor``.

    Integers in 0..255 (and booleans) stay as uint8 bytes; anything else is
    converted once to float32. :func:`finish` then packs 0/1 data into bits.
    """
    raw = np.asarray(raw)
    if raw.dtype.kind in "biu" and (raw.size == 0 or (raw.min() >= 0 and raw.max() <= 255)):
        return ByteStorage(torch.from_numpy(np.ascontiguousarray(raw, np.uint8)),
                           multiplier, divisor)
    return FloatStorage(to_float(torch.from_numpy(np.ascontiguousarray(raw)),
                                 multiplier, divisor))


def finish(store: Storage, mode: str, storage: str, source: str,
           draws: torch.Generator | None = None) -> tuple[Storage, bool]:
    """Check a split, binarize it and settle its form; return ``(store, binary)``.

    Checks: not empty; finite; values in [0, 1] when ``mode`` binarizes.
    ``mode="static"`` stores ``1[x >= 0.5]`` as bits; ``mode="sampled"`` stores one
    draw ``x' ~ Bernoulli(x)`` per pixel as bits, from ``draws`` (seeded with the data's
    recorded seed: the same bits on every load, the "fixed binarization" of the
    literature). With ``storage="auto"``
    a resident float32 or uint8 split whose values are all 0 or 1 is packed
    into bits; ``storage="float32"`` decodes the split into one float32 tensor.
    """
    if len(store) == 0 or 0 in store.event_shape:
        raise PplVaeError(f"{source} is empty (shape {store.shape}); give it some examples")
    binary = store.binary or _scan(store, mode, source)
    if mode == "static" and not binary:
        store = _pack(store, lambda x: x >= 0.5)
        binary = True
    elif mode == "sampled" and not binary:
        store = _pack(store, lambda x: torch.bernoulli(x, generator=draws) > 0)
        binary = True
    elif binary and storage == "auto" and store.kind in ("float32", "uint8"):
        store = _pack(store, lambda x: x)
    if storage == "float32" and store.kind != "float32":
        store = FloatStorage(store[:])
    return store, binary


def _scan(store: Storage, mode: str, source: str) -> bool:
    """One chunked pass: refuse NaN/inf and, when binarizing, values outside [0, 1]."""
    bad, low, high, binary = 0, np.inf, -np.inf, True
    for x in store.support_chunks():
        finite = torch.isfinite(x)
        bad += int((~finite).sum())
        if bad:
            continue
        low, high = min(low, float(x.min())), max(high, float(x.max()))
        binary = binary and bool(((x == 0) | (x == 1)).all())
    if bad:
        raise PplVaeError(f"{source} has {bad} NaN or infinite values; clean the data first")
    if mode != "none" and (low < 0.0 or high > 1.0):
        raise PplVaeError(
            f"binarize={mode!r} needs values in [0, 1] but {source} has values in "
            f"[{low:g}, {high:g}]; rescale the data (e.g. scale=1/255) first"
        )
    return binary


def _pack(store: Storage, rule) -> BitStorage:
    """Bits of ``rule(x)`` for every row, in order, a chunk at a time."""
    return BitStorage.from_chunks((rule(x).cpu().numpy() for x in store.chunks()),
                                  store.event_shape)
