"""DeepMind dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``.

The file holds ``imgs`` (737,280 x 64 x 64, 0/1) and ``latents_classes``
(737,280 x 6: colour, shape, scale, orientation, pos_x, pos_y). In the real
file row ``i`` is the combination with flat index

    i = classes . [737280, 245760, 40960, 1024, 32, 1]

(pos_y fastest). The constant colour factor is dropped, leaving the five
factors of :mod:`ppl_vae.data.shapes`. Rows are located by that arithmetic
when the file has all 737,280 rows in this order; otherwise (a subset or a
reordered file) by a sorted lookup of the same flat index over
``latents_classes``, and combinations absent from the file are an error.

Images are read without loading the array whole: memory-mapped when the
member is stored uncompressed (``np.savez``; the splits then read their rows
from the map per batch), else (``np.savez_compressed``, as the real file is)
decompressed once, in chunks, into a bit-packed copy in memory (H*W/8 bytes a
row: 377 MB for the real file, the first load taking seconds), from which the
splits keep packed copies of their rows (another 377 MB for ``n="all"``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ppl_vae.data.common import assemble, check_count, draw_subset, resolve_path, split_options
from ppl_vae.data.dataset import Dataset
from ppl_vae.data.npz_member import NpzMember
from ppl_vae.data.shapes import FACTOR_NAMES, FACTOR_SIZES
from ppl_vae.data.storage import BitStorage, MappedStorage, Storage
from ppl_vae.errors import PplVaeError
from ppl_vae.registry import DATA_SOURCES

LAYOUT_SIZES = [1, 3, 6, 40, 32, 32]
STRIDES = np.array([737280, 245760, 40960, 1024, 32, 1], dtype=np.int64)
FULL_ROWS = 737_280
DEFAULT_N = 20_000
_HINT = (
    "get dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz from "
    "github.com/deepmind/dsprites-dataset and pass path=FILE"
)


class DspritesFile:
    """Row lookup and image access for a dSprites-layout ``.npz``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.classes = self._read_classes()
        self.rows = len(self.classes)
        keys = self.classes @ STRIDES
        if self.rows == FULL_ROWS and (keys == np.arange(FULL_ROWS)).all():
            self._order = self._sorted_keys = None  # row = flat index
        else:
            self._order = np.argsort(keys, kind="stable")
            self._sorted_keys = keys[self._order]
            if (np.diff(self._sorted_keys) == 0).any():
                raise PplVaeError(f"{path}: latents_classes repeats a factor combination")
        self.images = NpzMember(path, "imgs")
        if len(self.images.shape) != 3 or self.images.shape[0] != self.rows:
            raise PplVaeError(
                f"{path}: imgs must be ({self.rows}, H, W) to match latents_classes, "
                f"got {self.images.shape}"
            )
        self._packed: np.ndarray | None = None

    def _read_classes(self) -> np.ndarray:
        """Load and check ``latents_classes`` ``(N, 6)``."""
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                missing = [k for k in ("imgs", "latents_classes") if k not in npz.files]
                if missing:
                    raise PplVaeError(
                        f"{self.path} lacks {', '.join(missing)} (has {', '.join(npz.files)}); "
                        f"it is not a dSprites file: {_HINT}"
                    )
                classes = npz["latents_classes"]
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise PplVaeError(f"cannot read {self.path} as .npz: {error}") from None
        if classes.ndim != 2 or classes.shape[1] != 6 or classes.dtype.kind not in "iu":
            raise PplVaeError(
                f"{self.path}: latents_classes must be integers (N, 6), got "
                f"{classes.dtype} {classes.shape}"
            )
        classes = classes.astype(np.int64)
        if (classes < 0).any() or (classes >= np.array(LAYOUT_SIZES)).any():
            raise PplVaeError(f"{self.path}: latents_classes outside the sizes {LAYOUT_SIZES}")
        return classes

    @property
    def complete(self) -> bool:
        """Whether the file holds every factor combination in order (rows by index arithmetic,
        no lookup table)."""
        return self._order is None

    def rows_for(self, codes: np.ndarray) -> np.ndarray:
        """File rows of the five-factor class codes ``(m, 5)`` (colour 0)."""
        keys = codes.astype(np.int64) @ STRIDES[1:]
        if self._order is None or self._sorted_keys is None:  # (set together)
            return keys
        where = np.searchsorted(self._sorted_keys, keys)
        found = where < self.rows
        found[found] = self._sorted_keys[where[found]] == keys[found]
        if not found.all():
            first = codes[np.argmin(found)].tolist()
            raise PplVaeError(
                f"{self.path} has no image for factors {first}: it holds {self.rows} of "
                f"{FULL_ROWS} combinations; use the full dSprites file"
            )
        return self._order[where]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Images of the given file rows, float32 ``(m, H, W)``."""
        if self.images.mapped is not None:
            images = np.asarray(self.images.mapped[np.asarray(rows)], dtype=np.float32)
            if images.size and (images.min() < 0 or images.max() > 1):
                raise PplVaeError(f"{self.path}: imgs must hold 0/1 values, as dSprites does")
            return images
        if self._packed is None:
            self._packed = self._pack()
        height, width = self.images.shape[1:]
        bits = np.unpackbits(self._packed[rows], axis=1, count=height * width)
        return bits.reshape(len(rows), height, width).astype(np.float32)

    def storage(self, rows: np.ndarray) -> Storage:
        """The images of file ``rows`` ``(m, 1, H, W)``: mapped, or packed bits."""
        if self.images.mapped is not None:
            # a view of a np.memmap is one (numpy types it as a plain array)
            return MappedStorage(cast(np.memmap, self.images.mapped[:, None]), rows)
        if self._packed is None:
            self._packed = self._pack()
        return BitStorage(torch.from_numpy(self._packed[rows]), (1, *self.images.shape[1:]))

    def _pack(self) -> np.ndarray:
        """Decompress ``imgs`` chunk by chunk into one bit per pixel."""
        blocks = []
        for chunk in self.images.chunks(8192):
            if chunk.dtype.kind not in "biu" or (chunk.size and chunk.max() > 1):
                raise PplVaeError(f"{self.path}: imgs must hold 0/1 values, as dSprites does")
            blocks.append(np.packbits(chunk.reshape(len(chunk), -1).astype(np.uint8), axis=1))
        return np.concatenate(blocks)


@DATA_SOURCES.register("dsprites", "DeepMind dSprites from its .npz file (path=)")
def load_dsprites(
    *, path: str | None = None, n: int | str | None = None, **shared: object
) -> Dataset:
    """Load a random subset of dSprites, with factors and ``images_for_factors``.

    Args:
        path: The dSprites ``.npz`` (keys ``imgs``, ``latents_classes``).
        n: Total images (train + test); default ``min(20000, rows in file)``;
            ``"all"``: every row (737,280 in the real file: 377 MB packed).
        **shared: The options every source takes (:class:`~ppl_vae.config.SplitOptions`);
            ``seed`` draws the subset and split with ``numpy.random.default_rng``;
            ``storage="auto"``: packed bits, or the memory map of an uncompressed
            file (see the module docstring); ``"float32"``: 4 bytes a pixel, 12 GB
            for the whole real file.
    """
    split = split_options("dsprites", shared)
    n = check_count(n)
    file = DspritesFile(resolve_path(path, "dsprites", _HINT))
    n, train, test = draw_subset(n, min(DEFAULT_N, file.rows), file.rows, str(file.path), split)

    def renderer(codes: np.ndarray) -> np.ndarray:
        return file.read(file.rows_for(codes))[:, None]

    data = assemble(
        {"name": "dsprites", "path": str(file.path), "n": n}, split, file.storage(train),
        file.storage(test),
        train_factors=file.classes[train, 1:], test_factors=file.classes[test, 1:],
        factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES, renderer=renderer,
    )
    if not data.binary:
        raise PplVaeError(f"{file.path}: imgs must hold 0/1 values, as dSprites does")
    return data
