"""A conditional VAE, ``p(x | y, z)``, as a factory the CLI can train by name.

    z ~ N(0, I_d),   x | y, z ~ Bernoulli(logits = f(z, onehot y)),
    q(z | x, y) = N(m(x, y), diag s(x, y)²)

The label ``y`` is an input, not a latent: ``--inputs y`` makes the engine call
``model(x, y=labels)`` and ``guide(x, y=labels)``, and ``ppl-vae sample`` then
draws a row per class::

    PYTHONPATH=examples ppl-vae train --model conditional_vae:make_pair --data mnist5k \\
        --binarize static --inputs y --latent-dim 2 --epochs 30 --out runs/cvae
    PYTHONPATH=examples ppl-vae sample runs/cvae --model conditional_vae:make_pair -n 80 \\
        --out examples/figures/cvae_classes.png
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn.functional import one_hot, softplus

CLASSES = 10


class ConditionalVAE(PyroModule):
    def __init__(self, pixels: int, latent_dim: int, hidden: int = 400):
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = nn.Sequential(nn.Linear(latent_dim + CLASSES, hidden), nn.ReLU(),
                                     nn.Linear(hidden, pixels))

    def forward(self, x, y):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            code = one_hot(y, CLASSES).to(z).expand(*z.shape[:-1], CLASSES)
            logits = self.decoder(torch.cat([z, code], -1)).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(x.dim() - 1), obs=x)


class ConditionalEncoder(PyroModule):
    def __init__(self, pixels: int, latent_dim: int, hidden: int = 400):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pixels + CLASSES, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * latent_dim))

    def forward(self, x, y):
        code = one_hot(y, CLASSES).to(x)
        loc, raw = self.net(torch.cat([x.flatten(1), code], -1)).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(raw) + 1e-4).to_event(1))


def make_pair(data, latent_dim: int = 8):
    """The factory ``ppl-vae train --model conditional_vae:make_pair`` calls."""
    pixels = int(torch.tensor(data.event_shape).prod())
    return ConditionalVAE(pixels, latent_dim), ConditionalEncoder(pixels, latent_dim)
