"""Pyro's sparse gamma deep exponential family (Ranganath et al. 2015), in its own style:
Gamma latents in three layers, Gamma weights shared by every example (global latents
outside the data plate), Poisson pixel counts, and a hand-written mean-field Gamma guide
whose per-example parameters are created as ``(x.size(0), width)`` — full-batch
training, as Pyro's example runs it::

    z_top ~ Gamma(α_z, β_z)^100,  z_mid | z_top ~ Gamma(α_z, β_z / (z_top W_top)),
    z_bottom | z_mid ~ Gamma(α_z, β_z / (z_mid W_mid)),  x | z_bottom ~ Poisson(z_bottom W_bottom)
    W_* ~ Gamma(α_w, β_w) elementwise;  q = Π Gamma(α_q, α_q / μ_q), softplus-parametrised

What ppl_vae needs, and why (the program itself is unchanged): the observed site's name
(``observe="obs"``, Pyro calls it ``"obs"``), a batch of the whole data set
(``batch_size=N``: the guide's parameters are sized by the batch; a smaller batch is
refused with the line to change), Pyro's optimizer and its parameter clipping after
each step (``optim=``, ``on_step=``)::

    def_ = SparseGammaDEF()
    run = ppl_vae.fit(def_.model, def_.guide, data, elbo="meanfield", observe="obs",
                      batch_size=len(data.train), optim=AdagradRMSProp(...), on_step=clip_params)

Evaluation is on the training rows (the only ones with parameters). Data: the Olivetti
faces as Pyro's example reads them (:func:`load_faces`, ``download=True`` on a machine
with a network), or :func:`synthetic_faces`, counts of the same shape drawn from the
model itself, for tests.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.distributions import Gamma, Poisson
from torch.nn.functional import softplus

import ppl_vae

FACES_URL = "https://d2hg8soec8ck9v.cloudfront.net/datasets/faces_training.csv"


class SparseGammaDEF:
    """The model and its mean-field guide; the layer widths are Pyro's by default."""

    def __init__(self, top: int = 100, mid: int = 40, bottom: int = 15,
                 image_size: int = 64 * 64):
        self.top, self.mid, self.bottom, self.image_size = top, mid, bottom, image_size
        self.alpha_z, self.beta_z = torch.tensor(0.1), torch.tensor(0.1)
        self.alpha_w, self.beta_w = torch.tensor(0.1), torch.tensor(0.3)
        self.alpha_init, self.mean_init, self.sigma_init = 0.5, 0.0, 0.1

    def _weights(self, name: str, rows: int, cols: int) -> torch.Tensor:
        with pyro.plate(f"w_{name}_plate", rows * cols):
            w = pyro.sample(f"w_{name}", Gamma(self.alpha_w, self.beta_w))
        return w.reshape(rows, cols) if w.dim() == 1 else w.reshape(-1, rows, cols)

    def model(self, x: torch.Tensor) -> None:
        w_top = self._weights("top", self.top, self.mid)
        w_mid = self._weights("mid", self.mid, self.bottom)
        w_bottom = self._weights("bottom", self.bottom, self.image_size)
        with pyro.plate("data", x.size(0)):
            z_top = pyro.sample("z_top", Gamma(self.alpha_z, self.beta_z)
                                .expand([self.top]).to_event(1))
            z_mid = pyro.sample("z_mid", Gamma(self.alpha_z, self.beta_z
                                               / torch.matmul(z_top, w_top)).to_event(1))
            z_bottom = pyro.sample("z_bottom", Gamma(self.alpha_z, self.beta_z
                                                     / torch.matmul(z_mid, w_mid)).to_event(1))
            pyro.sample("obs", Poisson(torch.matmul(z_bottom, w_bottom)).to_event(1), obs=x)

    def _init(self, shape, mean: float) -> torch.Tensor:
        return mean + self.sigma_init * torch.randn(shape)

    def _gamma(self, kind: str, name: str, shape) -> Gamma:
        alpha = softplus(pyro.param(f"alpha_{kind}_q_{name}",
                                    lambda: self._init(shape, self.alpha_init)))
        mean = softplus(pyro.param(f"mean_{kind}_q_{name}",
                                   lambda: self._init(shape, self.mean_init)))
        return Gamma(alpha, alpha / mean)

    def guide(self, x: torch.Tensor) -> None:
        for name, size in (("top", self.top * self.mid), ("mid", self.mid * self.bottom),
                           ("bottom", self.bottom * self.image_size)):
            with pyro.plate(f"w_{name}_plate", size):
                pyro.sample(f"w_{name}", self._gamma("w", name, (size,)))
        with pyro.plate("data", x.size(0)):
            for name, width in (("top", self.top), ("mid", self.mid), ("bottom", self.bottom)):
                pyro.sample(f"z_{name}", self._gamma("z", name, (x.size(0), width)).to_event(1))


def clip_params() -> None:
    """Pyro's projection after each step: keep the softplus inputs away from tiny means."""
    store = pyro.get_param_store()
    for name in store.keys():
        if name.startswith("alpha_"):
            store[name].data.clamp_(min=-2.5)
        elif name.startswith("mean_"):
            store[name].data.clamp_(min=-4.5)


def load_faces(path: str | Path = "faces_training.csv", download: bool = False):
    """The 320 Olivetti faces as 4,096 pixel counts each (Pyro's CSV), all for training."""
    path = Path(path)
    if not path.exists():
        if not download:
            raise ppl_vae.PplVaeError(f"{path} does not exist; pass download=True (--download) "
                                      f"to fetch it from {FACES_URL}")
        urllib.request.urlretrieve(FACES_URL, path)  # noqa: S310 (a fixed https address)
    x = torch.tensor(np.loadtxt(path, delimiter=","), dtype=torch.float32)
    return ppl_vae.data.from_tensors(x, x[:1])


def synthetic_faces(n: int = 320, def_: SparseGammaDEF | None = None, seed: int = 0):
    """``n`` count vectors of the real data's shape drawn from the model's own prior
    (weights at their prior mean, so the counts stay finite), all for training."""
    def_ = def_ or SparseGammaDEF()
    g = torch.Generator().manual_seed(seed)
    z = torch.distributions.Gamma(1.0, 1.0).sample((n, def_.bottom))
    w = torch.rand(def_.bottom, def_.image_size, generator=g)
    x = torch.poisson(z @ w, generator=g)
    return ppl_vae.data.from_tensors(x, x[:1])


def train(data, def_: SparseGammaDEF, epochs: int, out=None, seed: int = 0, **options):
    """Full-batch training with Pyro's optimizer and clipping, through ppl_vae."""
    return ppl_vae.fit(def_.model, def_.guide, data, elbo="meanfield", observe="obs",
                       batch_size=data.train.shape[0], epochs=epochs, out=out, seed=seed,
                       optim=pyro.optim.AdagradRMSProp({"eta": 4.5, "t": 0.1}),
                       on_step=clip_params, **options)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="faces_training.csv")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--out", default="runs/sparse_gamma_def")
    args = parser.parse_args()
    faces = synthetic_faces() if args.synthetic else load_faces(args.data, args.download)
    run = train(faces, SparseGammaDEF(), args.epochs, out=args.out)
    print(run.report["evaluation"])
