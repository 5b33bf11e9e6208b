"""Pyro programs beyond the one-site VAE, written as Pyro's users write them (issue 35):
per-example guide parameters, sites that follow the batch, several observed sites.

The local-parameter model has a known answer: ``z_n ~ N(0, I)``, ``x_n | z_n ~ N(z_n, I)``
gives the exact posterior ``q(z_n) = N(x_n / 2, I / 2)`` for *each* example, so a guide
whose rows were shared (the bug: a parameter created from a one-example probe) cannot
reach it.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, create

N, D = 24, 2


def _data():
    x = torch.randn(N + 6, D, generator=torch.Generator().manual_seed(1)) * 2
    return ppl_vae.data.from_tensors(x[:N], x[N:])


def model(x):
    """Pyro's sparse-gamma way: the plate sized by the batch, no subsampling."""
    with pyro.plate("data", x.size(0)):
        z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def batch_sized_guide(x):
    """Pyro's sparse-gamma guide: parameters of shape ``(x.size(0), D)``, full-batch only."""
    loc = pyro.param("loc", lambda: torch.zeros(x.size(0), D))
    scale = pyro.param("scale", lambda: torch.ones(x.size(0), D), constraint=constraints.positive)
    with pyro.plate("data", x.size(0)):
        pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def indexed_model(x, index):
    with pyro.plate("data", N, subsample=index):
        z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def indexed_guide(x, index):
    """Pyro's automatic form: ``event_dim`` parameters declared inside the subsampled plate."""
    with pyro.plate("data", N, subsample=index):
        loc = pyro.param("loc", torch.zeros(N, D), event_dim=1)
        scale = pyro.param("scale", torch.ones(N, D), constraint=constraints.positive,
                           event_dim=1)
        pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def _assert_exact_posterior(run, x):
    params = run.params()
    assert params["loc"].shape == (N, D)  # one row per example, never a broadcast (1, D)
    assert torch.allclose(params["loc"], x / 2, atol=0.1)
    assert torch.allclose(params["scale"], torch.full((N, D), math.sqrt(0.5)), atol=0.1)


def test_full_batch_guide_sized_by_x_learns_each_examples_posterior(tmp_path):
    data = _data()
    run = ppl_vae.fit(model, batch_sized_guide, data, elbo="meanfield", particles=8, epochs=400,
                      batch_size=N, lr=0.05, lr_schedule="cosine", out=tmp_path, quiet=True,
                      iw_samples=4, eval_examples=N)
    _assert_exact_posterior(run, data.train)
    assert run.config.local_rows == N and run.evaluation_split == "train"
    assert run.report["evaluation"]["split"] == "train"
    with pytest.raises(PplVaeError, match="training rows only"):
        run.test_inputs(data)
    reloaded = ppl_vae.load_run(tmp_path, model=model, guide=batch_sized_guide)
    _assert_exact_posterior(reloaded, data.train)  # created from the checkpoint: no probe


def test_batch_sized_parameters_under_minibatches_are_refused_naming_the_idiom():
    with pytest.raises(PplVaeError, match=r"sized by the batch.*inputs=\['index'\]"):
        ppl_vae.fit(model, batch_sized_guide, _data(), epochs=1, batch_size=8, quiet=True,
                    report=False)


def test_index_input_trains_local_parameters_in_minibatches():
    data = _data()
    run = ppl_vae.fit(indexed_model, indexed_guide, data, inputs=["index"], elbo="meanfield",
                      particles=8,
                      epochs=300, batch_size=6, lr=0.05, lr_schedule="cosine", quiet=True,
                      report=False)
    _assert_exact_posterior(run, data.train)


@pytest.mark.parametrize("elbo", ["trace", "meanfield", pyro.infer.Trace_ELBO()])
def test_a_subsampled_plate_counts_each_example_once(elbo):
    """The loss of a batch of 6 of 24 equals the same program without subsampling: the
    plate's N/B is undone (a mutation keeping it gives 4x the value)."""
    data = _data()
    x, index = data.train[:6], torch.arange(6)

    def plain_model(x, index):
        with pyro.plate("data", x.size(0)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def plain_guide(x, index):
        loc = pyro.param("loc", torch.zeros(N, D))[index]
        with pyro.plate("data", x.size(0)):
            pyro.sample("z", dist.Normal(loc, 0.5).to_event(1))

    def sub_guide(x, index):
        with pyro.plate("data", N, subsample=index):
            loc = pyro.param("loc", torch.zeros(N, D), event_dim=1)
            pyro.sample("z", dist.Normal(loc, 0.5).to_event(1))

    values = []
    for m, g in ((plain_model, plain_guide), (indexed_model, sub_guide)):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        estimator = create(elbo) if isinstance(elbo, str) else ppl_vae.estimators.as_estimator(elbo)
        pair = ppl_vae.Pair(m, g)
        with pair.scope():
            values.append(estimator.loss(pair, Batch(x, {"index": index}, dataset_size=N)))
    assert torch.allclose(values[0], values[1], rtol=1e-5)


def sequence_model(x, lengths):
    """One latent and one observed site per step, up to the batch's longest sequence (the
    Deep Markov Model's layout): the site set changes from batch to batch."""
    steps = int(lengths.max())
    z = x.new_zeros(x.shape[0])
    with pyro.plate("data", x.shape[0]):
        for t in pyro.markov(range(steps)):
            mask = t < lengths
            z = pyro.sample(f"z_{t}", dist.Normal(0.8 * z, 1.0).mask(mask))
            pyro.sample(f"obs_{t}", dist.Normal(z, 0.5).mask(mask), obs=x[:, t])


class SequenceGuide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, lengths):
        with pyro.plate("data", x.shape[0]):
            for t in pyro.markov(range(int(lengths.max()))):
                pyro.sample(f"z_{t}", dist.Normal(self.weight * x[:, t], 0.5)
                            .mask(t < lengths))


def _sequences(n=40, steps=6):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, steps + 1, (n,), generator=g)
    x = torch.randn(n, steps, generator=g)
    x = x * (torch.arange(steps) < lengths[:, None])
    return ppl_vae.data.from_tensors(x[:30], x[30:], fields={"lengths": lengths[:30]},
                                     test_fields={"lengths": lengths[30:]})


def test_sites_that_follow_the_batch_train_evaluate_and_sample(tmp_path):
    data = _sequences()
    guide = SequenceGuide()
    run = ppl_vae.fit(sequence_model, guide, data, inputs=["lengths"], epochs=3, batch_size=5,
                      quiet=True, iw_samples=4, out=tmp_path)
    evaluation = run.report["evaluation"]
    assert math.isfinite(evaluation["elbo"]) and math.isfinite(evaluation["log_likelihood"])
    assert run.report["figure_errors"] == []
    lengths = torch.tensor([2, 4, 3])
    draws = run.sample(3, inputs={"lengths": lengths}, x=torch.zeros(3, 6))
    assert list(draws) == [f"obs_{t}" for t in range(4)]  # every observed site, in order
    with pytest.raises(PplVaeError, match=r"needs input\(s\) \['lengths'\]"):
        run.sample(3)


def test_the_estimators_follow_the_site_set_against_a_hand_computation():
    """``trace`` on a batch of length 2 after a plan made at length 1 sums both steps:
    the ELBO of one example by hand, with the guide's draws read back from a trace."""
    data = _sequences()
    x, lengths = data.train[:2], torch.tensor([1, 1])
    guide = SequenceGuide()
    pair = ppl_vae.Pair(sequence_model, guide)
    estimator = create("trace")
    with pair.scope():
        estimator.loss(pair, Batch(x, {"lengths": lengths}))  # plan made with one step
        longer = torch.tensor([2, 1])
        pyro.set_rng_seed(5)
        loss = estimator.loss(pair, Batch(x, {"lengths": longer}))
        pyro.set_rng_seed(5)
        guide_trace = pyro.poutine.trace(guide).get_trace(x, longer)
    z0, z1 = guide_trace.nodes["z_0"]["value"], guide_trace.nodes["z_1"]["value"]
    w = guide.weight.detach()
    log_p = (dist.Normal(0.0, 1.0).log_prob(z0) + dist.Normal(z0, 0.5).log_prob(x[:, 0])
             + (dist.Normal(0.8 * z0, 1.0).log_prob(z1) + dist.Normal(z1, 0.5).log_prob(x[:, 1])
                - dist.Normal(w * x[:, 1], 0.5).log_prob(z1)) * (longer > 1)
             - dist.Normal(w * x[:, 0], 0.5).log_prob(z0))
    assert torch.allclose(loss.detach(), -log_p.mean(), rtol=1e-5)


class GammaVAE(torch.nn.Module):
    """Gamma latents (support: the positive half line) under an image decoder."""

    def __init__(self):
        super().__init__()
        self.decoder = torch.nn.Linear(3, 64)
        self.encoder = torch.nn.Linear(64, 6)

    def model(self, x):
        pyro.module("gamma_vae", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Gamma(x.new_full((3,), 2.0), 2.0).to_event(1))
            logits = self.decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(self, x):
        pyro.module("gamma_vae", self)
        shape, rate = torch.nn.functional.softplus(self.encoder(x.flatten(-3))).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Gamma(shape + 0.5, rate + 0.5).to_event(1))


def test_gamma_latents_are_traversed_inside_their_support(tmp_path):
    from tests.conftest import tiny_binary

    vae = GammaVAE()
    run = ppl_vae.fit(vae.model, vae.guide, tiny_binary(), epochs=1, batch_size=20,
                      out=tmp_path, quiet=True, iw_samples=2)
    assert run.report["figure_errors"] == []
    assert (tmp_path / "figures" / "traversals.png").exists()


def test_trace_stl_with_a_global_latent_says_what_it_needs():
    from tests.conftest import global_latent_pair, tiny_binary

    model_, _ = global_latent_pair()

    def guide(x):
        pyro.sample("w", dist.Normal(pyro.param("w_loc", torch.tensor(0.0)), 1.0))

    with pytest.raises(PplVaeError, match=r"needs every latent inside pyro.plate\('data'\)"):
        ppl_vae.fit(model_, guide, tiny_binary(), elbo="trace-stl", epochs=1, quiet=True,
                    report=False)
