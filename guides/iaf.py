"""Inverse autoregressive flow on the diagonal guide (Kingma et al. 2016).

    z₀ ~ N(μ(x), diag σ(x)²),    z_l = m_l(z_{l-1}, h) + exp(s_l(z_{l-1}, h)) ⊙ z_{l-1},
    z = z_L,    log q(z | x) = log N(z₀; μ, σ²) - Σ_l Σ_i s_{l,i}(z_{l-1}, h),

with ``(m_l, s_l)`` the outputs of a MADE network (Pyro's
``ConditionalAutoRegressiveNN``) whose i-th outputs see only the inputs before i in
the layer's order, and ``h(x)`` a context read off the encoder's last hidden layer.
Each layer is Pyro's ``ConditionalAffineAutoregressive``; successive layers reverse
the order. ``μ, σ`` come from the diagonal guide's head
(:func:`ppl_vae.guides.diagonal.loc_and_scale`) and the flows' output layers start
at zero (``m = s = 0``, the identity), so under the same seed the guide starts as
the diagonal guide does.

Sampling and scoring the drawn value are one pass per layer (Pyro caches the
inverse); scoring any other value inverts each layer in K passes.
"""

from __future__ import annotations

from typing import cast

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN, PyroModule
from torch import nn

from ppl_vae.errors import PplVaeError
from ppl_vae.guides.base import single_latent
from ppl_vae.guides.diagonal import loc_and_scale
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES


def identity_flow(latent_dim: int, context_dim: int, hidden: int, reverse: bool
                  ) -> ConditionalAffineAutoregressive:
    """One IAF layer that starts as the identity (its output layer zeroed)."""
    order = torch.arange(latent_dim)
    permutation = order.flip(0) if reverse else order
    # Pyro annotates permutation as the legacy torch.LongTensor; an int64 tensor is one
    made = ConditionalAutoRegressiveNN(latent_dim, context_dim, [hidden],
                                       permutation=permutation)  # type: ignore[arg-type]
    output = cast(nn.Linear, made.layers[-1])  # Pyro's MaskedLinear
    nn.init.zeros_(output.weight)
    nn.init.zeros_(output.bias)
    return ConditionalAffineAutoregressive(made)


class IAFGuide(PyroModule):
    """Diagonal Gaussian ``q₀(z₀ | x)`` pushed through ``flows`` IAF layers."""

    def __init__(self, event_shape, site: str, latent_dim: int, latent_scale: float,
                 flows: int = 2, net: str = "auto", activation: str = "relu"):
        super().__init__()
        if flows < 1:
            raise PplVaeError(f"--flows must be at least 1, got {flows}; "
                              "use --guide diagonal for no flow")
        self.site, self.latent_dim, self.latent_scale = site, latent_dim, latent_scale
        self.encoder = make_encoder(tuple(event_shape), 2 * latent_dim, net,
                                    activation=activation)
        context_dim, hidden = 2 * latent_dim, max(64, 4 * latent_dim)
        self.context = nn.Linear(self.encoder.head.in_features, context_dim)
        self.flows = nn.ModuleList(identity_flow(latent_dim, context_dim, hidden, layer % 2 == 1)
                                   for layer in range(flows))

    def distribution(self, x: torch.Tensor) -> dist.TransformedDistribution:
        """``q(z | x)`` with event shape ``(K,)``."""
        features = self.encoder.features(x)
        base = dist.Normal(*loc_and_scale(self.encoder.head(features))).to_event(1)
        context = self.context(features)
        flows = [cast(ConditionalAffineAutoregressive, f) for f in self.flows]
        return dist.TransformedDistribution(base, [f.condition(context) for f in flows])

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=self.latent_scale):
            pyro.sample(self.site, self.distribution(x))


@GUIDES.register("iaf", "diagonal Gaussian through inverse autoregressive flows "
                        "(Kingma et al. 2016; Pyro transforms)",
                 flows="iaf guide: inverse autoregressive flow layers on the diagonal Gaussian")
def build_iaf(model, event_shape, net: str = "auto", flows: int = 2,
              activation: str = "relu") -> IAFGuide:
    site, k, scale = single_latent(model, "iaf")
    return IAFGuide(event_shape, site, k, scale, flows, net, activation)
