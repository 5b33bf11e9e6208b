"""Facts about a pair are found once, on the Pair, and reused by every part of the engine."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae
from ppl_vae import traces
from ppl_vae.diagnostics import diagnose_pair
from ppl_vae.pair import Pair
from tests.conftest import tiny_binary


@pytest.fixture
def counted_prepare(monkeypatch):
    """Count the traced preparations of a pair (the expensive, checked first traces)."""
    calls = []
    real = traces.prepare

    def counting(model, guide, x, inputs=None):
        calls.append(guide)
        return real(model, guide, x, inputs)

    monkeypatch.setattr(traces, "prepare", counting)
    return calls


@pytest.mark.parametrize("model, expected", [("vae", 1), ("ngvae", 2)])
def test_training_report_and_diagnostics_prepare_a_pair_once(counted_prepare, tmp_path, model,
                                                             expected):
    """One preparation per pair (NGVAE: the pair and its collapsed form) for a whole run:
    the check before training, every step's estimator, each epoch's test ELBO, the final
    report, its latent statistics and ``diagnose``."""
    data = tiny_binary(n=60)
    pair = ppl_vae.build(model, data=data, latent_dim=2, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, data, epochs=2, batch_size=20, quiet=True, device="cpu",
                out=tmp_path / "run", pair=pair, iw_samples=5)
    diagnose_pair(pair.model, pair.guide, data, tmp_path / "diag", pair=pair, n_examples=4,
                  draws=20, metrics="none", quiet=True)
    assert len(counted_prepare) == expected


def test_the_plan_follows_the_pattern_of_inputs(counted_prepare):
    def model(x, y=None):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)

    def guide(x, y=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    pair, x = Pair(model, guide), torch.zeros(3, 1)
    first = pair.plan(x, {"y": torch.ones(3)})
    assert pair.plan(x[:2], {"y": torch.zeros(2)}) is not None and len(counted_prepare) == 1
    assert pair.plan(x, {"y": None}) == first and len(counted_prepare) == 2  # unlabelled form
    assert pair.primary_site(x) == "z" and pair.device == torch.device("cpu")
    assert pair.collapsed is None


def test_primary_site_is_the_models_latent_site_else_the_guides_last():
    data = tiny_binary(n=30)
    pair = ppl_vae.build("ngvae", data=data, latent_dim=2, net="mlp")
    assert pair.primary_site(data.test) == "z" == pair.model.latent_site
    pair.model.latent_site = "precision"
    assert Pair(pair.model, pair.guide).primary_site(data.test) == "precision"
    pair.model.latent_site = "no such site"
    assert Pair(pair.model, pair.guide).primary_site(data.test) == "z"  # the guide's last


def test_device_of_a_pair_with_store_parameters_and_of_one_without():
    def model(x):
        loc = pyro.param("loc", torch.zeros(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    pair = Pair(model, model)
    assert pair.device == torch.device("cpu")
    with pair.scope():
        model(torch.zeros(2, 1))
    assert list(pair.store["params"]) == ["loc"] and pair.device == torch.device("cpu")
