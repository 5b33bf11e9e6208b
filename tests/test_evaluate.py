"""Importance-sampled log-likelihood against the exact log p(x) of probabilistic PCA."""

import warnings

import numpy as np
import pyro
import pytest

import ppl_vae
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.estimators import make_elbo
from ppl_vae.evaluate import evaluate_pair
from ppl_vae.per_example import PerExample
from tests.ppca import K, PosteriorGuide, ppca_data


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
    x = binary_data.test
    pair.plan(x)  # the pair's own contract check (probes of up to PROBE_ROWS rows), kept
    seen = []
    pair.model.decoder.register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].shape[:-1].numel()))
    evaluate_pair(pair, x, iw_samples=iw_samples, budget=budget)
    assert max(seen) <= budget
    assert sum(seen) == iw_samples * x.shape[0]  # every example got all its K draws


# --- per-example values and their trust (Pareto k̂, ESS) ------------------------------------
# With q = N(posterior mean, c·Σ_post) and K = 2 latent dimensions, w = p(z|x)/q(z|x) has
# an exact Pareto tail of shape 1 - c when c < 1 ((w/c)^(-1/(1-c)), whitened |v|² ~ c·χ²₂),
# and ESS/K → E[w]²/E[w²] = Π_d √(2c - 1)/c = (2c - 1)/c² when c > 1/2.


def _per_example(c: float, n: int = 40, iw_samples: int = 2000, **kwargs):
    model, x = ppca_data(n=n)
    result = ppl_vae.evaluate(model, PosteriorGuide(model, inflate=c), x, iw_samples=iw_samples,
                              budget=20000, per_example=True, **kwargs)
    return model, x, result


@pytest.mark.parametrize("c", [0.8, 0.5, 0.2])
def test_pareto_k_is_the_exact_tail_shape_of_a_narrowed_posterior_guide(c):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PplVaeWarning)
        _, _, result = _per_example(c)
    khat = result["per_example"].khat
    assert np.median(khat) == pytest.approx(1 - c, abs=0.08)
    assert result["log_likelihood_trust"]["khat_median"] == pytest.approx(np.median(khat),
                                                                           abs=0.05)


def test_ess_is_the_exact_share_for_a_widened_posterior_guide():
    _, _, result = _per_example(2.0)
    ess = result["per_example"].ess
    assert ess.mean() / 2000 == pytest.approx((2 * 2.0 - 1) / 2.0**2, abs=0.02)  # 0.75
    trust = result["log_likelihood_trust"]
    assert trust["ess_mean"] == pytest.approx(ess.mean()) and trust["ess_min"] == ess.min()
    assert trust["khat_max"] < 0.5 and trust["warning"] is None  # bounded weights


def test_exact_posterior_guide_has_no_tail_full_ess_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PplVaeWarning)
        _, _, result = _per_example(1.0, iw_samples=100)
    trust = result["log_likelihood_trust"]
    assert trust["khat_share_above_0.7"] == 0.0 and trust["khat_max"] == -np.inf
    assert trust["ess_min"] == pytest.approx(100, rel=1e-6) and trust["warning"] is None


def test_a_bad_guide_is_named_unreliable_in_one_line():
    with pytest.warns(PplVaeWarning, match="not reliable") as caught:
        _, _, result = _per_example(0.1, iw_samples=1000)
    trust = result["log_likelihood_trust"]
    assert trust["khat_share_above_0.7"] > 0.5
    message = str(caught[0].message)
    assert message == trust["warning"] and "\n" not in message and "k̂ > 0.7" in message


def test_too_few_draws_for_a_tail_report_no_khat_but_the_ess():
    _, _, result = _per_example(0.5, iw_samples=5)
    trust = result["log_likelihood_trust"]
    assert trust["khat_median"] is None and "at least 21" in trust["khat_note"]
    assert 1 <= trust["ess_min"] <= trust["ess_mean"] <= 5
    assert np.isnan(result["per_example"].khat).all()


def test_per_example_values_match_exact_log_p_and_elbo_within_mc_error():
    c, iw_samples = 1.5, 500
    model, x, result = _per_example(c, n=60, iw_samples=iw_samples)
    values, exact = result["per_example"], model.exact_log_prob(x).double().numpy()
    # delta method: sd(log p̂_n) ≈ sd(w)/(√K E w) = √(1/ESS_n - 1/K)
    z = (values.log_likelihood - exact) / np.sqrt(1 / values.ess - 1 / iw_samples)
    assert np.abs(z).max() < 4.5 and abs(z.mean()) < 4.5 / np.sqrt(z.size)
    # ELBO_n = log p(x_n) - KL(N(m, cΣ) ‖ N(m, Σ)) = log p(x_n) - (k/2)(c - 1 - log c); the
    # spread of log w is Var = (k/2)(c - 1)², so one example's mean of K has sd 0.022
    kl = 0.5 * K * (c - 1 - np.log(c))
    assert np.abs(values.elbo - (exact - kl)).max() < 5 * np.sqrt(0.5 * K * (c - 1) ** 2
                                                                   / iw_samples)
    assert result["log_likelihood"] == pytest.approx(values.log_likelihood.mean())
    assert result["log_likelihood_se"] == pytest.approx(
        values.log_likelihood.std(ddof=1) / np.sqrt(60))


def test_per_example_values_name_their_examples_and_survive_the_file(tmp_path):
    model, x = ppca_data(n=12)
    guide = PosteriorGuide(model, inflate=1.5)
    first = ppl_vae.evaluate(model, guide, x, iw_samples=30, per_example=True)["per_example"]
    again = ppl_vae.evaluate(model, guide, x, iw_samples=30, per_example=True,
                             budget=7)["per_example"]
    other = ppl_vae.evaluate(model, guide, x + 1e-3, iw_samples=30,
                             per_example=True)["per_example"]
    assert first.examples_sha256 == again.examples_sha256 != other.examples_sha256
    assert list(first.index) == list(range(12)) and first.iw_samples == 30
    first.save(tmp_path / "e.npz")
    loaded = PerExample.load(tmp_path / "e.npz")
    for name in ("index", "log_likelihood", "elbo", "khat", "ess"):
        assert np.array_equal(getattr(loaded, name), getattr(first, name)), name
    assert (loaded.iw_samples, loaded.examples_sha256, loaded.likelihood_of) == \
        (30, first.examples_sha256, "log p(x)")
    assert "per_example" not in ppl_vae.evaluate(model, guide, x, iw_samples=30)
