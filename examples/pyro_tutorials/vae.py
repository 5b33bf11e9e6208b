"""Pyro's ``examples/vae/vae.py``, in its own style: an ``nn.Module`` whose bound methods
``model`` and ``guide`` are the pair, a latent site called ``"latent"``, the image observed
as ``"obs"`` after ``x.reshape(-1, 784)``, probabilities (not logits) from the decoder.

Model and guide, for an image ``x`` (784 grey levels) and a code ``z``::

    z ~ N(0, I_50),   x | z ~ Bernoulli(sigmoid(f(z)))          (grey levels: cross-entropy)
    q(z | x) = N(mu(x), diag sigma(x)^2)

The one argument ppl_vae needs is the observed site's name::

    vae = VAE()
    run = ppl_vae.fit(vae.model, vae.guide, data, observe="obs", epochs=10, out="runs/vae")

or from the command line (the class is imported and built as ``VAE()``)::

    PYTHONPATH=. ppl-vae train --model examples.pyro_tutorials.vae:VAE --observe obs \\
        --data mnist --data-path ../shared/data/mnist --n all --epochs 10 --out runs/vae
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn


class Encoder(nn.Module):
    """``x -> (mu, sigma)``: one softplus hidden layer."""

    def __init__(self, z_dim: int, hidden_dim: int, pixels: int = 784):
        super().__init__()
        self.pixels = pixels
        self.fc1 = nn.Linear(pixels, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x):
        x = x.reshape(-1, self.pixels)
        hidden = self.softplus(self.fc1(x))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class Decoder(nn.Module):
    """``z -> pixel probabilities``: one softplus hidden layer, then a sigmoid."""

    def __init__(self, z_dim: int, hidden_dim: int, pixels: int = 784):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, pixels)
        self.softplus = nn.Softplus()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z):
        hidden = self.softplus(self.fc1(z))
        return self.sigmoid(self.fc21(hidden))


class VAE(nn.Module):
    """The pair: ``vae.model`` and ``vae.guide``."""

    def __init__(self, z_dim: int = 50, hidden_dim: int = 400, pixels: int = 784):
        super().__init__()
        self.encoder = Encoder(z_dim, hidden_dim, pixels)
        self.decoder = Decoder(z_dim, hidden_dim, pixels)
        self.z_dim, self.pixels = z_dim, pixels

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                        obs=x.reshape(-1, self.pixels))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


if __name__ == "__main__":
    import ppl_vae

    data = ppl_vae.data.load("mnist5k")
    vae = VAE()
    run = ppl_vae.fit(vae.model, vae.guide, data, observe="obs", epochs=5, out="runs/pyro_vae",
                      overwrite=True)
    print(run.evaluate(data.test, iw_samples=100))
