"""Pareto k̂ of the importance weights, per example (Yao et al. 2018; Vehtari et al. 2024).

For each example n the guide is the proposal for the posterior, with weights
``w_sn = p(x_n, z_s) / q(z_s | x_n)``. PSIS fits a generalised Pareto
distribution to the largest ``M = min(S/5, 3√S)`` weights; its shape k̂
tells how heavy the tail of ``w`` is, i.e. how far q is from the posterior:

- ``k̂ < 0.5``: the variance of ``w`` is finite; importance sampling (and the
  IS log-likelihood) is reliable;
- ``0.5 ≤ k̂ < 0.7``: finite mean, slower but usable convergence;
- ``k̂ ≥ 0.7``: unreliable; q misses posterior mass (typically too narrow).

Computed by ``arviz.psislw`` (draws on the last axis, relative efficiency 1
since guide draws are independent). One k̂ per example, not one for the
whole batch as Pyro's ``psis_diagnostic`` gives, so bad examples stay visible.

Two edge cases: ArviZ returns ``k̂ = inf`` when fewer than five draws lie
strictly above the tail cutoff. When an example's log weights are constant to
within ``CONSTANT_SPREAD`` nats (q equals the posterior up to float
rounding, so the weights have no tail at all) rounding ties would cause
exactly that; such examples get ``k̂ = -inf`` instead.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np

GOOD, BAD = 0.5, 0.7
CONSTANT_SPREAD = 1e-3


def pareto_k(log_weights: np.ndarray) -> np.ndarray:
    """k̂ per example from log weights ``(S draws, N examples)``; returns ``(N,)``."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, khat = az.psislw(log_weights.T)
    khat = np.array(khat, dtype=np.float64)
    khat[np.ptp(log_weights, axis=0) < CONSTANT_SPREAD] = -np.inf
    return khat


def summarize_k(khat: np.ndarray, worst: int = 8) -> dict:
    """Shares above 0.5 and 0.7, quantiles, and the indices of the ``worst`` examples.

    Quantiles are order statistics (``method="nearest"``), so infinite k̂
    values never enter an interpolation.
    """
    khat = np.asarray(khat, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(khat, nan=np.inf))
    return {
        "n_examples": int(khat.size),
        "share_above_0.5": float(np.mean(khat > GOOD)),
        "share_above_0.7": float(np.mean(khat > BAD)),
        "quantiles": {q: float(np.nanquantile(khat, float(q), method="nearest")) for q in
                      ("0.05", "0.25", "0.5", "0.75", "0.95")},
        "max": float(np.nanmax(khat)),
        "worst_examples": [int(i) for i in order[:worst]],
        "worst_k": [float(khat[i]) for i in order[:worst]],
    }
