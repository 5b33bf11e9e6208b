"""β-VAE (Higgins et al. 2017) through ``poutine.scale`` on the latent site.

The objective per example is

    L_β(x) = E_q[log p(x | z)] - β · KL(q(z | x) || p(z)),

obtained by scaling the latent site ``z`` by β in the model (``β log p(z)``)
and in the guide (``β log q(z | x)``); the observation site is not scaled.
With β = 1 this is the VAE. β ≤ 0 is refused (``poutine.scale`` needs β > 0).
"""

from __future__ import annotations

from ppl_vae.errors import PplVaeError
from ppl_vae.models.vae import VAE
from ppl_vae.registry import MODELS


class BetaVAE(VAE):
    """A :class:`VAE` whose latent site carries scale β (model and guide)."""

    def __init__(self, event_shape, latent_dim: int, beta: float = 4.0, **options):
        super().__init__(event_shape, latent_dim, **options)
        if not beta > 0:
            raise PplVaeError(f"--beta must be positive, got {beta}")
        self.latent_scale = float(beta)


@MODELS.register("beta_vae", "β-VAE: KL term weighted by β via poutine.scale (Higgins et al. 2017)",
                 beta="beta_vae: weight β of the KL term")
def build_beta_vae(event_shape, latent_dim: int = 10, beta: float = 4.0,
                   likelihood: str = "bernoulli", net: str = "auto",
                   sigma: float | None = None, activation: str = "relu",
                   hidden: tuple = (400,)) -> BetaVAE:
    return BetaVAE(event_shape, latent_dim, beta, likelihood=likelihood, net=net, sigma=sigma,
                   activation=activation, hidden=hidden)
