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
exactly that; such examples get ``k̂ = -inf`` instead. With fewer than
``MIN_TAIL_DRAWS`` = 21 draws the tail holds under five weights for every example,
so :func:`importance_trust` reports no k̂ at all rather than ``inf``.

The importance-sampling effective sample size of one example is Kish's, of the
raw weights the IS estimate uses::

    ESS = (Σ_s w_s)² / Σ_s w_s² = exp(2 logsumexp(log w) - logsumexp(2 log w)),

between 1 (one draw carries all the weight) and ``S`` (equal weights). As
``S → ∞``, ``ESS / S → 1 / E_q[w²] · E_q[w]² = 1 / ∫ p(z|x)² / q(z|x) dz``.

:func:`trust_summary` gives every importance-sampled number its trust: the
share of examples with ``k̂ > 0.7``, k̂'s median and maximum, and ESS's mean
and minimum out of ``S``, with one line of ``warning`` when they say the
estimate is not reliable: more than ``SHARE_WARN`` of the examples above 0.7,
or a mean ESS under ``ESS_WARN`` of the draws.
"""

from __future__ import annotations

import warnings
from typing import Any

import arviz as az
import numpy as np

GOOD, BAD = 0.5, 0.7
CONSTANT_SPREAD = 1e-3
MIN_TAIL_DRAWS = 21  # ArviZ's tail, ceil(min(S/5, 3√S)), needs five draws
SHARE_WARN = 0.1  # of the examples above k̂ = 0.7
ESS_WARN = 0.01  # of the draws, on average


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


def importance_ess(log_weights: np.ndarray) -> np.ndarray:
    """Kish's ESS per example from log weights ``(S draws, N examples)``; returns ``(N,)``."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    top = log_weights.max(axis=0)
    shifted = log_weights - top  # exact: ESS does not depend on the weights' scale
    with np.errstate(divide="ignore"):
        return np.exp(2 * np.log(np.exp(shifted).sum(0)) - np.log(np.exp(2 * shifted).sum(0)))


def importance_trust(log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(k̂, ESS)`` per example from log weights ``(S, N)``; k̂ is NaN for every example
    when ``S < MIN_TAIL_DRAWS`` (too few draws for a tail)."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    draws, n = log_weights.shape
    khat = pareto_k(log_weights) if draws >= MIN_TAIL_DRAWS else np.full(n, np.nan)
    return khat, importance_ess(log_weights)


def trust_summary(khat: np.ndarray, ess: np.ndarray, draws: int,
                  what: str = "the IS log-likelihood") -> dict:
    """The trust of an importance-sampled estimate over examples (see the module docstring).

    Args:
        khat, ess: per example, from :func:`importance_trust`.
        draws: ``S``, the importance samples per example.
        what: the estimate, named in the warning.

    Returns:
        dict with ``draws``, ``khat_share_above_0.7``, ``khat_median``, ``khat_max`` (None
        with ``khat_note`` when ``draws < MIN_TAIL_DRAWS``), ``ess_mean``, ``ess_min`` (of
        ``draws``) and ``warning``: one line, or None when nothing says it is unreliable.
    """
    khat, ess = np.asarray(khat, dtype=np.float64), np.asarray(ess, dtype=np.float64)
    fitted = draws >= MIN_TAIL_DRAWS and khat.size > 0
    share = float(np.mean(khat > BAD)) if fitted else None
    summary: dict[str, Any] = {
        "draws": int(draws),
        "khat_share_above_0.7": share,
        "khat_median": float(np.quantile(khat, 0.5, method="nearest")) if fitted else None,
        "khat_max": float(np.max(khat)) if fitted else None,
        **({} if fitted else {"khat_note": f"not estimated: k̂ needs at least "
                                            f"{MIN_TAIL_DRAWS} draws per example"}),
        "ess_mean": float(ess.mean()),
        "ess_min": float(ess.min()),
    }
    reasons = []
    if share is not None and share > SHARE_WARN:
        reasons.append(f"k̂ > 0.7 for {share:.0%} of {khat.size} examples (median "
                       f"{summary['khat_median']:.2f})")
    if summary["ess_mean"] < ESS_WARN * draws:
        reasons.append(f"the importance-sampling ESS is {summary['ess_mean']:.1f} of {draws} "
                       "draws on average")
    summary["warning"] = None if not reasons else (
        f"{what} is not reliable: {' and '.join(reasons)}; the guide is far from the "
        "posterior, so the estimate sits below log p(x) by an unknown amount (more draws "
        "move it)")
    return summary
