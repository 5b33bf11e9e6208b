"""Where a split's examples live: their smallest exact form, handed out as float32 rows.

A storage holds ``n`` examples of one ``event_shape`` (``D = prod(event_shape)``
values each) and gives rows as float32 tensors on its device: ``store[index]``
with a slice or a 1-D integer index (tensor or array), ``store.chunks(size)``
for a whole pass in order. The forms, and the float32 value of an element:

=========  ==========================  ==============================================
kind       resident bytes an example   float32 value
=========  ==========================  ==============================================
float32    4 D                         as stored
uint8      D                           ``(u * multiplier) / divisor`` in float32
bits       ceil(D / 8)                 the bit, 0.0 or 1.0
render     8 F (F int64 factor codes)  ``renderer(codes)`` (0/1), drawn per batch
mmap       0: the file is mapped       as float32 or uint8 above, read per batch
=========  ==========================  ==============================================

Bits use ``np.packbits(x.reshape(n, D), axis=1)``'s layout: element ``j`` of an
example (row-major over ``event_shape``) is bit ``7 - j % 8`` of byte ``j // 8``
(most significant first); the last byte is zero-padded. The ``uint8`` rule with
``multiplier = 1`` is numpy's ``x.astype(float32) / divisor``, and with
``divisor = 1`` its ``x.astype(float32) * float32(multiplier)``: both are one
correctly rounded float32 operation, so every form gives the float32 rows
bit for bit.

The conversion runs where the resident part lives: ``store.to(device)`` moves
the packed, byte or float tensor there, and each batch is gathered, unpacked
and converted on that device. ``render`` and ``mmap`` make their rows on the
host (from codes, or from the mapped file) and move them as uint8 where they are
0/1 or bytes, converting on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ppl_vae.errors import PplVaeError

Index = slice | torch.Tensor | np.ndarray
CHUNK = 8192
_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)


def to_float(raw: torch.Tensor, multiplier: float = 1.0, divisor: float = 1.0) -> torch.Tensor:
    """``(raw * multiplier) / divisor`` in float32 (no-op steps skipped: they are exact)."""
    x = raw.to(torch.float32)
    if multiplier != 1.0:
        x = x * multiplier
    if divisor != 1.0:
        x = x / divisor
    return x


def _numpy_index(index: Index) -> slice | np.ndarray:
    """A slice, or a 1-D integer index as a numpy array (for host-side gathers)."""
    if isinstance(index, slice):
        return index
    return index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)


class Storage:
    """Base of the forms: size, shape, passes; subclasses define ``kind`` and ``rows``.

    Attributes:
        kind: ``"float32"``, ``"uint8"``, ``"bits"``, ``"render"`` or ``"mmap"``.
        event_shape: The shape of one example.
        device: Where rows come out (and where the resident part lives).
        binary: True when every value is 0 or 1 by construction (bits, render).
    """

    kind = ""
    binary = False

    def __init__(self, n: int, event_shape: tuple, device: torch.device | str = "cpu") -> None:
        self.n, self.event_shape, self.device = int(n), tuple(event_shape), torch.device(device)

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple:
        """``(n, *event_shape)``, as a tensor of the rows would have."""
        return (self.n, *self.event_shape)

    @property
    def index_device(self) -> torch.device:
        """Where batch indices should live to gather without a host sync."""
        return self.device

    @property
    def nbytes(self) -> int:
        """Bytes held resident (in memory or on the device)."""
        raise NotImplementedError

    def __getitem__(self, index: Index) -> torch.Tensor:
        """float32 rows ``(m, *event_shape)`` on :attr:`device`."""
        raise NotImplementedError

    def to(self, device: torch.device | str) -> Storage:
        """The same examples with the resident part on ``device``."""
        raise NotImplementedError

    def chunks(self, size: int = CHUNK) -> Iterator[torch.Tensor]:
        """Every row in order, ``size`` at a time, as float32."""
        for start in range(0, self.n, size):
            yield self[start:start + size]

    def support_chunks(self) -> Iterator[torch.Tensor]:
        """Chunks that hold every value the split takes (all of them; one for 0/1 forms)."""
        return iter([self[:CHUNK]]) if self.binary else self.chunks()

    def describe(self) -> str:
        """``"bits, 377.5 MB"``."""
        return f"{self.kind}, {self.nbytes / 1e6:.1f} MB resident"


class FloatStorage(Storage):
    """float32 examples as they are: ``store[i]`` is ``tensor[i]`` (a view for slices)."""

    kind = "float32"

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__(len(tensor), tensor.shape[1:], tensor.device)
        self.tensor = tensor

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()

    def __getitem__(self, index: Index) -> torch.Tensor:
        return self.tensor[index]

    def to(self, device: torch.device | str) -> FloatStorage:
        return FloatStorage(self.tensor.to(device))


class ByteStorage(Storage):
    """uint8 examples, converted per batch by ``(u * multiplier) / divisor``."""

    kind = "uint8"

    def __init__(self, values: torch.Tensor, multiplier: float = 1.0, divisor: float = 1.0
                 ) -> None:
        super().__init__(len(values), values.shape[1:], values.device)
        self.values, self.multiplier, self.divisor = values, float(multiplier), float(divisor)

    @property
    def nbytes(self) -> int:
        return self.values.numel()

    def __getitem__(self, index: Index) -> torch.Tensor:
        return to_float(self.values[index], self.multiplier, self.divisor)

    def to(self, device: torch.device | str) -> ByteStorage:
        return ByteStorage(self.values.to(device), self.multiplier, self.divisor)


class BitStorage(Storage):
    """0/1 examples packed 8 to a byte (``np.packbits`` layout, see the module docstring)."""

    kind = "bits"
    binary = True

    def __init__(self, packed: torch.Tensor, event_shape: tuple) -> None:
        super().__init__(len(packed), event_shape, packed.device)
        self.packed = packed

    @classmethod
    def from_chunks(cls, chunks: Iterator[np.ndarray], event_shape: tuple) -> BitStorage:
        """Pack consecutive 0/1 blocks ``(m, *event_shape)`` without holding them all."""
        width = math.ceil(math.prod(event_shape) / 8)
        blocks = [np.packbits(np.asarray(c).reshape(len(c), -1).astype(bool), axis=1)
                  for c in chunks]
        packed = np.concatenate(blocks) if blocks else np.zeros((0, width), np.uint8)
        return cls(torch.from_numpy(packed), event_shape)

    @property
    def nbytes(self) -> int:
        return self.packed.numel()

    def __getitem__(self, index: Index) -> torch.Tensor:
        rows = self.packed[index]
        bits = (rows.unsqueeze(-1) >> _SHIFTS.to(rows.device)) & 1  # (m, bytes, 8)
        flat = bits.reshape(len(rows), -1)[:, :math.prod(self.event_shape)]
        return flat.to(torch.float32).reshape(len(rows), *self.event_shape)

    def to(self, device: torch.device | str) -> BitStorage:
        return BitStorage(self.packed.to(device), self.event_shape)


class RenderStorage(Storage):
    """Factor codes resident; each batch rendered by ``renderer(codes) -> uint8 0/1 images``.

    Memory is the codes (8 F bytes an example) plus one batch of images.
    Rendering runs on the host; the uint8 images move to :attr:`device` and
    become float32 there.
    """

    kind = "render"
    binary = True

    def __init__(self, codes: np.ndarray, renderer: Callable[[np.ndarray], np.ndarray],
                 event_shape: tuple, device: torch.device | str = "cpu") -> None:
        super().__init__(len(codes), event_shape, device)
        self.codes, self.renderer = codes, renderer

    @property
    def index_device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes

    def __getitem__(self, index: Index) -> torch.Tensor:
        images = self.renderer(self.codes[_numpy_index(index)])
        return torch.from_numpy(images).to(self.device).to(torch.float32)

    def to(self, device: torch.device | str) -> RenderStorage:
        return RenderStorage(self.codes, self.renderer, self.event_shape, device)


class MappedStorage(Storage):
    """Rows ``rows`` of a memory-mapped array, read per batch; nothing resident.

    ``array`` is the mapped file (``np.load(path, mmap_mode="r")`` or an npz
    member), with ``transpose`` applied per batch (channel-last files), and
    values converted like ``uint8`` (``multiplier``, ``divisor``). A batch reads
    its rows through the map (the kernel's page cache, not this process's
    heap); :meth:`support_chunks` maps one block of the file at a time, so a pass
    leaves no pages mapped.
    """

    kind = "mmap"

    def __init__(self, array: np.memmap, rows: np.ndarray, *, transpose: tuple | None = None,
                 multiplier: float = 1.0, divisor: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        shape = array.shape[1:] if transpose is None else tuple(
            array.shape[1:][a - 1] for a in transpose[1:])
        super().__init__(len(rows), shape, device)
        self.array, self.rows, self.transpose = array, np.asarray(rows, np.int64), transpose
        self.multiplier, self.divisor = float(multiplier), float(divisor)

    @property
    def index_device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes

    def subset(self, rows: np.ndarray) -> MappedStorage:
        """The examples at positions ``rows`` of this storage."""
        return MappedStorage(self.array, self.rows[rows], transpose=self.transpose,
                             multiplier=self.multiplier, divisor=self.divisor, device=self.device)

    def __getitem__(self, index: Index) -> torch.Tensor:
        return self._convert(np.asarray(self.array[self.rows[_numpy_index(index)]]))

    def _convert(self, raw: np.ndarray) -> torch.Tensor:
        """Host rows of the file -> float32 rows on the device."""
        if self.transpose is not None:
            raw = raw.transpose(self.transpose)
        tensor = torch.from_numpy(np.ascontiguousarray(raw)).to(self.device)
        return to_float(tensor, self.multiplier, self.divisor)

    def support_chunks(self, size: int = CHUNK) -> Iterator[torch.Tensor]:
        """Every row, in file order, mapping one block of ``size`` of them at a time."""
        order = np.sort(self.rows)
        base = self.array
        if base.filename is None:
            raise PplVaeError("internal: a MappedStorage over an array with no file")
        row_bytes = math.prod(base.shape[1:]) * base.dtype.itemsize
        for start in range(0, len(order), size):
            wanted = order[start:start + size]
            first, last = int(wanted[0]), int(wanted[-1]) + 1
            block = np.memmap(base.filename, dtype=base.dtype, mode="r",
                              offset=base.offset + first * row_bytes,
                              shape=(last - first, *base.shape[1:]))
            yield self._convert(np.array(block[wanted - first]))
            del block

    def to(self, device: torch.device | str) -> MappedStorage:
        return MappedStorage(self.array, self.rows, transpose=self.transpose,
                             multiplier=self.multiplier, divisor=self.divisor, device=device)


class FlatStorage(Storage):
    """Another storage's examples as flat vectors ``(m, D)``: rows reshaped as they are made
    (``load(..., flatten=True)``, for networks written for flat inputs)."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(len(inner), (math.prod(inner.event_shape),), inner.device)
        self.inner, self.kind, self.binary = inner, inner.kind, inner.binary

    @property
    def index_device(self) -> torch.device:
        return self.inner.index_device

    @property
    def nbytes(self) -> int:
        return self.inner.nbytes

    def __getitem__(self, index: Index) -> torch.Tensor:
        rows = self.inner[index]
        return rows.reshape(rows.shape[0], -1)

    def to(self, device: torch.device | str) -> FlatStorage:
        return FlatStorage(self.inner.to(device))


def as_storage(examples: torch.Tensor | Storage) -> Storage:
    """A storage as it is; a tensor as float32 rows (:class:`FloatStorage`)."""
    return examples if isinstance(examples, Storage) else FloatStorage(examples)


def split_storage(data: object, split: str) -> Storage:
    """``data.train_store`` (or ``test_store``), or a duck-typed ``data.train`` tensor wrapped."""
    store = getattr(data, split + "_store", None)
    return store if store is not None else as_storage(getattr(data, split))
