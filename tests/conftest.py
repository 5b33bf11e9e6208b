"""Shared fixtures: tiny data sets and a fresh RNG per test."""

from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae


@pytest.fixture(autouse=True)
def _seed_and_threads():
    pyro.set_rng_seed(0)
    torch.set_num_threads(2)
    pyro.clear_param_store()
    yield


def tiny_binary(n: int = 120, side: int = 8, seed: int = 0) -> SimpleNamespace:
    """Random binary ``(n, 1, side, side)`` images split 100/20 into train/test."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, side, side, generator=g) < 0.3).float()
    split = n - 20
    return SimpleNamespace(train=x[:split], test=x[split:], event_shape=(1, side, side),
                           spec=None, dynamic_binarize=False)


def global_latent_pair():
    """A model with a latent ``w`` outside the data plate, and its (non-amortized) guide."""
    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0).expand(x.shape[1:]).to_event(3), obs=x)

    def guide(x):
        pyro.sample("w", dist.Normal(0.0, 1.0))

    return model, guide


@pytest.fixture
def binary_data():
    return tiny_binary()


@pytest.fixture
def trained(tmp_path):
    """A one-epoch VAE run folder on 60 tiny images (no report yet), and its data."""
    data = tiny_binary(n=60)
    pair = ppl_vae.build("vae", data=data, latent_dim=3, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=20, quiet=True,
                      device="cpu", out=tmp_path / "run", pair=pair, report=False)
    return run, data
