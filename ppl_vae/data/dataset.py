"""The one dataset type every source returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ppl_vae.errors import PplVaeError


@dataclass(eq=False)
class Dataset:
    """A train/test pair of tensors with optional ground-truth factors and labels.

    Attributes:
        name: The source name (``"shapes"``, ``"mnist"``, ...).
        spec: The keyword arguments that rebuild exactly this dataset:
            ``load(**ds.spec)`` gives the same split, subset and values. Only
            JSON values; it includes ``"name"``.
        train: float32 tensor ``(n_train, *event_shape)``; images are
            channel-first ``(n, 1, H, W)`` with values in [0, 1].
        test: float32 tensor ``(n_test, *event_shape)``.
        train_factors: LongTensor ``(n_train, F)`` of factor class indices, or None.
        test_factors: LongTensor ``(n_test, F)``, or None.
        factor_names: One name per factor column, or None.
        factor_sizes: Number of classes of each factor, or None.
        train_labels: LongTensor ``(n_train,)`` of class labels, or None.
        test_labels: LongTensor ``(n_test,)``, or None.
        dynamic_binarize: When True the trainer draws ``torch.bernoulli(batch)``
            for every batch; the stored tensors hold grey levels.
        binary: True when every stored value is exactly 0 or 1, so a
            Bernoulli likelihood is valid on the stored tensors as they are.
        renderer: For sources with a generator (shapes, dsprites): maps int64
            class codes ``(m, F)`` to float32 images ``(m, *event_shape)``;
            None otherwise. Not picklable: rebuild with ``load(**spec)``.
    """

    name: str
    spec: dict
    train: torch.Tensor
    test: torch.Tensor
    train_factors: torch.Tensor | None = None
    test_factors: torch.Tensor | None = None
    factor_names: list[str] | None = None
    factor_sizes: list[int] | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    dynamic_binarize: bool = False
    binary: bool = False
    renderer: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def event_shape(self) -> tuple:
        """Shape of one example, e.g. ``(1, 64, 64)``."""
        return tuple(self.train.shape[1:])

    def images_for_factors(self, factors: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images for given factor class indices, from the source's generator.

        Args:
            factors: Integer array ``(m, F)``; column j holds a class index in
                ``[0, factor_sizes[j])``.

        Returns:
            float32 tensor ``(m, *event_shape)``, processed like ``train``.

        Raises:
            PplVaeError: The dataset has no generator (only ``shapes`` and
                ``dsprites`` have one), or the factors are malformed.
        """
        if self.renderer is None:
            raise PplVaeError(
                f"dataset '{self.name}' cannot draw images for given factors; "
                "use 'shapes' or 'dsprites' for the disentanglement metrics"
            )
        codes = self._check_factors(factors)
        images = self.renderer(codes)
        return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))

    def sample_factors(
        self,
        m: int,
        generator: np.random.Generator,
        fixed: dict[int, int] | None = None,
    ) -> torch.Tensor:
        """Draw ``m`` factor vectors, each factor uniform over its classes.

        Args:
            m: Number of draws.
            generator: Source of randomness (``numpy.random.default_rng(seed)``).
            fixed: Optional ``{factor index: class index}`` held constant in
                every draw (the "factor k fixed" batches of the BetaVAE and
                FactorVAE scores); the other factors still vary.

        Returns:
            LongTensor ``(m, F)``.
        """
        sizes = self._require_factors()
        codes = generator.integers(0, np.asarray(sizes), size=(int(m), len(sizes)))
        for k, value in (fixed or {}).items():
            if not 0 <= int(k) < len(sizes) or not 0 <= int(value) < sizes[int(k)]:
                raise PplVaeError(
                    f"cannot fix factor {k} to {value}: factor sizes are {sizes}"
                )
            codes[:, int(k)] = int(value)
        return torch.from_numpy(codes.astype(np.int64))

    def describe(self) -> str:
        """One line for logs: sizes, shape, value type, factors, labels."""
        kind = "binary" if self.binary else "grey levels"
        if self.dynamic_binarize:
            kind += ", dynamic binarization"
        text = (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test, "
            f"event {self.event_shape}, {kind}"
        )
        if self.factor_sizes is not None:
            parts = [f"{a}({b})" for a, b in zip(self.factor_names, self.factor_sizes)]
            text += ", factors " + " ".join(parts)
        if self.train_labels is not None:
            classes = int(torch.cat([self.train_labels, self.test_labels]).unique().numel())
            text += f", labels ({classes} classes)"
        return text

    def _require_factors(self) -> list[int]:
        """The factor sizes, or an error when the dataset has no factors."""
        if self.factor_sizes is None:
            raise PplVaeError(
                f"dataset '{self.name}' has no ground-truth factors; "
                "use 'shapes', 'dsprites', or an 'array' with factors="
            )
        return list(self.factor_sizes)

    def _check_factors(self, factors: torch.Tensor | np.ndarray) -> np.ndarray:
        """Validate an ``(m, F)`` array of class indices and return it as int64."""
        sizes = self._require_factors()
        codes = factors.cpu().numpy() if isinstance(factors, torch.Tensor) else np.asarray(factors)
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise PplVaeError(
                f"factors must have shape (m, {len(sizes)}), got {tuple(codes.shape)}"
            )
        if codes.dtype.kind not in "iu":
            raise PplVaeError(f"factors must be integer class indices, got dtype {codes.dtype}")
        codes = codes.astype(np.int64)
        if len(codes) and ((codes < 0).any() or (codes >= np.asarray(sizes)).any()):
            raise PplVaeError(f"factor indices out of range: sizes are {sizes}")
        return codes
