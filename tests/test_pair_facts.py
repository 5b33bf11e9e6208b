"""Facts about a pair are found once, on the Pair, and reused by every part of the engine."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae
from ppl_vae import pair as pair_module
from ppl_vae.config import PairSpec
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import create
from ppl_vae.pair import Pair, rebuild
from ppl_vae.reporting.diagnostics import diagnose_pair
from tests.conftest import tiny_binary


@pytest.fixture
def counted_prepare(monkeypatch):
    """Count the traced preparations of a pair (the expensive, checked first traces)."""
    calls = []
    real = pair_module.prepare

    def counting(model, guide, x, inputs=None):
        calls.append(guide)
        return real(model, guide, x, inputs)

    monkeypatch.setattr(pair_module, "prepare", counting)
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

    def model(x):
        with pyro.plate("data", x.shape[0]):
            scale = pyro.sample("scale", dist.LogNormal(x.new_zeros(x.shape[0], 2), 1.0)
                                .to_event(1))
            z = pyro.sample("z", dist.Normal(0.0, scale).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            scale = pyro.sample("scale", dist.LogNormal(x.new_zeros(x.shape[0], 2), 1.0)
                                .to_event(1))
            pyro.sample("z", dist.Normal(0.0, scale).to_event(1))

    x = torch.zeros(3, 1)
    assert Pair(model, guide).primary_site(x) == "z"  # the guide's last
    model.latent_site = "scale"
    assert Pair(model, guide).primary_site(x) == "scale"
    model.latent_site = "no such site"
    assert Pair(model, guide).primary_site(x) == "z"


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


def test_the_plan_lives_on_the_pair_and_a_loop_of_bare_estimator_calls_finds_it_once(
        counted_prepare):
    """The memo goes with the Pair (a new Pair over the same programs prepares again); Pyro's
    call ``estimator(model, guide, x)`` in a user's loop prepares once, bound methods too."""
    data = tiny_binary(n=30)
    built = ppl_vae.build("vae", data=data, latent_dim=2, net="mlp")
    x = data.test[:5]
    Pair(built.model, built.guide).plan(x)
    Pair(built.model, built.guide).plan(x)
    assert len(counted_prepare) == 2
    estimator = create("trace")
    for _ in range(3):
        estimator(built.model.forward, built.guide.forward, x)  # a new bound method each time
    assert len(counted_prepare) == 3
    estimator(built.model, built.guide, x)  # other programs: another pair
    assert len(counted_prepare) == 4


@pytest.mark.parametrize("spec", [
    PairSpec("registry", "vae", "diagonal", (1, 8, 8), {"latent_dim": 2}),
    PairSpec("factory", "pkg.mod:make_pair", "from pkg.mod:make_pair", (784,), {"k": 1},
             names={"observe": "obs"}),
    PairSpec("objects", "pkg.mod:model", "pkg.mod:guide", (3,)),
    PairSpec("unimportable", "user-written", "user-written", why="a lambda"),
])
def test_a_pair_spec_reads_back_what_it_writes(spec):
    assert PairSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec["model"] == spec.model  # the recorded JSON's keys still read


def test_a_pair_spec_without_a_source_is_a_registry_pair_and_a_bad_source_is_refused():
    assert PairSpec.from_json({"model": "vae", "guide": "diagonal", "event_shape": [4],
                               "options": {}}).source == "registry"  # format 1
    assert PairSpec.from_json(None) is None
    with pytest.raises(PplVaeError, match="source is one of"):
        PairSpec("somewhere", "vae", None)


def test_rebuild_builds_a_registry_spec_and_refuses_an_unimportable_one(tmp_path):
    pair = rebuild(PairSpec("registry", "vae", "diagonal", (1, 8, 8),
                            {"latent_dim": 3, "net": "mlp"}), tmp_path)
    assert pair.spec.options["latent_dim"] == 3 and pair.spec.source == "registry"
    with pytest.raises(PplVaeError, match="a lambda"):
        rebuild(PairSpec("unimportable", "user-written", "user-written", why="a lambda"),
                tmp_path)
