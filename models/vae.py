"""The vanilla VAE (Kingma & Welling 2014) as a Pyro model.

    z ~ N(0, I_K),    x | z ~ p_θ(x | z) = likelihood(decoder_θ(z))

``latent_scale`` multiplies the latent site's log-density (``poutine.scale``);
it is 1 here and β in :mod:`ppl_vae.models.beta_vae`. The guide must carry the
same scale on its ``z`` site so the KL term, not only ``log p(z)``, is scaled.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule

from ppl_vae.errors import PplVaeError
from ppl_vae.likelihoods import make_likelihood
from ppl_vae.nets import make_decoder
from ppl_vae.registry import MODELS


class VAE(PyroModule):
    """``p(x, z) = N(z; 0, I) · p_θ(x | z)`` with a neural decoder.

    Args:
        event_shape: shape of one example, e.g. ``(1, 64, 64)``.
        latent_dim: K, the number of latent dimensions.
        likelihood: ``bernoulli``, ``continuous_bernoulli`` or ``gaussian``.
        net: ``auto`` (conv for square images), ``conv`` or ``mlp``.
        sigma: fixed Gaussian noise scale; ``None`` learns it.
        activation: the decoder's nonlinearity, ``relu``, ``elu`` or ``tanh``.
        hidden: the MLP decoder's hidden widths, from z outwards reversed: the
            encoder's ``(400,)`` or ``(200, 200)`` read backwards (conv nets ignore it).
    """

    latent_site = "z"
    default_guide = "diagonal"

    def __init__(self, event_shape, latent_dim: int, likelihood: str = "bernoulli",
                 net: str = "auto", sigma: float | None = None, activation: str = "relu",
                 hidden: tuple = (400,)):
        super().__init__()
        if latent_dim < 1:
            raise PplVaeError(f"--latent-dim must be at least 1, got {latent_dim}")
        self.event_shape = tuple(event_shape)
        self.latent_dim = latent_dim
        self.latent_scale = 1.0
        self.decoder = make_decoder(latent_dim, self.event_shape, net, tuple(hidden), activation)
        self.likelihood = make_likelihood(likelihood, len(self.event_shape), sigma)

    def check_data(self, x: torch.Tensor, name: str = "data") -> None:
        """Refuse data outside the likelihood's support before training starts."""
        self.likelihood.check_data(x, name)

    def prior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``N(0, I_K)`` on the device and dtype of ``x``."""
        zeros = x.new_zeros(self.latent_dim)
        return dist.Normal(zeros, zeros + 1.0).to_event(1)

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            with poutine.scale(scale=self.latent_scale):
                z = pyro.sample(self.latent_site, self.prior(x))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)


@MODELS.register("vae", "vanilla VAE: N(0, I) prior, neural decoder (Kingma & Welling 2014)")
def build_vae(event_shape, latent_dim: int = 10, likelihood: str = "bernoulli",
              net: str = "auto", sigma: float | None = None, activation: str = "relu",
              hidden: tuple = (400,)) -> VAE:
    return VAE(event_shape, latent_dim, likelihood, net, sigma, activation, hidden)
