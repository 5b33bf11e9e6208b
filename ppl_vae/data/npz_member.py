"""Read one array of an ``.npz`` without loading it whole.

An ``np.savez`` member is stored uncompressed, so it is memory-mapped in place
(offset = local zip header + ``.npy`` header). An ``np.savez_compressed``
member cannot be mapped; it is streamed in row chunks instead.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ppl_vae.errors import PplVaeError


class NpzMember:
    """One array ``key`` inside the ``.npz`` at ``path``.

    Attributes:
        shape: The array's shape.
        dtype: The array's dtype.
        mapped: A read-only ``np.memmap`` when the member is stored
            uncompressed, else None (use :meth:`chunks`).
    """

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        try:
            with zipfile.ZipFile(self.path) as archive:
                self._info = archive.getinfo(key + ".npy")
                with archive.open(self._info) as handle:
                    header = _read_header(handle)
                    self._data_start = handle.tell()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise PplVaeError(f"cannot read {self.path} as .npz: {error}") from None
        self.shape, fortran, self.dtype = header
        if self.dtype.hasobject or fortran:
            raise PplVaeError(
                f"{self.path}: array {key!r} is an object or Fortran-order array; "
                "save a plain C-order numeric array"
            )
        self.mapped = self._map() if self._info.compress_type == zipfile.ZIP_STORED else None

    def _map(self) -> np.memmap:
        """Memory-map a stored (uncompressed) member."""
        with open(self.path, "rb") as handle:
            handle.seek(self._info.header_offset)
            local = handle.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        offset = self._info.header_offset + 30 + name_len + extra_len + self._data_start
        if math.prod(self.shape) == 0:
            return np.zeros(self.shape, self.dtype).view(np.memmap)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=offset, shape=self.shape)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """Yield the array in consecutive blocks of up to ``rows`` rows."""
        row_shape = self.shape[1:]
        row_bytes = math.prod(row_shape) * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as archive, archive.open(self._info) as handle:
            handle.seek(self._data_start)
            for start in range(0, self.shape[0], rows):
                count = min(rows, self.shape[0] - start)
                data = handle.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise PplVaeError(f"{self.path}: array {self.key!r} is truncated")
                yield np.frombuffer(data, dtype=self.dtype).reshape((count, *row_shape))


def _read_header(handle: IO[bytes]) -> tuple[tuple, bool, np.dtype]:
    """Parse a ``.npy`` header: ``(shape, fortran_order, dtype)``."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)
