"""Mutual Information Gap (Chen et al. 2018), disentanglement_lib's discrete recipe.

For factors ``v_k`` (k = 1..K) and codes ``z_j`` (j = 1..D), each code
discretised into ``num_bins`` equal-width bins over its observed range::

    MIG = (1/K) Σ_k [ I(z_{j(1)}; v_k) - I(z_{j(2)}; v_k) ] / H(v_k)

where ``j(1)``, ``j(2)`` are the codes with the largest and second largest
mutual information with ``v_k``. ``I`` and ``H`` are the plug-in estimates of
``sklearn.metrics.mutual_info_score`` (nats) on ``num_train`` uniform factor
draws. A code that copies one factor scores up to 1 for it, a representation
that splits a factor across two codes scores 0 for it.

Not exactly 1 for a perfect code: 20 bins are fewer than 32 or 40 factor
classes, so a perfect monotone code of the dSprites factors scores about 0.9.
Factors with zero entropy in the sample are left out of the mean (the library
would divide by zero).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score

from ppl_vae.metrics.sampling import Representation, check_count, sample_codes


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each column of ``codes`` ``(n, D)`` as bin indices of ``num_bins`` equal-width bins."""
    out = np.empty(codes.shape, dtype=np.int64)
    for j, column in enumerate(codes.T):
        edges = np.histogram_bin_edges(column, num_bins)
        out[:, j] = np.digitize(column, edges[:-1])
    return out


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``I(z_j; v_k)`` in nats, a ``(D, K)`` matrix, from discrete codes and factor classes."""
    return np.array([[mutual_info_score(factor, code) for factor in factors.T]
                     for code in discrete_codes.T])


def entropies(factors: np.ndarray) -> np.ndarray:
    """``H(v_k)`` in nats for each factor column (plug-in estimate)."""
    return np.array([mutual_info_score(factor, factor) for factor in factors.T])


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> dict:
    """MIG of ``codes`` ``(n, D)`` against factor classes ``(n, K)``; see the module docstring.

    Returns:
        dict with ``discrete_mig`` (the mean gap) and ``gap_per_factor``
        (normalised gaps; None for factors with zero entropy).
    """
    mi = mutual_information(discretize(codes, num_bins), np.asarray(factors))
    entropy = entropies(np.asarray(factors))
    ranked = np.sort(mi, axis=0)[::-1]
    second = ranked[1] if len(ranked) > 1 else np.zeros_like(ranked[0])
    informative = entropy > 0
    gaps = np.where(informative, (ranked[0] - second) / np.where(informative, entropy, 1.0), 0.0)
    return {
        "discrete_mig": float(gaps[informative].mean()) if informative.any() else 0.0,
        "gap_per_factor": [float(g) if ok else None for g, ok in zip(gaps, informative)],
    }


def compute_mig(representation: Representation, dataset, *, num_train: int = 10_000,
                num_bins: int = 20, seed: int = 0) -> dict:
    """MIG of ``representation`` on ``num_train`` uniform draws from ``dataset``.

    Args:
        representation: ``images (m, *event) -> codes (m, D)`` numpy.
        dataset: a ground-truth dataset (see :mod:`ppl_vae.metrics.sampling`).
        num_train: points (disentanglement_lib: 10,000).
        num_bins: bins per code (disentanglement_lib: 20).
        seed: seeds ``numpy.random.default_rng``.

    Returns:
        dict with ``discrete_mig`` and ``gap_per_factor`` (see :func:`mig_from_codes`).
    """
    num_train = check_count("num_train", num_train, 2)
    num_bins = check_count("num_bins", num_bins, 2)
    codes, factors = sample_codes(representation, dataset, num_train, np.random.default_rng(seed))
    return mig_from_codes(codes, factors, num_bins)
