"""Gaussian guides with correlated latents: chain, extended grid and full covariance.

All three output ``μ(x)`` and a factor of the precision or covariance from one
encoder head, for any model with one vector latent site (VAE, β-VAE):

- ``chain``: ``q(z | x) = N(μ, (L Lᵀ)⁻¹)``, ``L`` lower bidiagonal (tridiagonal
  precision, 3K - 1 numbers per example), :class:`ChainPrecisionNormal`;
- ``grid``: the latents as a rows × cols grid, ``L`` lower block-bidiagonal
  (block-tridiagonal "extended grid" precision), :class:`GridPrecisionNormal`;
  ``cols`` defaults to the largest divisor of K not above √K;
- ``full``: ``N(μ, S Sᵀ)`` with a dense lower-triangular ``S`` (positive
  diagonal by softplus), ``MultivariateNormal(scale_tril=S)``: the O(K³) reference.

Positive diagonals are ``softplus(raw) + 1e-3``. The KL to the model's
``Normal(0, 1).to_event(1)`` prior is registered for every one of them, so
``--elbo meanfield`` is analytic (for ``full`` the registration is below).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from ppl_vae.guides.base import single_latent
from pyro import poutine
from torch.distributions import Independent, MultivariateNormal, Normal, register_kl
from torch.nn.functional import softplus

from ppl_vae.distributions import (
    ChainPrecisionNormal,
    GridPrecisionNormal,
    chain_param_count,
    grid_param_count,
)
from ppl_vae.errors import PplVaeError
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES

MIN_DIAG = 1e-3


class StructuredGuide(torch.nn.Module):
    """One encoder head; ``make(flat)`` turns its output into the guide's distribution."""

    def __init__(self, event_shape, site: str, latent_scale: float, outputs: int, make,
                 net: str = "auto"):
        super().__init__()
        self.site, self.latent_scale, self.make = site, latent_scale, make
        self.encoder = make_encoder(tuple(event_shape), outputs, net)

    def forward(self, x: torch.Tensor) -> None:
        q = self.make(self.encoder(x))
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=self.latent_scale):
            pyro.sample(self.site, q)


def full_covariance(flat: torch.Tensor, k: int) -> dist.MultivariateNormal:
    """``N(μ, S Sᵀ)`` from ``[μ (k) | lower triangle of S, row by row (k(k+1)/2)]``."""
    loc, tril = flat.split([k, k * (k + 1) // 2], dim=-1)
    rows, cols = torch.tril_indices(k, k, device=flat.device)
    scale_tril = flat.new_zeros(*flat.shape[:-1], k, k)
    scale_tril[..., rows, cols] = tril
    diagonal = softplus(scale_tril.diagonal(dim1=-2, dim2=-1)) + MIN_DIAG
    scale_tril = scale_tril.tril(-1) + torch.diag_embed(diagonal)
    return dist.MultivariateNormal(loc, scale_tril=scale_tril)


@register_kl(MultivariateNormal, Independent)
def _kl_mvn_diagonal_normal(q: MultivariateNormal, p: Independent) -> torch.Tensor:
    """``KL(N(μ, Σ) || N(m, diag s²)) = ½[Σ_i Σ_ii/s_i² + Σ_i (μ_i-m_i)²/s_i² - K
    + 2 Σ log s_i - log det Σ]``, with ``log det Σ = 2 Σ log diag S``."""
    if not isinstance(p.base_dist, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError
    variance = p.base_dist.scale**2
    q_variance = q.scale_tril.pow(2).sum(-1)
    log_det = 2 * q.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * ((q_variance + (q.loc - p.base_dist.loc) ** 2) / variance
                  + variance.log() - 1).sum(-1) - 0.5 * log_det


def grid_columns(k: int, cols: int | None) -> int:
    """``cols`` if it divides ``k``, else the largest divisor of ``k`` not above √k."""
    if cols is None:
        return max(d for d in range(1, math.isqrt(k) + 1) if k % d == 0)
    if cols < 1 or k % cols:
        raise PplVaeError(f"--grid-cols {cols} must divide --latent-dim {k}")
    return cols


@GUIDES.register("chain", "Gaussian with tridiagonal precision (chain graph), O(K) per example")
def build_chain(model, event_shape, net: str = "auto") -> StructuredGuide:
    site, k, scale = single_latent(model, "chain")
    return StructuredGuide(event_shape, site, scale, chain_param_count(k),
                           lambda flat: ChainPrecisionNormal.from_flat(flat, k, MIN_DIAG), net)


@GUIDES.register("grid", "Gaussian with block-tridiagonal precision (extended grid graph)")
def build_grid(model, event_shape, net: str = "auto", grid_cols: int | None = None
               ) -> StructuredGuide:
    site, k, scale = single_latent(model, "grid")
    cols = grid_columns(k, grid_cols)
    rows = k // cols
    return StructuredGuide(event_shape, site, scale, grid_param_count(rows, cols),
                           lambda flat: GridPrecisionNormal.from_flat(flat, rows, cols,
                                                                      MIN_DIAG), net)


@GUIDES.register("full", "Gaussian with a dense covariance (scale_tril), the O(K³) reference")
def build_full(model, event_shape, net: str = "auto") -> StructuredGuide:
    site, k, scale = single_latent(model, "full")
    return StructuredGuide(event_shape, site, scale, k + k * (k + 1) // 2,
                           lambda flat: full_covariance(flat, k), net)
