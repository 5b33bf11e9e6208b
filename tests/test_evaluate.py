"""Importance-sampled log-likelihood against the exact log p(x) of probabilistic PCA."""

import pyro
import pytest

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from tests.ppca import PosteriorGuide, ppca_data


def test_exact_posterior_guide_gives_exact_log_likelihood_with_one_sample():
    model, x = ppca_data()
    result = ppl_vae.evaluate(model, PosteriorGuide(model), x, iw_samples=1)
    exact = model.exact_log_prob(x).mean().item()
    # log w = log p(x) for every draw when q is the posterior; ELBO = log p(x) too.
    assert result["log_likelihood"] == pytest.approx(exact, abs=1e-4)
    assert result["elbo"] == pytest.approx(exact, abs=1e-4)


def test_is_estimate_converges_to_exact_and_bounds_are_ordered():
    model, x = ppca_data()
    guide = PosteriorGuide(model, inflate=2.5, shift=0.3)
    exact = model.exact_log_prob(x).mean().item()
    small = ppl_vae.evaluate(model, guide, x, iw_samples=5, budget=1000)
    large = ppl_vae.evaluate(model, guide, x, iw_samples=5000, budget=20000)
    assert large["elbo"] < small["log_likelihood"] < large["log_likelihood"]
    assert abs(large["log_likelihood"] - exact) < 0.05
    assert large["elbo"] < exact - 0.1  # a poor guide's ELBO is visibly below log p(x)
    assert large["reconstruction"] + large["kl"] == pytest.approx(-large["elbo"], rel=1e-5)


def test_chunking_does_not_change_the_answer():
    model, x = ppca_data(n=10)
    guide = PosteriorGuide(model, inflate=2.0)
    pyro.set_rng_seed(0)
    one = ppl_vae.evaluate(model, guide, x, iw_samples=300, budget=300)
    pyro.set_rng_seed(0)
    many = ppl_vae.evaluate(model, guide, x, iw_samples=300, budget=100)
    assert abs(one["log_likelihood"] - many["log_likelihood"]) < 0.05


def test_iwae_bound_is_above_elbo_on_average():
    model, x = ppca_data(n=200)
    guide = PosteriorGuide(model, inflate=3.0, shift=0.5)
    elbo = -make_elbo("trace", num_particles=50)(model, guide, x).item()
    iwae = -make_elbo("iwae", num_particles=50)(model, guide, x).item()
    renyi = -make_elbo("renyi", num_particles=50, alpha=0.5)(model, guide, x).item()
    exact = model.exact_log_prob(x).mean().item()
    assert elbo < renyi < iwae < exact + 0.02


def test_iwae_with_one_particle_is_the_elbo():
    model, x = ppca_data(n=20)
    guide = PosteriorGuide(model, inflate=2.0)
    iwae, trace = make_elbo("iwae", num_particles=1), make_elbo("trace")
    iwae(model, guide, x), trace(model, guide, x)  # one-off plate-nesting traces
    pyro.set_rng_seed(5)
    a = iwae(model, guide, x).item()
    pyro.set_rng_seed(5)
    b = trace(model, guide, x).item()
    assert a == pytest.approx(b, rel=1e-6)


def test_evaluate_refuses_zero_samples():
    model, x = ppca_data(n=5)
    with pytest.raises(PplVaeError, match="iw-samples"):
        ppl_vae.evaluate(model, PosteriorGuide(model), x, iw_samples=0)


@pytest.mark.parametrize("iw_samples,budget", [(1000, 256), (50, 256), (7, 30)])
def test_no_pass_holds_more_particle_examples_than_the_budget(binary_data, iw_samples, budget):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    seen = []
    pair.model.decoder.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].shape[:-1].numel()))
    x = binary_data.test
    ppl_vae.evaluate(pair.model, pair.guide, x, iw_samples=iw_samples, budget=budget)
    # the pair is first checked on one draw (nesting, plan), then with two particles at once
    contract_check, passes = seen[:3], seen[3:]
    assert contract_check == [1, 1, 2]
    assert max(passes) <= budget
    assert sum(passes) == iw_samples * x.shape[0]  # every example got all its K draws
