"""The autoencoder as the point-estimate end of the AE -> VAE progression.

    z ~ N(0, s² I),    x | z ~ p_θ(x | z)

trained with a ``delta`` guide ``q(z | x) = δ(z - f_φ(x))``: the ELBO becomes
``log p(x | f(x)) + log N(f(x); 0, s² I)``, a reconstruction loss plus an L2
penalty ``|f(x)|² / 2s²`` on the codes (MAP autoencoder). A large ``s`` makes the
penalty negligible. With the ``denoising`` guide the encoder sees a corrupted
input while the model scores the clean one. Not a density model: importance
sampling needs a guide with a density, so ``evaluate`` refuses delta guides.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch

from ppl_vae.errors import PplVaeError
from ppl_vae.models.vae import VAE
from ppl_vae.registry import MODELS


class Autoencoder(VAE):
    """A :class:`VAE` with a wide Gaussian prior, meant for a delta guide."""

    default_guide = "delta"

    def __init__(self, event_shape, latent_dim: int, prior_scale: float = 10.0, **options):
        super().__init__(event_shape, latent_dim, **options)
        if not prior_scale > 0:
            raise PplVaeError(f"--prior-scale must be positive, got {prior_scale}")
        self.prior_scale = float(prior_scale)

    def prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``N(0, s² I_K)``."""
        zeros = x.new_zeros(self.latent_dim)
        return dist.Normal(zeros, zeros + self.prior_scale).to_event(1)


@MODELS.register("autoencoder", "autoencoder: point codes from a delta/denoising guide, L2 prior",
                 prior_scale="autoencoder: scale of the Gaussian prior on the codes")
def build_autoencoder(event_shape, latent_dim: int = 10, prior_scale: float = 10.0,
                      likelihood: str = "bernoulli", net: str = "auto",
                      sigma: float | None = None) -> Autoencoder:
    return Autoencoder(event_shape, latent_dim, prior_scale, likelihood=likelihood, net=net,
                       sigma=sigma)
