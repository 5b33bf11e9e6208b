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
  seed's (NGVAE slides) "Entropy" and "Decorrelation" (:func:`aggregate_covariance`
  with the full within-example covariance, :func:`variance_entropy`,
  :func:`aggregate_decorrelation` over the active dimensions), and the decorrelation of
  one sampled z per example with its noise ceiling (:func:`sampled_decorrelation`).
  With an N(0, 1) prior every dimension's aggregate variance stays near 1 (spread of
  the means, or posterior variance), so the entropy sits near ``log K`` for any such
  model by construction;
- beside each decorrelation score, the off-diagonal RMS correlation ``ρ_rms``
  (:func:`correlation_rms`) and the number of dimensions K it is over: the score is
  ``1 / (ρ_rms √(K - 1))``, so the same pairwise correlation scores 4.0 over 10
  dimensions and 12.1 over 2 (ρ_rms = 0.0825); models with different active counts
  are compared on ``ρ_rms``, not on the score;
- the PCA spectrum of the posterior means (:func:`pca_spectrum`).

Padding never enters them: an example whose entries at the site are masked, in the
guide or in the model (``poutine.mask`` or ``dist.mask``, as a sequence model masks the
steps past each sequence's length), is left out of every statistic
(:func:`unpadded_rows`); its moments are NaN in :func:`pair_moments`. No model is
recognised by name: the masks come from the traces.

The functions of a pair take the :class:`~ppl_vae.Pair` (:func:`pair_moments`,
:func:`pair_statistics`, :func:`pair_representation`); :func:`posterior_moments`,
:func:`latent_statistics` and :func:`mean_representation` are their ``(model, guide)``
forms, for scripts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from pyro import poutine
from torch.distributions import Independent

from ppl_vae.errors import PplVaeError
from ppl_vae.traces import take

if TYPE_CHECKING:
    from pyro.poutine.runtime import Message

    from ppl_vae.pair import Pair

ACTIVE_THRESHOLD = 0.01
MOMENT_DRAWS = 256
INFORMATIVE_VARIANCE = 0.5


def _pair(model, guide) -> Pair:
    """``Pair(model, guide)`` for the ``(model, guide)`` forms; imported late, since
    :mod:`ppl_vae.pair` imports the guides, one of which reads this module."""
    from ppl_vae.pair import Pair

    return Pair(model, guide)


def _primary_site(pair: Pair, x: torch.Tensor, inputs: dict) -> str:
    """The pair's primary latent site, asked with the first example of ``x``."""
    return pair.primary_site(x, inputs)


def _primary_site_by_chunk(pair: Pair, x: torch.Tensor, batch: int, inputs: dict):
    """``(rows, fn, kept)`` for each chunk of ``x``: the primary latent site's distribution
    under the guide (the collapsed guide where declared) and which of the chunk's examples
    hold no padding at that site (:func:`unpadded_rows`)."""
    name = _primary_site(pair, x, inputs)
    source = pair.collapsed or pair  # analytic moments
    for start in range(0, x.shape[0], batch):
        chunk, given = x[start:start + batch], take(inputs, slice(start, start + batch))
        guide_trace = poutine.trace(source.guide).get_trace(chunk, **given)
        model_trace = poutine.trace(poutine.replay(source.model, trace=guide_trace)).get_trace(
            chunk, **given)
        site = guide_trace.nodes[name]
        yield chunk.shape[0], site["fn"], unpadded_rows(site, model_trace.nodes.get(name),
                                                        chunk.shape[0])


def unpadded_rows(guide_site: Message, model_site: Message | None, rows: int) -> torch.Tensor:
    """``(rows,)`` bool: the examples whose every entry of the site counts.

    An entry is padding where the guide's or the model's site is masked
    (``poutine.mask``, ``dist.mask``: :func:`ppl_vae.diagnostics.draws.site_mask`), as a
    sequence model masks the steps past each sequence's length; an example with any
    padding at the site leaves the statistics, whatever values its padding holds.
    """
    from ppl_vae.diagnostics.draws import site_mask  # it imports the pair, which reads us

    value = guide_site["value"]
    kept = torch.ones(rows, dtype=torch.bool, device=value.device if value is not None else None)
    for site in (guide_site, model_site):
        mask = None if site is None else site_mask(site)
        if mask is not None:
            kept &= mask.reshape(rows, -1).all(1)
    return kept


def too_few_unpadded(site: str, count: int) -> str:
    """Why the statistics of ``site`` are n/a: fewer than two examples without padding."""
    return (f"n/a: {count} example(s) hold no padding at latent site '{site}' and the "
            "statistics need two; study an earlier step of the sequence with --site")


@torch.no_grad()
def pair_moments(pair: Pair, x: torch.Tensor, batch: int = 500, inputs: dict | None = None):
    """``(site, means, variances)``: per-example mean and variance ``(n, K)`` of the pair's
    primary latent site (:meth:`ppl_vae.Pair.primary_site`), of the collapsed guide where
    declared; NaN in the rows of examples padded at that site (:func:`unpadded_rows`)."""
    inputs = inputs or {}
    means, variances = [], []
    for rows, fn, kept in _primary_site_by_chunk(pair, x, batch, inputs):
        mean, variance = site_moments(fn)
        nan = torch.tensor(float("nan"), device=mean.device, dtype=mean.dtype)
        means.append(torch.where(kept[:, None], mean.reshape(rows, -1), nan))
        variances.append(torch.where(kept[:, None], variance.reshape(rows, -1), nan))
    return _primary_site(pair, x, inputs), torch.cat(means), torch.cat(variances)


def posterior_moments(model, guide, x: torch.Tensor, batch: int = 500,
                      inputs: dict | None = None):
    """:func:`pair_moments` of ``(model, guide)``."""
    return pair_moments(_pair(model, guide), x, batch, inputs)


@torch.no_grad()
def within_covariance_and_draws(pair: Pair, x: torch.Tensor, batch: int = 500,
                                inputs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E_x Σ(x), z)``: the mean within-example covariance ``(K, K)`` of the primary site
    (:func:`site_covariance`, the full matrix for chain, grid, full and IAF guides) and
    one draw ``z ~ q(z | x)`` per example ``(n, K)``, with a forked RNG (later draws
    are unchanged). Examples padded at the site (:func:`unpadded_rows`) are left out of
    the mean, and their draws are NaN."""
    total: torch.Tensor | float = 0.0
    draws, count = [], 0
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for rows, fn, kept in _primary_site_by_chunk(pair, x, batch, inputs or {}):
            covariance = site_covariance(fn)
            covariance = covariance.reshape(rows, *covariance.shape[-2:]).double()
            total = total + covariance[kept].sum(0)
            count += int(kept.sum())
            draw = fn.sample().reshape(rows, -1)
            draws.append(torch.where(kept[:, None], draw, torch.full_like(draw, float("nan"))))
    return torch.as_tensor(total) / max(count, 1), torch.cat(draws)


def pair_representation(pair: Pair, device="cpu"):
    """``images -> E_q[z | x]`` as a numpy array ``(n, K)``: the representation the
    disentanglement metrics score (call it inside the pair's scope)."""
    def representation(images: torch.Tensor):
        return pair_moments(pair, images.to(device))[1].cpu().numpy()

    return representation


def mean_representation(model, guide, device="cpu"):
    """:func:`pair_representation` of ``(model, guide)``."""
    return pair_representation(_pair(model, guide), device)


def site_moments(fn, draws: int = MOMENT_DRAWS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E_q z, Var_q z)`` of a guide site's distribution: its own ``mean`` and
    ``variance`` where it has them, else the sample mean and variance of ``draws``
    draws (a flow has no closed form; the standard error is ``sd/√draws``)."""
    try:
        return fn.mean, fn.variance
    except NotImplementedError:
        z = fn.sample((draws,))
        return z.mean(0), z.var(0)


def site_covariance(fn, draws: int = MOMENT_DRAWS) -> torch.Tensor:
    """``Cov_q(z | x)`` per example, ``batch + (K, K)``: ``diag Var`` for a factorised site
    (``Normal(...).to_event(1)``, a Student-t marginal), the distribution's own
    ``covariance_matrix`` (chain, grid, full), else the sample covariance of ``draws``
    draws (a flow); ``(1, 1)`` per example for a scalar site (one per step of a sequence)."""
    if fn.event_shape == ():
        return site_moments(fn, draws)[1][..., None, None]
    if isinstance(fn, Independent) and fn.reinterpreted_batch_ndims == 1 \
            and fn.base_dist.event_shape == ():
        return torch.diag_embed(fn.variance)
    try:
        return fn.covariance_matrix
    except (AttributeError, NotImplementedError):
        z = fn.sample((draws,))
        centred = z - z.mean(0)
        return torch.einsum("s...i,s...j->...ij", centred, centred) / (draws - 1)


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


def correlation_rms(corr: torch.Tensor) -> float | None:
    """The off-diagonal RMS correlation of a ``(K, K)`` correlation matrix::

        ρ_rms = √( Σ_{i≠j} R_ij² / (K (K - 1)) )

    (None for K < 2). With a unit diagonal the decorrelation score is
    ``‖diag R‖_F / ‖R - diag R‖_F = √K / (ρ_rms √(K (K - 1))) = 1 / (ρ_rms √(K - 1))``:
    it grows as K shrinks at a fixed ρ_rms, which this number does not."""
    k = corr.shape[0]
    if k < 2:
        return None
    off = corr - torch.diag(torch.diag(corr))
    return float((off.double().square().sum() / (k * (k - 1))).sqrt())


def correlation_of_covariance(covariance: torch.Tensor) -> torch.Tensor:
    """``R = D^{-1/2} Σ D^{-1/2}``, ``D = diag Σ``."""
    scale = torch.diag(covariance).clamp_min(1e-300).rsqrt()
    return scale[:, None] * covariance * scale[None, :]


def aggregate_covariance(means: torch.Tensor, variances: torch.Tensor | None = None,
                         within: torch.Tensor | None = None) -> torch.Tensor:
    """Covariance of the aggregate posterior ``q(z) = E_x q(z | x)`` over the data, exactly::

        Σ = Cov_x m(x) + E_x Σ(x)        (law of total covariance)

    ``within``: ``E_x Σ(x)`` ``(K, K)`` (:func:`within_covariance_and_draws`, which keeps a
    structured guide's within-example covariances); or ``variances`` ``(n, K)`` for a
    guide that is diagonal given x (``E_x Σ(x) = diag E_x v(x)``). It is the
    expectation, over the guide's draws, of the empirical covariance of one sampled z
    per example — the slide's "empirical covariance matrices of the latent variables
    over the whole dataset" — without the sampling noise that floors a decorrelation
    score at ``√(n/(K-1))``.
    """
    centred = means - means.mean(0)
    between = centred.T @ centred / max(means.shape[0] - 1, 1)
    if within is None:
        if variances is None:
            raise PplVaeError("aggregate_covariance needs variances= (n, K) or within= (K, K)")
        within = torch.diag(variances.mean(0))
    return between + within


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
    correlation ``R = D^{-1/2} Σ D^{-1/2}`` (higher: less correlated); pass the active
    dimensions' block of Σ (:func:`latent_statistics` does).

    Why this reading: the slides compute it from "scaled empirical covariance
    matrices of the latent variables over the whole dataset", i.e. correlations of
    sampled latents, not of posterior means; their 7.8–14.3 for K = 15 mean
    off-diagonal RMS correlations of 0.019–0.034. Why over the active dimensions: a
    collapsed dimension (``q(z_d | x) = N(0, 1)`` for every x) is exactly uncorrelated
    with everything, so over all K a model scores higher the more it collapses (β = 150
    read 5·10⁴ in an audit): the score would reward collapse, not disentanglement.
    """
    return _decorrelation_score(correlation_of_covariance(covariance))


def sampled_decorrelation(draws: torch.Tensor) -> tuple[float, float]:
    """``(score, ceiling)``: the decorrelation score of the sample correlation of one draw
    per example ``(n, K)``, as the seed's figures compute it, and its sampling-noise
    ceiling ``√(n/(K-1))`` — independent dimensions give off-diagonal sample correlations
    of RMS ``1/√n``, so no model scores much above the ceiling whatever it learned."""
    n, k = draws.shape
    if k < 2:
        return float("inf"), float("inf")
    corr = torch.corrcoef(draws.double().T).nan_to_num(0.0)
    return _decorrelation_score(corr), math.sqrt(n / (k - 1))


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


def pair_statistics(pair: Pair, x: torch.Tensor, inputs: dict | None = None,
                    moments: tuple | None = None) -> dict:
    """The statistics of the module docstring, as plain numbers and lists, over the examples
    that hold no padding at the site (``examples``; ``padded_examples`` left out).

    ``moments``: the ``(site, means, variances)`` of :func:`pair_moments` on ``x``,
    when already computed.
    """
    site, means, variances = moments or pair_moments(pair, x, inputs=inputs)
    kept = ~means.isnan().any(1)  # padded examples are NaN (pair_moments)
    if kept.sum() < 2:
        raise PplVaeError(too_few_unpadded(site, int(kept.sum())))
    means, variances = means[kept], variances[kept]
    activity, mean_variance = means.var(0), variances.mean(0)
    active = activity > ACTIVE_THRESHOLD
    corr, score = decorrelation(means[:, active]) if active.sum() >= 2 else (None, None)
    within, draws = within_covariance_and_draws(pair, x, inputs=inputs)
    draws = draws[kept]
    aggregate = aggregate_covariance(means.double(), within=within.to(means.device))
    used = active.nonzero().flatten()
    sampled, ceiling = sampled_decorrelation(draws)
    active_aggregate = correlation_of_covariance(aggregate[used][:, used])
    return {
        "site": site,
        "activity": activity.tolist(),
        "mean_posterior_variance": mean_variance.tolist(),
        "active_units": int(active.sum()),
        "informative_by_variance": int((mean_variance < INFORMATIVE_VARIANCE).sum()),
        "decorrelation_active": score,
        "correlation_rms_active": None if corr is None else correlation_rms(corr),
        "correlation_all": decorrelation(means)[0].tolist(),
        "variance_entropy": variance_entropy(aggregate),
        "decorrelation_aggregate": aggregate_decorrelation(aggregate[used][:, used])
        if len(used) > 1 else None,
        "decorrelation_aggregate_dims": len(used),
        "examples": int(kept.sum()),
        "padded_examples": int((~kept).sum()),
        "correlation_rms_aggregate": correlation_rms(active_aggregate),
        "decorrelation_aggregate_all_dims": aggregate_decorrelation(aggregate)
        if len(activity) > 1 else None,
        "decorrelation_sampled": sampled,
        "decorrelation_sampled_ceiling": ceiling,
        "correlation_rms_sampled": correlation_rms(torch.corrcoef(draws.double().T)
                                                   .nan_to_num(0.0).reshape(draws.shape[1], -1)),
        "pca": pca_spectrum(means.double().cpu().numpy()),
    }


def latent_statistics(model, guide, x: torch.Tensor, inputs: dict | None = None,
                      moments: tuple | None = None) -> dict:
    """:func:`pair_statistics` of ``(model, guide)``."""
    return pair_statistics(_pair(model, guide), x, inputs, moments)
