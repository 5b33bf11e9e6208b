"""Pyro's ``examples/cvae`` (Sohn et al. 2015's conditional VAE), in its own style: given
one quadrant of a digit (``xs``, the other pixels set to -1), predict the other three
(``ys``, -1 where ``xs`` is visible). The conditioning lives inside ``x``; the observed
site is ``"y"``, picked out with a data-shaped mask (so the pair runs one particle at a
time), under an unsized ``pyro.plate("data")``.

    z | xs ~ N(prior_net(xs, baseline(xs))),   ys | z ~ Bernoulli(generation_net(z))  (masked)
    q(z | xs, ys) = N(recognition_net(xs, ys))

ppl_vae trains it with the visible quadrant as ``x``, the target as the field ``ys``,
and the observed site named::

    data = ppl_vae.data.from_tensors(xs, test_xs, fields={"ys": ys}, test_fields={"ys": test_ys})
    run = ppl_vae.fit(cvae.model, cvae.guide, data, inputs=["ys"], observe="y")
    run.sample(8, x=test_xs[:8], inputs={"ys": None})    # completions of 8 test quadrants

(:func:`quadrant_data` makes ``data`` from any image set.) Pyro pre-trains the baseline
net and freezes it; here it is any ``nn.Module`` mapping ``xs`` to pixel probabilities,
used under ``torch.no_grad()`` as in Pyro.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn


class Encoder(nn.Module):
    """``(xs, ys) -> (loc, scale)``: the two images put into one, then two ReLU layers."""

    def __init__(self, z_dim: int, hidden_1: int, hidden_2: int, pixels: int = 784):
        super().__init__()
        self.pixels = pixels
        self.fc1 = nn.Linear(pixels, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc31 = nn.Linear(hidden_2, z_dim)
        self.fc32 = nn.Linear(hidden_2, z_dim)
        self.relu = nn.ReLU()

    def forward(self, x, y):
        xc = x.clone()
        xc[x == -1] = y[x == -1]
        xc = xc.view(-1, self.pixels)
        hidden = self.relu(self.fc2(self.relu(self.fc1(xc))))
        return self.fc31(hidden), torch.exp(self.fc32(hidden))


class Decoder(nn.Module):
    """``z -> pixel probabilities``."""

    def __init__(self, z_dim: int, hidden_1: int, hidden_2: int, pixels: int = 784):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, pixels)
        self.relu = nn.ReLU()

    def forward(self, z):
        return torch.sigmoid(self.fc3(self.relu(self.fc2(self.relu(self.fc1(z))))))


class BaselineNet(nn.Module):
    """A deterministic guess of the hidden pixels from ``xs`` (Pyro pre-trains it)."""

    def __init__(self, hidden: int = 500, pixels: int = 784):
        super().__init__()
        self.pixels = pixels
        self.net = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, pixels),
                                 nn.Sigmoid())

    def forward(self, x):
        return self.net(x.reshape(-1, self.pixels))


class CVAE(nn.Module):
    """The pair: ``cvae.model(xs, ys=None)`` and ``cvae.guide(xs, ys=None)``."""

    def __init__(self, z_dim: int = 200, hidden_1: int = 500, hidden_2: int = 500,
                 pixels: int = 784, baseline_net: nn.Module | None = None):
        super().__init__()
        self.pixels = pixels
        self.baseline_net = baseline_net or BaselineNet(hidden_1, pixels)
        self.prior_net = Encoder(z_dim, hidden_1, hidden_2, pixels)
        self.generation_net = Decoder(z_dim, hidden_1, hidden_2, pixels)
        self.recognition_net = Encoder(z_dim, hidden_1, hidden_2, pixels)

    def model(self, xs, ys=None):
        pyro.module("generation_net", self)
        batch_size = xs.shape[0]
        with pyro.plate("data"):
            with torch.no_grad():
                y_hat = self.baseline_net(xs).view(xs.shape)
            prior_loc, prior_scale = self.prior_net(xs, y_hat)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            loc = self.generation_net(zs)
            if ys is not None:
                mask_loc = loc[(xs == -1).view(-1, self.pixels)].view(batch_size, -1)
                mask_ys = ys[xs == -1].view(batch_size, -1)
                pyro.sample("y", dist.Bernoulli(mask_loc, validate_args=False).to_event(1),
                            obs=mask_ys)
            else:
                pyro.deterministic("y", loc.detach())
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                y_hat = self.baseline_net(xs).view(xs.shape)
                loc, scale = self.prior_net(xs, y_hat)
            else:
                loc, scale = self.recognition_net(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def quadrant_split(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(xs, ys)``: the bottom-left quadrant visible in ``xs`` (-1 elsewhere), the other
    three in ``ys`` (-1 where ``xs`` is visible), as in Pyro's example with one quadrant."""
    side = images.shape[-1]
    visible = torch.zeros(images.shape[-2:], dtype=torch.bool)
    visible[side // 2:, : side // 2] = True
    xs = torch.where(visible, images, torch.full_like(images, -1.0))
    ys = torch.where(visible, torch.full_like(images, -1.0), images)
    return xs, ys


def quadrant_data(data):
    """A dataset of quadrants (``x``) and targets (field ``ys``) from an image dataset."""
    import ppl_vae

    (xs, ys), (test_xs, test_ys) = quadrant_split(data.train), quadrant_split(data.test)
    return ppl_vae.data.from_tensors(xs, test_xs, fields={"ys": ys}, test_fields={"ys": test_ys},
                                     name=f"{data.name} quadrants")


if __name__ == "__main__":
    import ppl_vae

    data = quadrant_data(ppl_vae.data.load("mnist5k", binarize="static"))
    cvae = CVAE()
    run = ppl_vae.fit(cvae.model, cvae.guide, data, inputs=["ys"], observe="y", epochs=5,
                      out="runs/pyro_cvae", overwrite=True)
    print(run.evaluate(data.test, inputs={"ys": data.test_fields["ys"]}, iw_samples=10))
