"""Diagnostics of pairs with per-example inputs, failing figures, global and discrete sites."""

import json

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ppl_vae
from ppl_vae import figures
from ppl_vae.reporting.diagnostics import Checks, diagnose, diagnose_pair

CLASSES = 3


class ConditionalModel(nn.Module):
    """p(z) p(x | z, y): the label ``y`` is an input, not a latent."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2 + CLASSES, 64)

    def forward(self, x, y):
        assert y.shape[0] == x.shape[0], "inputs sliced apart from their examples"
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            label = F.one_hot(y, CLASSES).to(z).expand(*z.shape[:-1], CLASSES)
            logits = self.decoder(torch.cat([z, label], -1)).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class ConditionalGuide(nn.Module):
    """q(z | x, y); with ``checking`` on, every call must pair each example with its own label.

    The data carry the label in pixel (0, 0) (1 exactly for class 0), so a wrong
    slice of the inputs shows. ``fail_rows``: raise for batches of that size.
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(64 + CLASSES, 4)
        self.checking, self.fail_rows, self.calls = False, None, 0

    def forward(self, x, y):
        if self.checking:
            self.calls += 1
            assert torch.equal(x[:, 0, 0, 0], (y == 0).to(x)), "labels of other examples"
        if x.shape[0] == self.fail_rows:
            raise RuntimeError(f"refusing {x.shape[0]} rows\nsecond line")
        h = torch.cat([x.flatten(1), F.one_hot(y, CLASSES).to(x)], -1)
        loc, log_scale = self.encoder(h).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def labelled_data(n: int = 120):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = (torch.rand(n, 1, 8, 8, generator=g) < 0.3).float()
    x[:, 0, 0, 0] = (y == 0).float()
    return ppl_vae.data.from_tensors(x, labels=y)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    data = labelled_data()
    pyro.set_rng_seed(0)
    folder = tmp_path_factory.mktemp("conditional")
    run = ppl_vae.fit(ConditionalModel(), ConditionalGuide(), data, inputs=["y"], epochs=1,
                      batch_size=32, quiet=True, device="cpu", out=folder)
    return run, data


def test_diagnose_pair_passes_each_call_its_inputs(conditional_run, tmp_path):
    run, data = conditional_run
    run.guide.checking, run.guide.calls = True, 0
    try:
        report = diagnose_pair(run.model, run.guide, data, tmp_path, inputs=data.inputs("test"),
                               pair=run.pair, draws=50, n_examples=10, metrics="none",
                               quiet=True)
    finally:
        run.guide.checking = False
    assert run.guide.calls > 0
    assert json.loads((tmp_path / "report.json").read_text())["psis"]["khat"] == \
        report["psis"]["khat"]
    assert (tmp_path / "posterior.nc").exists()
    assert report["figure_errors"] == []
    assert {"reconstructions.png", "prior_samples.png", "worst_khat.png",
            "traversals_by_kl.png"} <= set(report["figures"])
    assert report["settings"]["inputs"] == ["y"] and report["sites"] == {"z": [2]}
    assert len(report["psis"]["khat"]) == 10 and report["psis"]["note"] is None
    assert report["psis"]["elbo"] <= report["psis"]["is_log_likelihood"] < 0
    assert report["disentanglement"] is None and "metrics" in report["disentanglement_note"]


def test_diagnose_a_run_folder_reads_its_inputs(conditional_run, tmp_path):
    run, data = conditional_run
    report = diagnose(run.path, model=ConditionalModel(), guide=ConditionalGuide(), data=data,
                      draws=20, n_examples=5, metrics="none", quiet=True)
    assert report["settings"]["inputs"] == ["y"] and report["figure_errors"] == []
    # the reloaded checkpoint and the run's test inputs give the very draws of the trained pair
    direct = diagnose_pair(run.model, run.guide, data, tmp_path, inputs=data.inputs("test"),
                           pair=run.pair, draws=20, n_examples=5, metrics="none", quiet=True)
    assert report["psis"]["khat"] == pytest.approx(direct["psis"]["khat"])
    assert report["psis"]["is_log_likelihood"] == pytest.approx(
        direct["psis"]["is_log_likelihood"], abs=1e-5)


def test_a_failing_figure_is_recorded_and_the_report_still_written(conditional_run, tmp_path,
                                                                   monkeypatch):
    run, data = conditional_run

    def broken(*args, **kwargs):
        raise ValueError("no traversals today")

    monkeypatch.setattr(figures, "traversals", broken)
    run.guide.fail_rows = 8  # worst_khat shows the 8 worst examples: that guide call fails
    try:
        diagnose_pair(run.model, run.guide, data, tmp_path, inputs=data.inputs("test"),
                      pair=run.pair, draws=50, n_examples=10, metrics="none", quiet=True)
    finally:
        run.guide.fail_rows = None
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["figure_errors"] == [
        {"figure": "worst_khat", "error": "RuntimeError: refusing 8 rows"},
        {"figure": "traversals_by_kl", "error": "ValueError: no traversals today"},
    ]
    assert "worst_khat.png" not in written["figures"] and "khat.png" in written["figures"]
    assert "latent_scatter.png" in written["figures"]  # figures after the failures still drawn
    assert "no traversals today" in (tmp_path / "report.md").read_text()


def test_a_pair_with_global_latents_is_diagnosed_and_says_what_is_missing(tmp_path):
    decoder = nn.Linear(2, 64)

    def model(x):
        scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            logits = scale * decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(x):
        pyro.sample("scale", dist.LogNormal(0.0, 0.1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    out = tmp_path / "diag"
    report = diagnose_pair(model, guide, labelled_data(), out, draws=20, n_examples=5,
                           metrics="none", quiet=True,
                           checks=Checks(ppc_draws=10, sbc=10, mcmc_examples=1))
    assert report["global_sites"] == {"scale": []} and report["sites"] == {"z": [2]}
    assert report["psis"]["khat"] is None and "couple the examples" in report["psis"]["note"]
    missing = report["missing"]
    assert {"psis", "is_log_likelihood", "sbc", "nuts", "log_likelihood"} <= set(missing)
    assert "amortized" in missing["log_likelihood"]
    assert report["sbc"]["verdict"] is None and "note" in report["nuts"]
    assert "khat.png" not in report["figures"] and "ppc.png" in report["figures"]
    idata = az.from_netcdf(str(out / "posterior.nc"))
    assert idata.posterior["scale"].dims == ("chain", "draw")
    assert idata.posterior["z"].dims == ("chain", "draw", "example", "latent")
    assert "log_weight" not in idata.sample_stats and "log_likelihood" not in idata.groups()
    assert idata.posterior_predictive["x"].shape == (1, 10, 5, 1, 8, 8)
    text = (out / "report.md").read_text()
    assert "Not computed for this pair" in text and "n/a:" in text


def _mixture_pair(enumerate_in_guide: bool):
    """z ~ N(0, 1), c ~ Bernoulli(1/2) (model only, or sampled by the guide too), x | z, c."""
    weights = torch.tensor([[-2.0], [2.0]]).expand(2, 64)
    bias = torch.linspace(-1, 1, 64)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(torch.tensor([0.5, 0.5])),
                            infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
            logits = weights[c] * z + bias
            logits = logits.reshape(*logits.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            if enumerate_in_guide:
                pyro.sample("c", dist.Categorical(torch.tensor([0.3, 0.7])),
                            infer={"enumerate": "parallel"})
            pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 1), 1.5).to_event(1))

    return model, guide


@pytest.mark.parametrize("enumerate_in_guide", [False, True])
def test_enumerated_sites_are_sampled_validly_and_said_so(tmp_path, enumerate_in_guide):
    """Sampling c gives the same IS log-likelihood as summing it (ppl_vae.evaluate)."""
    data = labelled_data(n=60)
    model, guide = _mixture_pair(enumerate_in_guide)
    report = diagnose_pair(model, guide, data, tmp_path, draws=2000, n_examples=6,
                           metrics="none", quiet=True)
    assert "['c']" in report["psis"]["note"] and "sample" in report["psis"]["note"]
    exact = ppl_vae.evaluate(model, guide, data.test[:6], iw_samples=2000)["log_likelihood"]
    # counting p(c) in the weight but not in the proposal would be log 2 = 0.69 too low
    assert report["psis"]["is_log_likelihood"] == pytest.approx(exact, abs=0.1)


def test_a_pair_run_one_particle_at_a_time_records_every_draw():
    """``reshape(x.shape)`` runs one particle per pass; each pass's draws are kept."""
    from ppl_vae.diagnostics import collect_draws

    decoder = nn.Linear(2, 64)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z).reshape(x.shape)).to_event(3),
                        obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))

    x = labelled_data(n=30).test[:3]
    with ppl_vae.engine_settings(model, guide):
        drawn = collect_draws(model, guide, x, draws=20)
    z = drawn.sites["z"]
    assert z.shape == (20, 3, 2) and np.unique(z[:, 0, 0]).size == 20
    assert np.unique(drawn.log_weight[:, 0]).size == 20
    # the weights belong to the recorded draws: log q is the N(0, 1) density of z
    log_q = -0.5 * (z ** 2).sum(-1) - np.log(2 * np.pi)
    assert np.allclose(drawn.log_guide, log_q, atol=1e-4)
