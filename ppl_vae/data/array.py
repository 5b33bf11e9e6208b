"""A user's own ``.npy`` / ``.npz`` array, with optional factors and labels.

Shapes: ``(n, D)`` vectors are kept as they are; ``(n, C, H, W)`` and higher are
kept. A three-axis array ``(n, A, B)`` is read as grey images and gets a channel
axis, ``(n, 1, A, B)``, when its values look like an image's (in [0, 1], or
integers in 0..255, on its first rows; a :class:`PplVaeWarning` says so), and is
kept as it is otherwise (a sequence ``(n, T, D)`` of real values) or with
``keep_shape=True`` (``--keep-shape``).
Channel-last images ``(n, H, W, C)`` are transposed to ``(n, C, H, W)`` when
``channels_last=True``, or, by default, when the shape says so: four axes,
``C`` in (1, 3) and ``H, W > 4`` (a :class:`PplVaeWarning` names the
transposition; ``channels_last=False`` keeps such an array as it is).
Values are taken as float32 as stored (times ``scale`` when given); they must
be finite, and in [0, 1] for ``binarize="static"`` or ``"dynamic"``. They are
kept in the smallest exact form (bits for 0/1, uint8 for integers 0..255,
else float32), or, with ``storage="mmap"``, not loaded at all: the file is
memory-mapped (a ``.npy``, or an uncompressed ``np.savez`` member) and each
batch gathers its rows from the map, so the file may be larger than memory.

Other arrays of an ``.npz`` become per-example inputs with ``fields``
(``--fields lengths,index``): ``model(x, lengths=..., index=...)`` through
``fit(inputs=[...])``; each must have one row per example (integers as int64,
booleans as bool, the rest as float32), split and subset with the examples.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ppl_vae.data.common import assemble, check_count, draw_subset, resolve_path, split_options
from ppl_vae.data.compact import compact
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.npz_member import NpzMember
from ppl_vae.data.storage import MappedStorage, Storage
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.registry import DATA_SOURCES

_HINT = "pass path= (--data-path) a .npy or .npz file"


@DATA_SOURCES.register(
    "array", "your own .npy/.npz array (path=), optional factors/labels",
    key="the data's key in an .npz (default: its only array not named by --labels/--factors)",
    labels="integer labels (n,), a key of the .npz or a .npy/.npz path (default: none)",
    factors="integer factors (n, F), a key of the .npz or a .npy/.npz path (default: none)",
    factor_names="names of the factor columns, comma-separated (default: factor_0, ...)",
    scale="multiply the values by this, e.g. 1/255 for uint8 images (default: 1)",
    channels_last="the images are (n, H, W, C); --no-channels-last keeps the axes as stored "
                  "(default: detected, with a note on stderr, when the shape is (n, H, W, 1 "
                  "or 3) with H, W > 4)",
    keep_shape="keep an (n, A, B) array as it is (sequences, tables) rather than as grey "
               "images (n, 1, A, B) (default: images when the values look like pixels, with "
               "a note on stderr)",
    fields="other arrays of the .npz to pass as per-example inputs, comma-separated, e.g. "
           "lengths,index (then --inputs lengths,index) (default: none)")
def load_array(
    *,
    path: str | None = None,
    key: str | None = None,
    factors: str | None = None,
    labels: str | None = None,
    factor_names: list[str] | None = None,
    scale: float | None = None,
    channels_last: bool | None = None,
    keep_shape: bool | None = None,
    fields: str | list[str] | None = None,
    n: int | str | None = None,
    **shared: object,
) -> Dataset:
    """Load a user array, subset and split at random.

    Args:
        path: A ``.npy`` or ``.npz`` file with the examples.
        key: The array's key in an ``.npz``; default: its only array not
            named by ``factors``/``labels``.
        factors: Integer factor classes ``(n, F)`` (or ``(n,)``): a key of the
            same ``.npz``, or the path of a ``.npy``/``.npz`` holding one array.
            Sizes are ``max + 1`` per column.
        labels: Integer labels ``(n,)``, given the same way as ``factors``.
        factor_names: Names of the factor columns (default ``factor_0`` ...).
        scale: Multiply the values by this (e.g. ``1/255`` for uint8 images).
        channels_last: ``True``: the array is ``(n, H, W, C)`` images, transpose
            them to ``(n, C, H, W)``; ``False``: keep the axes as stored; ``None``
            (default): transpose when the shape is channel-last (see the module
            docstring), with a warning. The spec records the choice made.
        keep_shape: ``True``: keep an ``(n, A, B)`` array's shape; ``False``: give it a
            channel axis; ``None`` (default): by its values (module docstring). Recorded
            as the choice made.
        fields: Names of other arrays of the ``.npz`` to carry as per-example inputs
            (a list, or one comma-separated string).
        n: Total examples (default and ``"all"``: all).
        **shared: The options every source takes (:class:`~ppl_vae.config.SplitOptions`);
            ``storage``: ``"auto"`` (loaded, smallest exact form), ``"float32"``
            (loaded as float32) or ``"mmap"`` (memory-mapped, read per batch;
            ``binarize="static"`` then keeps a packed copy in memory).
    """
    split = split_options("array", shared, ("mmap",))
    n = check_count(n)
    file = resolve_path(path, "array", _HINT)
    names = _field_names(fields)
    data, extra, channels_last, keep_shape = _read_data(
        file, key, {factors, labels, *names} - {None}, channels_last, keep_shape,
        split.storage == "mmap")
    per_example = {name: _field(extra, name, file, len(data)) for name in names}
    fac, factors = _extra(extra, factors, file, "factors", len(data))
    lab, labels = _extra(extra, labels, file, "labels", len(data))
    if fac is not None and fac.ndim == 1:
        fac = fac[:, None]
    if lab is not None and lab.ndim != 1:
        raise PplVaeError(f"labels must have shape ({len(data)},), got {lab.shape}")
    columns = _names(factor_names, fac)
    n, train, test = draw_subset(n, len(data), len(data), str(file), split)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise PplVaeError(f"option scale must be a number (e.g. 1/255), got {scale!r}")
    factor = float(np.float32(1.0 if scale is None else scale))
    transpose = (0, 3, 1, 2) if channels_last else None
    spec = {"name": "array", "path": str(file), "key": key, "factors": factors, "labels": labels,
            "factor_names": None if factor_names is None else [str(a) for a in factor_names],
            "scale": scale, "channels_last": channels_last, "n": n}
    if keep_shape is not None:  # (older specs have neither entry: they load as before)
        spec["keep_shape"] = keep_shape
    if names:
        spec["fields"] = names

    def stored(rows: np.ndarray) -> Storage:
        if split.storage == "mmap":
            mapped = cast(np.memmap, data)  # _open(..., mmap=True) maps every array
            return MappedStorage(mapped, rows, transpose=transpose, multiplier=factor)
        x = data[rows] if transpose is None else data[rows].transpose(transpose)
        return compact(x, multiplier=factor)

    return assemble(
        spec, split, stored(train), stored(test),
        train_factors=None if fac is None else fac[train],
        test_factors=None if fac is None else fac[test],
        factor_names=columns,
        factor_sizes=None if fac is None else (fac.max(axis=0) + 1).tolist(),
        train_labels=None if lab is None else lab[train],
        test_labels=None if lab is None else lab[test],
        train_fields={k: torch.from_numpy(v[train]) for k, v in per_example.items()},
        test_fields={k: torch.from_numpy(v[test]) for k, v in per_example.items()},
    )


_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04", b"PK\x05\x06")  # .npy, .npz (a zip, or empty)


def _open(file: Path, mmap: bool = False) -> dict[str, np.ndarray]:
    """All arrays of a ``.npy`` (key ``""``) or ``.npz``; memory-mapped with ``mmap``."""
    _check_numpy_file(file)
    try:
        loaded = np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
        if isinstance(loaded, np.ndarray):
            return {"": loaded}
        with loaded:
            return {k: _mapped_member(file, k) if mmap else loaded[k] for k in loaded.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise PplVaeError(f"{file} holds Python objects (dtype object), not numbers; save "
                              "a numeric array (e.g. numpy.save(path, x.astype('float32')))") from None
        raise PplVaeError(f"cannot read {file} as .npy/.npz: {error}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise PplVaeError(f"cannot read {file} as .npy/.npz: {error}") from None


def _mapped_member(file: Path, key: str) -> np.memmap:
    """The memory map of an uncompressed ``.npz`` member, or a one-line error."""
    mapped = NpzMember(file, key).mapped
    if mapped is None:
        raise PplVaeError(f"{file}: array {key!r} is compressed and cannot be memory-mapped; "
                          "save it with numpy.save (.npy) or numpy.savez, or drop storage=mmap")
    return mapped


def _check_numpy_file(file: Path) -> None:
    """Refuse a file that does not start as a ``.npy`` or a zip (``.npz``) does."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(64)
    except OSError as error:
        raise PplVaeError(f"cannot read {file}: {error.strerror}") from None
    if head.startswith(_SIGNATURES):
        return
    if not head:
        kind = "it is empty"
    else:
        try:
            head.decode("utf-8")
            kind = "it holds text; load a text table with numpy.loadtxt first"
        except UnicodeDecodeError:
            kind = "it does not start with the .npy or .npz signature"
    raise PplVaeError(f"cannot read {file}: it is not a NumPy file ({kind}); write the array "
                      "with numpy.save (.npy) or numpy.savez (.npz)")


def _read_data(
    file: Path, key: str | None, others: set, channels_last: bool | None,
    keep_shape: bool | None, mmap: bool
) -> tuple[np.ndarray, dict, bool, bool | None]:
    """The data array (``(n, H, W)`` images given a channel axis), the file's other arrays,
    whether it is channel-last (to transpose by ``(0, 3, 1, 2)``) and whether a three-axis
    array kept its shape (None for other shapes)."""
    arrays = _open(file, mmap)
    if key is None:
        candidates = [k for k in arrays if k not in others]
        if len(candidates) != 1:
            raise PplVaeError(
                f"{file} holds arrays {', '.join(arrays)}; pass key= (--key) to choose the data"
            )
        key = candidates[0]
    if key not in arrays:
        raise PplVaeError(f"{file} has no array {key!r}; it has {', '.join(arrays) or 'none'}")
    data = arrays[key]
    if data.dtype.kind not in "biuf":
        raise PplVaeError(f"{file}: array {key!r} must be numeric, got dtype {data.dtype}")
    if data.ndim < 2:
        raise PplVaeError(
            f"{file}: array {key!r} must be (n, ...) with at least 2 axes, got {data.shape}"
        )
    if data.size == 0:
        raise PplVaeError(f"{file}: array {key!r} is empty {data.shape}; give it some examples")
    transposed = _channels_last(data, channels_last, file, key)
    keep = _keep_shape(data, keep_shape, file, key)
    return (data[:, None] if keep is False else data), arrays, transposed, keep


def _keep_shape(data: np.ndarray, keep_shape: bool | None, file: Path, key: str) -> bool | None:
    """Whether an ``(n, A, B)`` array keeps its shape: as asked, else unless its first rows'
    values look like pixels (then a note names the channel axis added); None otherwise."""
    if keep_shape is not None and not isinstance(keep_shape, bool):
        raise PplVaeError(f"option keep_shape must be True, False or None, got {keep_shape!r}")
    if data.ndim != 3:
        return None
    if keep_shape is not None:
        return keep_shape
    head = np.asarray(data[:256])
    pixels = (0 <= head.min() and head.max() <= (255 if head.dtype.kind in "biu" else 1))
    if not pixels:
        return True
    name = f"{file}" if key == "" else f"{file}: array {key!r}"
    warnings.warn(f"{name} of shape {tuple(data.shape)} is read as grey images "
                  f"{(data.shape[0], 1, *data.shape[1:])}; pass keep_shape=True (--keep-shape) "
                  "to keep it as it is (sequences, tables)", PplVaeWarning, stacklevel=4)
    return False


def _field_names(fields: str | list[str] | None) -> list[str]:
    """``"lengths,index"`` or ``["lengths", "index"]`` as a list of names."""
    if fields is None:
        return []
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [str(name).strip() for name in names if str(name).strip()]
    if len(set(names)) != len(names):
        raise PplVaeError(f"option fields names an array twice: {names}")
    return names


def _field(arrays: dict, name: str, file: Path, n: int) -> np.ndarray:
    """A per-example input array of the file: one row per example, numbers."""
    if name not in arrays:
        raise PplVaeError(f"fields: {file} has no array {name!r}; it has "
                          f"{', '.join(k for k in arrays if k) or 'one unnamed array (.npy)'}")
    value = np.asarray(arrays[name])
    if value.dtype.kind not in "biuf" or value.ndim < 1 or len(value) != n:
        shape = "a scalar" if value.ndim < 1 else f"shape {value.shape}"
        raise PplVaeError(f"fields: array {name!r} of {file} must have {n} rows (one per "
                          f"example) of numbers, got {shape} of dtype {value.dtype}")
    return value.astype({"b": np.bool_, "i": np.int64, "u": np.int64}.get(value.dtype.kind,
                                                                         np.float32))


def _channels_last(data: np.ndarray, channels_last: bool | None, file: Path, key: str) -> bool:
    """Whether ``data`` holds ``(n, H, W, C)`` images, as asked or detected (with a warning)."""
    if channels_last is not None and not isinstance(channels_last, bool):
        raise PplVaeError(f"option channels_last must be True, False or None, got "
                          f"{channels_last!r}")
    name = f"{file}" if key == "" else f"{file}: array {key!r}"
    shape = tuple(data.shape)
    if channels_last is False:
        return False
    if channels_last is None:
        if not (data.ndim == 4 and data.shape[3] in (1, 3) and min(data.shape[1:3]) > 4):
            return False
        moved = (shape[0], shape[3], shape[1], shape[2])
        warnings.warn(f"{name} of shape {shape} is read as channel-last images and transposed "
                      f"to {moved}; pass channels_last=False (--no-channels-last) to keep it",
                      PplVaeWarning, stacklevel=4)
    elif data.ndim != 4:
        raise PplVaeError(f"channels_last=True needs (n, H, W, C) images, but {name} has shape "
                          f"{shape}")
    return True


def _extra(
    arrays: dict, ref: str | None, file: Path, what: str, n: int
) -> tuple[np.ndarray | None, str | None]:
    """A factors/labels array and how the spec names it.

    ``ref`` is a key of the data file, else the path of a file with one array
    (stored in the spec as an absolute path).
    """
    if ref is None:
        return None, None
    if ref in arrays:
        return _integers(arrays[ref], what, n), ref
    other = resolve_path(ref, "array", f"{what}={ref!r} is neither a key of {file} nor a file")
    found = _open(other)
    if len(found) != 1:
        raise PplVaeError(f"{other} holds {len(found)} arrays; give a file with one array")
    return _integers(next(iter(found.values())), what, n), str(other)


def _integers(a: np.ndarray, what: str, n: int) -> np.ndarray:
    """Check an integer array with ``n`` rows of non-negative values."""
    if a.dtype.kind not in "iu":
        raise PplVaeError(f"{what} must be integer class indices, got dtype {a.dtype}")
    if a.ndim not in (1, 2) or len(a) != n:
        raise PplVaeError(f"{what} must have {n} rows (one per example), got shape {a.shape}")
    if a.size and a.min() < 0:
        raise PplVaeError(f"{what} must be non-negative class indices")
    return a.astype(np.int64)


def _names(names: list[str] | None, fac: np.ndarray | None) -> list[str] | None:
    """Factor names, checked against the number of factor columns."""
    if fac is None:
        return None
    if names is None:
        return [f"factor_{j}" for j in range(fac.shape[1])]
    if len(names) != fac.shape[1]:
        raise PplVaeError(f"factor_names has {len(names)} names for {fac.shape[1]} factors")
    return [str(name) for name in names]
