"""What every disentanglement metric shares: drawing factors, rendering, encoding.

A *representation* is a function ``r(images) -> codes``: it takes a float
tensor of images ``(m, *event_shape)`` and returns a numpy array ``(m, D)``
(disentanglement_lib's ``representation_function``; here usually the guide's
posterior mean). A *ground-truth dataset* is anything with ``factor_sizes``
(a list of ``F`` class counts), ``sample_factors(m, generator, fixed=None)``
(uniform class indices ``(m, F)``) and ``images_for_factors(factors)``; the
:class:`ppl_vae.data.Dataset` of ``shapes`` and ``dsprites`` is one.

Factors are class indices throughout, as in disentanglement_lib, where the
metrics are computed on ``ground_truth_data`` class codes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ppl_vae.errors import PplVaeError

Representation = Callable[[torch.Tensor], np.ndarray]
CHUNK = 4096


def factor_sizes(dataset) -> list[int]:
    """The dataset's factor class counts, or a clear error when it has none."""
    sizes = getattr(dataset, "factor_sizes", None)
    if not sizes or not hasattr(dataset, "images_for_factors"):
        name = getattr(dataset, "name", type(dataset).__name__)
        raise PplVaeError(f"dataset '{name}' has no ground-truth factor generator; the "
                          "disentanglement metrics need one ('shapes' or 'dsprites')")
    return list(sizes)


def factor_indices(dataset, factors=None) -> list[int]:
    """``factors`` (names, indices, or None for all) as sorted unique indices, checked."""
    sizes = factor_sizes(dataset)
    if factors is None:
        return list(range(len(sizes)))
    names = list(getattr(dataset, "factor_names", None) or [])
    indices = set()
    for factor in factors:
        if isinstance(factor, str) and factor.isdigit():
            factor = int(factor)
        if isinstance(factor, str) and factor in names:
            indices.add(names.index(factor))
        elif isinstance(factor, int) and 0 <= factor < len(sizes):
            indices.add(factor)
        else:
            known = ", ".join(names) if names else f"indices 0..{len(sizes) - 1}"
            raise PplVaeError(f"unknown factor {factor!r}; this dataset's factors are {known}")
    return sorted(indices)


def encode(representation: Representation, images: torch.Tensor) -> np.ndarray:
    """``representation(images)`` as a float64 ``(m, D)`` array, checked."""
    codes = np.asarray(representation(images), dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != images.shape[0]:
        raise PplVaeError(f"the representation must return an array (n, D) for n images; got "
                          f"shape {codes.shape} for {images.shape[0]} images")
    if not np.isfinite(codes).all():
        raise PplVaeError("the representation returned NaN or infinite codes; check the encoder")
    return codes


def codes_for_factors(representation: Representation, dataset,
                      factors: torch.Tensor | np.ndarray) -> np.ndarray:
    """Render ``factors`` ``(m, F)`` and encode them, ``CHUNK`` images at a time."""
    factors = torch.as_tensor(np.asarray(factors), dtype=torch.int64)
    parts = [encode(representation, dataset.images_for_factors(chunk))
             for chunk in factors.split(CHUNK)]
    return np.concatenate(parts)


def sample_codes(representation: Representation, dataset, num_points: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` uniform factor draws and their codes: ``(codes (n, D), factors (n, F))``.

    disentanglement_lib's ``generate_batch_factor_code``; its ``batch_size``
    only chunks the work, so it is not a parameter here.
    """
    factor_sizes(dataset)
    factors = np.asarray(dataset.sample_factors(num_points, rng))
    return codes_for_factors(representation, dataset, factors), factors


def check_count(name: str, value: int, least: int = 1) -> int:
    """``value`` as an int, or a one-line error when it is below ``least``."""
    if isinstance(value, bool) or int(value) != value or value < least:
        raise PplVaeError(f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)
