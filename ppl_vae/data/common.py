"""Helpers shared by the sources: option checks, splitting, binarization, assembly."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ppl_vae.config import SplitOptions, check_int
from ppl_vae.data.compact import check_storage, compact, finish
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.storage import Storage
from ppl_vae.errors import PplVaeError


def split_options(source: str, options: dict, storage_forms: tuple = ()) -> SplitOptions:
    """The shared options a source was given, checked: :class:`~ppl_vae.config.SplitOptions`
    (defaults and checks) and ``storage`` against the common forms plus ``storage_forms``."""
    split = SplitOptions.create(source, **options)
    check_storage(split.storage, storage_forms)
    return split


def check_count(n: object) -> int | str | None:
    """A source's ``n``: None (the source's default), ``"all"`` or an integer >= 2."""
    return n if n is None or n == "all" else check_int("n", n, 2)


def resolve_n(n: int | str | None, default: int, available: int) -> int:
    """``n`` as a count: None is the source's ``default``, ``"all"`` every ``available`` example."""
    return default if n is None else n if isinstance(n, int) else available  # else "all"


def check_n(n: int, available: int, source: str) -> int:
    """Return ``n``, or raise when the source holds fewer examples."""
    if n > available:
        raise PplVaeError(
            f"n={n} is larger than the {available} examples {source} holds; pass n <= {available}"
        )
    return n


def draw_subset(n: object, default: int, available: int, source: str,
                split: SplitOptions) -> tuple[int, np.ndarray, np.ndarray]:
    """``n`` of ``available`` examples (None: the source's ``default``, ``"all"``: every one),
    checked, drawn with ``numpy.random.default_rng(split.seed)`` and split by
    :func:`subset_split`: ``(n, train_index, test_index)``."""
    n = check_n(resolve_n(check_count(n), default, available), available, source)
    train, test = subset_split(available, n, split.test_fraction,
                               np.random.default_rng(split.seed))
    return n, train, test


def split_sizes(n: int, test_fraction: float) -> tuple[int, int]:
    """Split ``n`` into ``(n_train, n_test)`` with ``n_test = round(n * test_fraction)``."""
    n_test = round(n * test_fraction)
    if n_test < 1 or n - n_test < 1:
        raise PplVaeError(
            f"n={n} with test_fraction={test_fraction} leaves an empty train or test set; "
            "raise n or change test_fraction"
        )
    return n - n_test, n_test


def subset_split(
    available: int, n: int, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` of ``available`` indices without replacement and split them.

    Returns:
        ``(train_index, test_index)``, both int64, in random order.
    """
    n_train, _ = split_sizes(n, test_fraction)
    chosen = rng.choice(available, size=n, replace=False).astype(np.int64)
    return chosen[:n_train], chosen[n_train:]


def resolve_path(path: object, what: str, hint: str) -> Path:
    """Turn a ``path`` option into an existing absolute Path, or raise."""
    if path is None:
        raise PplVaeError(f"{what} needs path=; {hint}")
    if not isinstance(path, (str, Path)):
        raise PplVaeError(f"option path must be a string, got {type(path).__name__}")
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise PplVaeError(f"{what}: no such file or directory {resolved}; {hint}")
    return resolved


def binarize_values(x: np.ndarray, mode: str, source: str) -> np.ndarray:
    """Apply a binarization mode to float32 values.

    ``"static"`` thresholds once, deterministically: ``x' = 1[x >= 0.5]``.
    ``"dynamic"`` and ``"none"`` keep the grey levels (the trainer draws
    ``bernoulli(x)`` per batch for ``"dynamic"``). Every binarizing mode needs
    values in [0, 1]. ``"sampled"`` (one draw per stored pixel) applies to stored
    splits only (:func:`~ppl_vae.data.compact.finish`): rendered images must be 0/1.
    """
    if mode != "none" and x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise PplVaeError(
            f"binarize={mode!r} needs values in [0, 1] but {source} has values in "
            f"[{x.min():g}, {x.max():g}]; rescale the data (e.g. scale=1/255) first"
        )
    if mode == "static":
        return (x >= 0.5).astype(np.float32)
    if mode == "sampled" and x.size and not np.isin(x, (0.0, 1.0)).all():
        raise PplVaeError(f"binarize='sampled' draws each stored pixel once, but {source} "
                          "renders its images; use binarize='static' or 'dynamic' for it")
    return x


def check_values(x: np.ndarray, source: str) -> None:
    """Reject empty arrays and NaN/inf values."""
    if x.shape[0] == 0 or x.size == 0:
        raise PplVaeError(f"{source} is empty (shape {tuple(x.shape)}); give it some examples")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise PplVaeError(f"{source} has {bad} NaN or infinite values; clean the data first")


def _long(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def is_binary(*arrays: np.ndarray) -> bool:
    """True when every value of every array is exactly 0 or 1."""
    return all(bool(((a == 0) | (a == 1)).all()) for a in arrays)


def assemble(
    spec: dict,
    split: SplitOptions,
    train: np.ndarray | Storage,
    test: np.ndarray | Storage,
    *,
    train_factors: np.ndarray | None = None,
    test_factors: np.ndarray | None = None,
    factor_names: list[str] | None = None,
    factor_sizes: list[int] | None = None,
    train_labels: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    renderer: Callable[[np.ndarray], np.ndarray] | None = None,
    train_fields: dict[str, torch.Tensor] | None = None,
    test_fields: dict[str, torch.Tensor] | None = None,
) -> Dataset:
    """Check, binarize and wrap the splits into a :class:`Dataset`.

    A split is a :class:`~ppl_vae.data.storage.Storage` or an array of its
    values (:func:`~ppl_vae.data.compact.compact` picks the form); its final
    form follows ``split.storage`` (:func:`~ppl_vae.data.compact.finish`). ``spec``
    holds the source's own options (name, n, ...); the dataset's spec adds the split's. The
    renderer, if any, is wrapped so that its images get the same
    binarization as the stored examples. ``train_fields``/``test_fields``: extra
    per-example inputs (:attr:`Dataset.fields`).
    """
    name, mode = spec["name"], split.binarize
    stores, binary = [], True
    draws = torch.Generator().manual_seed(split.seed)  # binarize="sampled"
    for part, x in (("train", train), ("test", test)):
        store = x if isinstance(x, Storage) else compact(x)
        store, part_binary = finish(store, mode, split.storage, f"the {name} {part} set",
                                    draws)
        stores.append(store)
        binary = binary and part_binary

    wrapped = None
    if renderer is not None:
        def wrapped(codes: np.ndarray) -> np.ndarray:
            return binarize_values(np.asarray(renderer(codes), np.float32), mode, name)

    return Dataset(
        name=name,
        spec={**spec, **split.to_json()},
        train=stores[0],
        test=stores[1],
        train_factors=_long(train_factors),
        test_factors=_long(test_factors),
        factor_names=None if factor_names is None else list(factor_names),
        factor_sizes=None if factor_sizes is None else [int(s) for s in factor_sizes],
        train_labels=_long(train_labels),
        test_labels=_long(test_labels),
        dynamic_binarize=mode == "dynamic",
        binary=binary,
        renderer=wrapped,
        fields=train_fields or {},
        test_fields=test_fields or {},
    )


def grid_index(codes: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Row-major flat index of class codes: ``sum_j codes[:, j] * prod(sizes[j+1:])``."""
    strides = np.array([math.prod(sizes[j + 1 :]) for j in range(len(sizes))], dtype=np.int64)
    return codes.astype(np.int64) @ strides


def check_labelled(labelled: object) -> int | float | None:
    """Validate a ``labelled`` option: None, a fraction in (0, 1], or a count >= 1."""
    if labelled is None:
        return None
    number = (int, float, np.integer, np.floating)
    if isinstance(labelled, bool) or not isinstance(labelled, number):
        raise PplVaeError(
            f"option labelled must be a fraction in (0, 1] or a count >= 1, got {labelled!r}"
        )
    if isinstance(labelled, (int, np.integer)):
        return check_int("labelled", labelled, 1)
    if not 0.0 < float(labelled) <= 1.0:
        raise PplVaeError(
            f"option labelled={labelled!r} is a fraction outside (0, 1]; "
            "give a fraction in (0, 1] or an integer count of labelled examples"
        )
    return float(labelled)


def label_mask(labels: torch.Tensor, labelled: int | float, seed: int) -> torch.Tensor:
    """Which train labels stay known: a seeded, class-stratified bool mask ``(n_train,)``.

    ``labelled`` is a count, or a fraction of ``n_train`` (rounded, at least 1).
    The count is shared out as equally as classes allow (Kingma et al. 2014,
    M2: e.g. 100 labels = 10 per MNIST digit); a class with too few examples
    keeps all of them and the rest goes to the others; the remainder of the
    division goes to classes drawn at random. Within a class the known
    examples are drawn at random. The draws use
    ``numpy.random.default_rng([seed, 1])``, a stream apart from the split's.
    """
    n = len(labels)
    count = labelled if isinstance(labelled, int) else max(1, round(labelled * n))
    if count > n:
        raise PplVaeError(
            f"labelled={labelled} is more than the {n} train examples; pass at most {n}"
        )
    rng = np.random.default_rng([seed, 1])
    codes = labels.cpu().numpy()
    classes, sizes = np.unique(codes, return_counts=True)
    quota = _share(count, sizes, rng)
    mask = np.zeros(n, dtype=bool)
    for value, k in zip(classes, quota):
        members = np.flatnonzero(codes == value)
        mask[rng.permutation(members)[:k]] = True
    return torch.from_numpy(mask)


def _share(count: int, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``count`` over classes of ``sizes`` as equally as their sizes allow."""
    quota = np.zeros(len(sizes), dtype=np.int64)
    left = count
    while left > 0:
        room = np.flatnonzero(quota < sizes)
        each = left // len(room)
        if each == 0:
            quota[rng.choice(room, size=left, replace=False)] += 1
            break
        add = np.minimum(each, sizes[room] - quota[room])
        quota[room] += add
        left -= int(add.sum())
    return quota


def apply_labelled(ds: Dataset, labelled: object, seed: int | None = None) -> Dataset:
    """Mark all but ``labelled`` train labels unknown in ``ds.known["y"]``; record it in the spec.

    The true labels stay in ``ds.train_labels``; the mask is drawn by
    :func:`label_mask` with ``seed``, by default the spec's ``seed`` (0 without one).
    """
    labelled = check_labelled(labelled)
    if labelled is None:
        return ds
    if ds.train_labels is None:
        raise PplVaeError(
            f"dataset '{ds.name}' has no labels, so labelled= cannot apply; use a labelled "
            "source (digits, mnist, mnist5k, or array with labels=)"
        )
    if seed is None:
        seed = (ds.spec or {}).get("seed", 0)
    ds.known["y"] = label_mask(ds.train_labels, labelled, seed)
    if ds.spec is not None:
        ds.spec["labelled"] = labelled
    return ds
