"""Amortized diagonal Gaussian: ``q(z | x) = N(z; μ_φ(x), diag σ_φ(x)²)``.

The encoder outputs ``(μ, ρ)`` and ``σ = softplus(ρ) + 1e-5``, which keeps σ
positive without the overflow of ``exp``. The site carries the model's latent
scale (β) so that ``β · E_q[log q - log p]`` is the scaled KL.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch.nn.functional import softplus

from ppl_vae.guides.base import single_latent
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES

MIN_SCALE = 1e-5


def loc_and_scale(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(μ, σ)`` from an encoder output ``[μ (K) | ρ (K)]``: ``σ = softplus(ρ) + 1e-5``.

    Every Gaussian guide of this project reads its means and marginal scales this
    way, so they all start from the same ``q`` under the same seed.
    """
    loc, raw_scale = flat.chunk(2, dim=-1)
    return loc, softplus(raw_scale) + MIN_SCALE


class DiagonalGuide(PyroModule):
    """Mean-field Gaussian guide on one latent site."""

    def __init__(self, event_shape, latent_dim: int, site: str = "z", latent_scale: float = 1.0,
                 net: str = "auto", activation: str = "relu", hidden: tuple = (400,)):
        super().__init__()
        self.site, self.latent_dim, self.latent_scale = site, latent_dim, latent_scale
        self.encoder = make_encoder(tuple(event_shape), 2 * latent_dim, net, tuple(hidden),
                                    activation)

    def distribution(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``N(μ(x), diag σ(x)²)`` with event shape ``(K,)``."""
        return dist.Normal(*loc_and_scale(self.encoder(x))).to_event(1)

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=self.latent_scale):
            pyro.sample(self.site, self.distribution(x))


@GUIDES.register("diagonal", "amortized diagonal Gaussian q(z|x) = N(μ(x), diag σ(x)²)")
def build_diagonal(model, event_shape, net: str = "auto", activation: str = "relu",
                   hidden: tuple = (400,)) -> DiagonalGuide:
    site, latent_dim, scale = single_latent(model, "diagonal")
    return DiagonalGuide(event_shape, latent_dim, site, scale, net, activation, hidden)
