"""Reader for the IDX format of the MNIST files (raw or gzip-compressed).

Layout: two zero bytes, a type byte (``0x08`` = unsigned byte, the only one
MNIST uses), a byte ``d`` with the number of dimensions, ``d`` big-endian
uint32 sizes, then ``prod(sizes)`` values in C order.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ppl_vae.errors import PplVaeError


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions.

    Args:
        path: ``.gz`` (detected from the gzip magic bytes) or raw IDX file.
        ndim: Expected number of dimensions (3 for images, 1 for labels).

    Returns:
        uint8 array with the shape the header declares.

    Raises:
        PplVaeError: Unreadable, truncated or non-IDX file, or wrong ``ndim``.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise PplVaeError(f"cannot read {path}: {error}; replace the file") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise PplVaeError(
            f"{path} is not an unsigned-byte IDX file (bad header); check the file name/contents"
        )
    if data[3] != ndim:
        raise PplVaeError(f"{path} has {data[3]} dimensions, expected {ndim}; wrong file?")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise PplVaeError(f"{path} is truncated (header incomplete); replace the file")
    shape = struct.unpack(f">{ndim}I", data[4:start])
    if len(data) - start != math.prod(shape):
        raise PplVaeError(
            f"{path} holds {len(data) - start} values but its header declares "
            f"{math.prod(shape)} {shape}; the file is truncated or corrupt, replace it"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)

