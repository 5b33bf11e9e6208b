"""Gaussian guides with correlated latents: chain, extended grid and full covariance.

Each reads ``μ(x)`` and marginal scales ``σ(x)`` off the same encoder head as the
diagonal guide (:func:`ppl_vae.guides.diagonal.loc_and_scale`), and its couplings
``r(x)`` off a second, zero-initialised head on the encoder's last hidden layer.
The couplings are relative to the diagonal: with ``d = 1/σ`` and ``U`` unit
lower-triangular (ones on the diagonal, ``r`` below it),

- ``chain``: precision ``P = L Lᵀ``, ``L = diag(d) U``, ``U`` bidiagonal
  (``L_{i+1,i} = d_{i+1} r_i``; tridiagonal precision, K - 1 couplings),
  :class:`~ppl_vae.distributions.ChainPrecisionNormal`;
- ``grid``: the latents as a rows × cols grid, ``L = diag(d) U`` with ``U`` lower
  block-bidiagonal (block-tridiagonal "extended grid" precision),
  :class:`~ppl_vae.distributions.GridPrecisionNormal`; ``cols`` defaults to the
  largest divisor of K not above √K;
- ``full``: covariance ``Σ = S Sᵀ``, ``S = diag(σ) U`` with ``U`` dense
  lower-triangular, :class:`~ppl_vae.distributions.FullCovarianceNormal`: the O(K³)
  reference.

So ``r = 0`` is exactly the diagonal guide ``N(μ, diag σ²)``, and under the same
seed a structured guide starts as the diagonal guide does (same encoder weights,
couplings zero). Scaling by the diagonal makes the couplings scale-free: the
correlations depend on ``r`` alone. The KL to the model's ``Normal(0, 1).to_event(1)``
prior is analytic for all three (``--elbo meanfield``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pyro
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution
from pyro.nn import PyroModule
from torch import nn

from ppl_vae.distributions import (
    ChainPrecisionNormal,
    FullCovarianceNormal,
    GridPrecisionNormal,
)
from ppl_vae.errors import PplVaeError
from ppl_vae.guides.base import single_latent
from ppl_vae.guides.diagonal import loc_and_scale
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES

Make = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], TorchDistribution]


class StructuredGuide(PyroModule):
    """The diagonal guide's encoder plus a coupling head; ``make(μ, σ, r)`` builds ``q``."""

    def __init__(self, event_shape, site: str, latent_dim: int, latent_scale: float,
                 couplings: int, make: Make, net: str = "auto", activation: str = "relu"):
        super().__init__()
        self.site, self.latent_dim, self.latent_scale, self.make = (
            site, latent_dim, latent_scale, make)
        self.encoder = make_encoder(tuple(event_shape), 2 * latent_dim, net,
                                    activation=activation)
        # zero without drawing random numbers, so the seed's stream is the diagonal guide's
        self.coupling = nn.utils.skip_init(nn.Linear, self.encoder.head.in_features, couplings)
        nn.init.zeros_(self.coupling.weight)
        nn.init.zeros_(self.coupling.bias)

    def distribution(self, x: torch.Tensor) -> TorchDistribution:
        """``q(z | x)`` with event shape ``(K,)``."""
        features = self.encoder.features(x)
        loc, scale = loc_and_scale(self.encoder.head(features))
        return self.make(loc, scale, self.coupling(features))

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=self.latent_scale):
            pyro.sample(self.site, self.distribution(x))


def unit_lower(strict: torch.Tensor, k: int) -> torch.Tensor:
    """``U = I + (strict lower triangle filled row by row from strict)``, ``(..., k, k)``."""
    rows, cols = torch.tril_indices(k, k, offset=-1, device=strict.device)
    u = strict.new_zeros(*strict.shape[:-1], k, k)
    u[..., rows, cols] = strict
    return u + torch.eye(k, dtype=strict.dtype, device=strict.device)


def chain(loc: torch.Tensor, scale: torch.Tensor, r: torch.Tensor) -> ChainPrecisionNormal:
    """``L = diag(d) U``, ``d = 1/σ``: ``L_ii = d_i``, ``L_{i+1,i} = d_{i+1} r_i``."""
    diag = scale.reciprocal()
    return ChainPrecisionNormal(loc, diag, diag[..., 1:] * r)


def grid(rows: int, cols: int) -> Make:
    """``L = diag(d) U``: diagonal blocks ``D_r = diag(d_r)(I + strict lower)``,
    couplings ``C_r = diag(d_{r+1}) R_r``; ``r`` is ``[strict lower triangles of the
    rows' blocks (rows·cols(cols-1)/2) | coupling blocks ((rows-1)·cols²)]``."""
    strict = cols * (cols - 1) // 2

    def make(loc, scale, r) -> GridPrecisionNormal:
        d = scale.reciprocal().unflatten(-1, (rows, cols)).unsqueeze(-1)
        within, between = r.split([rows * strict, (rows - 1) * cols * cols], dim=-1)
        blocks = d * unit_lower(within.unflatten(-1, (rows, strict)), cols)
        coupling = d[..., 1:, :, :] * between.unflatten(-1, (rows - 1, cols, cols))
        return GridPrecisionNormal(loc, blocks, coupling)

    return make


def full(loc: torch.Tensor, scale: torch.Tensor, r: torch.Tensor) -> FullCovarianceNormal:
    """``Σ = S Sᵀ``, ``S = diag(σ) U``: ``S_ii = σ_i``, ``S_ij = σ_i r_ij`` (j < i)."""
    return FullCovarianceNormal(loc, scale_tril=scale.unsqueeze(-1)
                                * unit_lower(r, loc.shape[-1]))


def grid_columns(k: int, cols: int | None) -> int:
    """``cols`` if it divides ``k``, else the largest divisor of ``k`` not above √k."""
    if cols is None:
        return max(d for d in range(1, math.isqrt(k) + 1) if k % d == 0)
    if cols < 1 or k % cols:
        raise PplVaeError(f"--grid-cols {cols} must divide --latent-dim {k}")
    return cols


@GUIDES.register("chain", "Gaussian with tridiagonal precision (chain graph), O(K) per example")
def build_chain(model, event_shape, net: str = "auto", activation: str = "relu"
                ) -> StructuredGuide:
    site, k, scale = single_latent(model, "chain")
    return StructuredGuide(event_shape, site, k, scale, k - 1, chain, net, activation)


@GUIDES.register("grid", "Gaussian with block-tridiagonal precision (extended grid graph)",
                 grid_cols="grid guide: columns of the latent grid (None: the largest divisor "
                           "of --latent-dim not above its square root)")
def build_grid(model, event_shape, net: str = "auto", grid_cols: int | None = None,
               activation: str = "relu") -> StructuredGuide:
    site, k, scale = single_latent(model, "grid")
    cols = grid_columns(k, grid_cols)
    rows = k // cols
    couplings = rows * cols * (cols - 1) // 2 + (rows - 1) * cols * cols
    return StructuredGuide(event_shape, site, k, scale, couplings, grid(rows, cols), net,
                           activation)


@GUIDES.register("full", "Gaussian with a dense covariance (scale_tril), the O(K³) reference")
def build_full(model, event_shape, net: str = "auto", activation: str = "relu"
               ) -> StructuredGuide:
    site, k, scale = single_latent(model, "full")
    return StructuredGuide(event_shape, site, k, scale, k * (k - 1) // 2, full, net, activation)
