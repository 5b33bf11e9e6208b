"""Latent activity of the primary site over the test set.

With ``m_d(x) = E_q[z_d | x]`` (from :func:`ppl_vae.latents.posterior_moments`):

- active units, posterior variances and decorrelation: :func:`ppl_vae.latents.latent_statistics`
  (``A_d = Var_x m_d(x) > 0.01``, Burda et al. 2016);
- PCA spectrum of the posterior means: the eigenvalues ``λ_1 ≥ ... ≥ λ_D`` of
  ``Cov_x m(x)`` and their shares ``λ_i / Σ λ``; the number of components
  needed for 95 % and 99 % of the variance says how many directions the
  code really uses, whatever the basis;
- per-dimension KL to the prior, from :mod:`ppl_vae.diagnostics.draws`
  (n/a when the guide or prior site does not factorise over dimensions).
"""

from __future__ import annotations

import numpy as np
import torch

from ppl_vae.latents import latent_statistics, posterior_moments


def pca_spectrum(means: np.ndarray) -> dict:
    """Eigenvalues of the covariance of ``means`` ``(n, D)``, shares and 95/99 % counts."""
    means = np.asarray(means, dtype=np.float64)
    if means.shape[0] < 2:
        return {"eigenvalues": None, "explained": None, "components_95": None,
                "components_99": None}
    eigenvalues = np.clip(np.linalg.eigvalsh(np.cov(means, rowvar=False).reshape(
        means.shape[1], means.shape[1]))[::-1], 0.0, None)
    total = eigenvalues.sum()
    share = eigenvalues / total if total > 0 else np.zeros_like(eigenvalues)
    cumulative = np.cumsum(share)
    return {
        "eigenvalues": eigenvalues.tolist(),
        "explained": share.tolist(),
        "components_95": int(np.searchsorted(cumulative, 0.95) + 1) if total > 0 else 0,
        "components_99": int(np.searchsorted(cumulative, 0.99) + 1) if total > 0 else 0,
    }


def latent_activity(model, guide, x: torch.Tensor, kl_per_dim: dict,
                    inputs: dict | None = None) -> tuple[dict, dict]:
    """Activity statistics and the arrays the figures need.

    Args:
        model, guide: the pair (call inside its ``scope()``).
        x: test examples on the pair's device.
        kl_per_dim: site -> per-dimension KL or None, from :class:`Draws`.
        inputs: per-example keyword inputs of the guide, one row per example of ``x``.

    Returns:
        ``(report, arrays)``: plain numbers for ``report.json``, and numpy
        ``means``/``variances`` ``(n, D)`` of the primary site.
    """
    try:
        site, means, variances = posterior_moments(model, guide, x, inputs=inputs)
    except NotImplementedError:
        return {"site": None, "reason": "the guide's distribution has no analytic mean/variance; "
                "activity statistics are n/a"}, {}
    report = latent_statistics(model, guide, x, inputs=inputs)
    means, variances = means.double().cpu().numpy(), variances.double().cpu().numpy()
    kl = kl_per_dim.get(site)
    report.update({
        "pca": pca_spectrum(means),
        "kl_per_dim": None if kl is None else kl.tolist(),
        "kl_per_dim_note": None if kl is not None else
        "n/a: the guide or prior site is not Independent over univariate dimensions",
    })
    return report, {"site": site, "means": means, "variances": variances}
