"""A model the library has never seen, trained, evaluated and sampled unchanged.

A two-layer latent hierarchy with a heavy-tailed top layer, written here as an
ordinary Pyro program::

    z2 ~ Laplace(0, 1)^2,   z1 | z2 ~ N(f(z2), 0.5² I_6),   x | z1 ~ CB(g(z1))

with a guide ``q(z1 | x) q(z2 | z1)``. Nothing in ``ppl_vae`` knows these site
names: the trainer, the IWAE estimator, importance-sampled evaluation and the
figures read everything off traces.

    python examples/custom_model.py            # ~20 s on 2 CPU cores
"""

from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

import ppl_vae
from ppl_vae.figures import observation_mean
from ppl_vae.plots import image_grid


class TwoLayerModel(PyroModule):
    def __init__(self, pixels: int = 64):
        super().__init__()
        self.top = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 6))
        self.decoder = nn.Sequential(nn.Linear(6, 128), nn.ReLU(), nn.Linear(128, pixels))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z2 = pyro.sample("z2", dist.Laplace(x.new_zeros(2), 1.0).to_event(1))
            z1 = pyro.sample("z1", dist.Normal(self.top(z2), 0.5).to_event(1))
            logits = self.decoder(z1).reshape(*z1.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.ContinuousBernoulli(logits=logits).to_event(3), obs=x)


class TwoLayerGuide(PyroModule):
    def __init__(self, pixels: int = 64):
        super().__init__()
        self.bottom = nn.Sequential(nn.Flatten(-3), nn.Linear(pixels, 128), nn.ReLU(),
                                    nn.Linear(128, 12))
        self.top = nn.Linear(6, 4)

    def forward(self, x):
        loc1, raw1 = self.bottom(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(loc1, nn.functional.softplus(raw1) + 1e-4)
                             .to_event(1))
            loc2, raw2 = self.top(z1).chunk(2, -1)
            pyro.sample("z2", dist.Normal(loc2, nn.functional.softplus(raw2) + 1e-4).to_event(1))


def main() -> None:
    data = ppl_vae.data.load("digits", seed=0)
    pyro.set_rng_seed(0)
    model, guide = TwoLayerModel(), TwoLayerGuide()
    run = ppl_vae.fit(model, guide, data, elbo="iwae", particles=5, epochs=30, batch_size=64,
                      lr=3e-3, device="cpu", quiet=True)
    result = run.evaluate(data.test, iw_samples=500)
    print(f"test ELBO {result['elbo']:.2f}, IS log-likelihood {result['log_likelihood']:.2f} "
          f"nats/example (K=500, {result['n_examples']} digits)")
    out = Path(__file__).parent / "figures"
    out.mkdir(exist_ok=True)
    with torch.no_grad(), run.pair.scope():
        samples = observation_mean(model, guide, data.test[:1].expand(32, 1, 8, 8),
                                   from_prior=True)
        recon = observation_mean(model, guide, data.test[:16])
    image_grid(samples, out / "custom_model_samples.png", 4, "two-layer Laplace model: samples")
    image_grid(torch.cat([data.test[:16], recon]), out / "custom_model_recon.png", 2,
               "digits (top), reconstructions (bottom)")
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
