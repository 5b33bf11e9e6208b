"""Point-estimate guides: ``q(z | x) = δ(z - f_φ(x))``, plain or denoising.

With a delta guide the ELBO reduces to ``log p(x | f(x)) + log p(f(x))``
(``log q = 0``): an autoencoder with the prior as a penalty on the codes. The
``denoising`` variant (Vincent et al. 2008) encodes a corrupted copy ``x̃`` of
the input while training — each pixel is replaced by 0 with probability
``corruption`` — and the model still scores the clean ``x``. In evaluation
(``module.eval()``) the encoder sees the clean input.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule

from ppl_vae.errors import PplVaeError
from ppl_vae.guides.base import single_latent
from ppl_vae.nets import make_encoder
from ppl_vae.registry import GUIDES


class DeltaGuide(PyroModule):
    """``δ(z - f(x̃))`` where ``x̃`` is ``x`` with a ``corruption`` share of pixels zeroed."""

    def __init__(self, event_shape, latent_dim: int, site: str = "z", latent_scale: float = 1.0,
                 net: str = "auto", corruption: float = 0.0):
        super().__init__()
        if not 0 <= corruption < 1:
            raise PplVaeError(f"--corruption must be in [0, 1), got {corruption}")
        self.site, self.latent_scale, self.corruption = site, latent_scale, corruption
        self.encoder = make_encoder(tuple(event_shape), latent_dim, net)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Masking noise: each entry kept with probability ``1 - corruption``."""
        if not self.training or self.corruption == 0:
            return x
        return x * (torch.rand_like(x) >= self.corruption)

    def forward(self, x: torch.Tensor) -> None:
        code = self.encoder(self.corrupt(x))
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=self.latent_scale):
            pyro.sample(self.site, dist.Delta(code).to_event(1))


@GUIDES.register("delta", "point estimate q(z|x) = δ(z - f(x)): an autoencoder")
def build_delta(model, event_shape, net: str = "auto") -> DeltaGuide:
    site, latent_dim, scale = single_latent(model, "delta")
    return DeltaGuide(event_shape, latent_dim, site, scale, net)


@GUIDES.register("denoising", "denoising autoencoder: δ(z - f(x̃)), x̃ = x with pixels masked",
                 corruption="denoising guide: share of pixels masked")
def build_denoising(model, event_shape, net: str = "auto", corruption: float = 0.25) -> DeltaGuide:
    site, latent_dim, scale = single_latent(model, "denoising")
    return DeltaGuide(event_shape, latent_dim, site, scale, net, corruption)
