"""Per-dimension statistics of a guide's latent code over a data set.

Read from guide traces only, for the traversed latent site (``model.latent_site``
or the guide's last site), with ``m_d(x) = E_q[z_d | x]`` and
``v_d(x) = Var_q[z_d | x]`` from the site's distribution (estimated from draws
where it has no closed form, :func:`site_moments`) — of the collapsed guide
where the pair declares one (:func:`ppl_vae.traces.collapsed_pair`), so NGVAE's
moments are the Student-t marginal's, ``b/(a-1)``, not one λ draw's:

- activity ``A_d = Var_x m_d(x)``; unit d is *active* when ``A_d > 0.01``
  (Burda et al. 2016);
- mean posterior variance ``V_d = E_x v_d(x)``; with a N(0, 1) prior an
  informative dimension has ``V_d`` well below 1, a collapsed one ``V_d ≈ 1``;
  we count dimensions with ``V_d < 0.5`` (the gap of the bimodal histogram);
- the correlation matrix ``R`` of the posterior means over the data and the
  decorrelation score ``‖diag R‖_F / ‖R - diag R‖_F`` (higher: less correlated;
  ``√K / (mean |ρ| · √(K(K-1)))`` roughly), computed over active units only,
  since a collapsed unit's correlations are noise;
- the *aggregate posterior* ``q(z) = E_x q(z | x)`` and two statistics of it, the
  seed's (NGVAE slides) "Entropy" and "Decorrelation" (:func:`aggregate_covariance`,
  :func:`variance_entropy`, :func:`aggregate_decorrelation`);
- the PCA spectrum of the posterior means (:func:`pca_spectrum`).
"""

from __future__ import annotations

import numpy as np
import torch
from pyro import poutine

from ppl_vae.traces import collapsed_pair, plan_of, primary_site, sample_sites, take

ACTIVE_THRESHOLD = 0.01
MOMENT_DRAWS = 256
INFORMATIVE_VARIANCE = 0.5


@torch.no_grad()
def posterior_moments(model, guide, x: torch.Tensor, batch: int = 500,
                      inputs: dict | None = None):
    """``(site, means, variances)``: per-example mean and variance ``(n, K)`` of the primary
    latent site (:func:`ppl_vae.traces.primary_site`), of the collapsed guide where declared."""
    inputs = inputs or {}
    name = primary_site(model, plan_of(model, guide, x[:1], take(inputs, slice(0, 1)))[1])
    model, guide = collapsed_pair(model, guide) or (model, guide)  # analytic moments
    means, variances = [], []
    for start in range(0, x.shape[0], batch):
        chunk, given = x[start:start + batch], take(inputs, slice(start, start + batch))
        sites = {s["name"]: s for s in sample_sites(poutine.trace(guide).get_trace(chunk,
                                                                                   **given))}
        mean, variance = site_moments(sites[name]["fn"])
        means.append(mean.reshape(chunk.shape[0], -1))
        variances.append(variance.reshape(chunk.shape[0], -1))
    return name, torch.cat(means), torch.cat(variances)


def mean_representation(model, guide, device="cpu"):
    """``images -> E_q[z | x]`` as a numpy array ``(n, K)``: the representation the
    disentanglement metrics score (call it inside the pair's scope)."""
    def representation(images: torch.Tensor):
        return posterior_moments(model, guide, images.to(device))[1].cpu().numpy()

    return representation


def site_moments(fn, draws: int = MOMENT_DRAWS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E_q z, Var_q z)`` of a guide site's distribution: its own ``mean`` and
    ``variance`` where it has them, else the sample mean and variance of ``draws``
    draws (a flow has no closed form; the standard error is ``sd/√draws``)."""
    try:
        return fn.mean, fn.variance
    except NotImplementedError:
        z = fn.sample((draws,))
        return z.mean(0), z.var(0)


def decorrelation(means: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Correlation matrix of the columns of ``means`` and ``‖diag R‖_F / ‖offdiag R‖_F``."""
    if means.shape[1] < 2:
        return torch.ones(1, 1), float("inf")
    corr = torch.corrcoef(means.T).nan_to_num(0.0)
    return corr, _decorrelation_score(corr)


def _decorrelation_score(corr: torch.Tensor) -> float:
    """``‖diag R‖_F / ‖R - diag R‖_F = 1 / (ρ_rms √(K-1))``, ρ_rms the off-diagonal RMS."""
    off_norm = (corr - torch.diag(torch.diag(corr))).norm()
    return float(torch.diag(corr).norm() / off_norm) if off_norm > 0 else float("inf")


def aggregate_covariance(means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Covariance of the aggregate posterior ``q(z) = E_x q(z | x)`` over the data, exactly::

        Σ = Cov_x m(x) + diag E_x v(x)        (law of total covariance)

    for a guide that is diagonal given x (a structured guide's within-example
    covariances are left out). It is the expectation, over the guide's draws, of
    the empirical covariance of one sampled z per example — the slide's "empirical
    covariance matrices of the latent variables over the whole dataset" — without
    the sampling noise that floors a decorrelation score at ``√(n/(K-1))``.
    """
    centred = means - means.mean(0)
    return centred.T @ centred / max(means.shape[0] - 1, 1) + torch.diag(variances.mean(0))


def variance_entropy(covariance: torch.Tensor) -> float:
    """The seed's "Entropy (−)": how evenly the aggregate variance spreads over dimensions::

        H = -Σ_d p_d log p_d,    p_d = Σ_dd / tr Σ        (nats, 0 ≤ H ≤ log K)

    Why this reading: the slides give 2.6 for the vanilla VAE and both β-VAEs and
    2.3 for NGVAE with K = 15 latents, just under ``log 15 = 2.71``. A Gaussian-prior
    VAE keeps every dimension's aggregate variance near 1 (an informative one by the
    spread of its means, a collapsed one by its posterior variance), so H sits near
    ``log K`` whatever β — the slides' three equal baseline values. Lower means the
    variance is concentrated on fewer dimensions (the informative ones); a
    differential entropy of q(z | x) would instead move with β and the posterior
    scale, which the slides' equal baselines rule out.
    """
    diagonal = torch.diag(covariance).clamp_min(0)
    share = diagonal / diagonal.sum()
    return float(-(share * share.clamp_min(1e-300).log()).sum())


def aggregate_decorrelation(covariance: torch.Tensor) -> float:
    """The seed's "Decorrelation (+)": ``‖diag R‖_F / ‖R - diag R‖_F`` of the aggregate
    correlation ``R = D^{-1/2} Σ D^{-1/2}`` over all K dimensions (higher: less correlated).

    Why this reading: the slides compute it from "scaled empirical covariance
    matrices of the latent variables over the whole dataset", i.e. correlations of
    sampled latents, not of posterior means; their 7.8–14.3 for K = 15 mean
    off-diagonal RMS correlations of 0.019–0.034. Means alone give 0.7–3.9 on our
    models, because a collapsed dimension's means are small noise that correlates
    freely, while its sampled values are dominated by its N(0, 1) posterior.
    """
    scale = torch.diag(covariance).clamp_min(1e-300).rsqrt()
    return _decorrelation_score(scale[:, None] * covariance * scale[None, :])


def pca_spectrum(means: np.ndarray) -> dict:
    """Eigenvalues ``λ_1 ≥ ... ≥ λ_D`` of ``Cov_x m(x)``, their shares ``λ_i / Σ λ`` and the
    number of components for 95 % and 99 % of the variance: how many directions the code
    really uses, whatever the basis."""
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


def latent_statistics(model, guide, x: torch.Tensor, inputs: dict | None = None,
                      moments: tuple | None = None) -> dict:
    """The statistics of the module docstring, as plain numbers and lists.

    ``moments``: the ``(site, means, variances)`` of :func:`posterior_moments` on ``x``,
    when already computed.
    """
    site, means, variances = moments or posterior_moments(model, guide, x, inputs=inputs)
    activity, mean_variance = means.var(0), variances.mean(0)
    active = activity > ACTIVE_THRESHOLD
    corr, score = decorrelation(means[:, active]) if active.sum() >= 2 else (None, None)
    aggregate = aggregate_covariance(means.double(), variances.double())
    return {
        "site": site,
        "activity": activity.tolist(),
        "mean_posterior_variance": mean_variance.tolist(),
        "active_units": int(active.sum()),
        "informative_by_variance": int((mean_variance < INFORMATIVE_VARIANCE).sum()),
        "decorrelation_active": score,
        "correlation_all": decorrelation(means)[0].tolist(),
        "variance_entropy": variance_entropy(aggregate),
        "decorrelation_aggregate": aggregate_decorrelation(aggregate) if len(activity) > 1
        else None,
        "pca": pca_spectrum(means.double().cpu().numpy()),
    }
