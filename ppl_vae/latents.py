"""Per-dimension statistics of a guide's latent code over a data set.

Read from guide traces only, for the traversed latent site (``model.latent_site``
or the guide's last site), with ``m_d(x) = E_q[z_d | x]`` and
``v_d(x) = Var_q[z_d | x]`` from the site's distribution — of the collapsed guide
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
  since a collapsed unit's correlations are noise.
"""

from __future__ import annotations

import torch
from pyro import poutine

from ppl_vae.traces import collapsed_pair, sample_sites, take

ACTIVE_THRESHOLD = 0.01
INFORMATIVE_VARIANCE = 0.5


@torch.no_grad()
def posterior_moments(model, guide, x: torch.Tensor, batch: int = 500,
                      inputs: dict | None = None):
    """``(site, means, variances)``: per-example mean and variance ``(n, K)`` of the latent."""
    name = getattr(model, "latent_site", None)
    model, guide = collapsed_pair(model, guide) or (model, guide)  # analytic moments
    means, variances = [], []
    for start in range(0, x.shape[0], batch):
        chunk, given = x[start:start + batch], take(inputs or {}, slice(start, start + batch))
        sites = {s["name"]: s for s in sample_sites(poutine.trace(guide).get_trace(chunk,
                                                                                   **given))}
        name = name if name in sites else list(sites)[-1]
        fn = sites[name]["fn"]
        means.append(fn.mean.reshape(chunk.shape[0], -1))
        variances.append(fn.variance.reshape(chunk.shape[0], -1))
    return name, torch.cat(means), torch.cat(variances)


def decorrelation(means: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Correlation matrix of the columns of ``means`` and ``‖diag R‖_F / ‖offdiag R‖_F``."""
    if means.shape[1] < 2:
        return torch.ones(1, 1), float("inf")
    corr = torch.corrcoef(means.T).nan_to_num(0.0)
    off = corr - torch.diag(torch.diag(corr))
    off_norm = off.norm()
    score = float(torch.diag(corr).norm() / off_norm) if off_norm > 0 else float("inf")
    return corr, score


def latent_statistics(model, guide, x: torch.Tensor, inputs: dict | None = None) -> dict:
    """The statistics of the module docstring, as plain numbers and lists."""
    site, means, variances = posterior_moments(model, guide, x, inputs=inputs)
    activity, mean_variance = means.var(0), variances.mean(0)
    active = activity > ACTIVE_THRESHOLD
    corr, score = decorrelation(means[:, active]) if active.sum() >= 2 else (None, None)
    return {
        "site": site,
        "activity": activity.tolist(),
        "mean_posterior_variance": mean_variance.tolist(),
        "active_units": int(active.sum()),
        "informative_by_variance": int((mean_variance < INFORMATIVE_VARIANCE).sum()),
        "decorrelation_active": score,
        "correlation_all": decorrelation(means)[0].tolist(),
    }
