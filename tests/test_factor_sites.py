"""``pyro.factor`` and ``pyro.deterministic`` sites, counted as Pyro's ELBOs count them.

A factor is a term of the joint density, not data; a deterministic site is a record with
no density. The known answer: ``z ~ N(0, 1)``, a factor ``-a z² / 2``,
``x | z ~ N(z, 1)``. The unnormalised joint integrates to

    p̃(x) = ∫ N(z; 0, 1) exp(-a z² / 2) N(x; z, 1) dz
         = (1 + a)^{-1/2} N(x; 0, 1 / (1 + a) + 1),

and its posterior is ``N(x / (2 + a), 1 / (2 + a))``. With that exact guide every
importance weight equals ``p̃(x)``, so the ELBO and the IS estimate are both exactly
``log p̃(x)``.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, create

A = 3.0


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(1), 1.0).to_event(1))
        pyro.factor("shrink", -A * z.squeeze(-1) ** 2 / 2)
        mean = pyro.deterministic("mean", z, event_dim=1)
        pyro.sample("x", dist.Normal(mean, 1.0).to_event(1), obs=x)


def exact_guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x / (2 + A), (2 + A) ** -0.5).to_event(1))


def _data():
    x = torch.randn(30, 1, generator=torch.Generator().manual_seed(0)) * 1.5
    return ppl_vae.data.from_tensors(x[:20], x[20:])


def _log_evidence(x):
    return (-0.5 * math.log(1 + A)
            + dist.Normal(0.0, math.sqrt(1 / (1 + A) + 1)).log_prob(x).squeeze(-1)).mean()


def test_the_elbo_and_is_estimate_count_the_factor_in_the_joint():
    x = _data().test
    result = ppl_vae.evaluate(model, exact_guide, x, iw_samples=50)
    exact = float(_log_evidence(x))
    assert result["elbo"] == pytest.approx(exact, abs=1e-4)
    assert result["log_likelihood"] == pytest.approx(exact, abs=1e-4)
    assert result["log_likelihood_of"] == "log p(x)"  # neither the factor nor the record


def test_the_elbo_counts_the_factor_with_a_global_latent_beside_it():
    """A global ``c ~ N(0, 1)`` that the data never read, drawn by the guide from its prior,
    adds nothing: the ELBO (global path, one particle over all examples) is still exact."""
    def with_global(x):
        pyro.sample("c", dist.Normal(0.0, 1.0))
        model(x)

    def guide(x):
        pyro.sample("c", dist.Normal(0.0, 1.0))
        exact_guide(x)

    x = _data().test
    result = ppl_vae.evaluate(with_global, guide, x, iw_samples=20)
    assert result["elbo"] == pytest.approx(float(_log_evidence(x)), abs=1e-4)


@pytest.mark.parametrize("elbo, particles, tolerance", [
    ("trace", 3, 1e-4), ("iwae", 3, 1e-4), ("iwae-dreg", 3, 1e-4), ("trace-stl", 3, 1e-4),
    ("tcvae", 3, 1e-4),
    ("meanfield", 20000, 0.01),  # analytic KL of z, the factor by Monte Carlo: not constant
])
@pytest.mark.parametrize("batch", [10, 4])
def test_each_estimator_gives_the_exact_loss_with_the_exact_guide(elbo, particles, tolerance,
                                                                   batch):
    x = _data().test[:batch]
    pair = ppl_vae.Pair(model, exact_guide)
    pyro.set_rng_seed(0)
    options = {"tc_weight": 1.0} if elbo == "tcvae" else {}  # weight 1: the ELBO, term by term
    with pair.scope(), torch.no_grad():
        loss = create(elbo, particles=particles, **options).loss(
            pair, Batch(x, {}, dataset_size=10))
    assert float(loss) == pytest.approx(-float(_log_evidence(x)), abs=tolerance)


def test_a_model_sample_holds_the_observation_not_the_factor_or_the_record():
    def guide(x):
        shift = pyro.param("shift", torch.zeros(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x / (2 + A) + shift, (2 + A) ** -0.5).to_event(1))

    run = ppl_vae.fit(model, guide, _data(), epochs=1, batch_size=5, quiet=True,
                      report=False, device="cpu", seed=0)
    drawn = run.sample(4)  # several observed sites would give a dict, one per site
    assert torch.is_tensor(drawn) and drawn.shape == (4, 1)


def test_sbc_refuses_a_model_with_a_factor_in_one_line():
    from ppl_vae.diagnostics.sbc import simulate

    pair = ppl_vae.Pair(model, exact_guide)
    with pytest.raises(PplVaeError) as error:
        simulate(pair, _data().train[:4], {})
    assert "pyro.factor site(s) ['shrink']" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_factor_on_an_enumerated_site_counts_in_every_value():
    """``c ~ Bernoulli(½)`` tilted by ``exp(b c)``, ``x | c ~ N(c, 1)``, the guide summing
    ``c`` out at its exact posterior: ``p̃(x) = ½ N(x; 0, 1) + ½ e^b N(x; 1, 1)``."""
    b = 1.5

    def tilted(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(x.new_full((), 0.5)))
            pyro.factor("tilt", b * c)
            pyro.sample("x", dist.Normal(c.unsqueeze(-1), 1.0).to_event(1), obs=x)

    def posterior(x):
        odds = b + (dist.Normal(1.0, 1.0).log_prob(x) - dist.Normal(0.0, 1.0).log_prob(x))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(logits=odds.squeeze(-1)),
                        infer={"enumerate": "parallel"})

    x = _data().test
    exact = torch.logaddexp(dist.Normal(0.0, 1.0).log_prob(x),
                            b + dist.Normal(1.0, 1.0).log_prob(x)).squeeze(-1) - math.log(2)
    result = ppl_vae.evaluate(tilted, posterior, x, iw_samples=5)
    assert result["elbo"] == pytest.approx(float(exact.mean()), abs=1e-4)
    assert result["log_likelihood"] == pytest.approx(float(exact.mean()), abs=1e-4)


def test_a_reparameterized_model_leaves_a_record_not_an_observation():
    """``poutine.reparam`` with ``LocScaleReparam(centered=0)``: ``z = ½ + 2 ε``,
    ``ε ~ N(0, 1)``, ``x | z ~ N(z, 1)``; the site ``z`` it leaves is a record. With the
    exact guide ``q(ε) = N((m - ½) / 2, v / 4)`` (``v = 1 / 1.25``, ``m = v (⅛ + x)``) the
    ELBO and IS estimate are ``log N(x; ½, 5)``."""
    from pyro.infer.reparam import LocScaleReparam

    def centred(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_full((1,), 0.5), 2.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):
        variance = 1 / 1.25
        mean = variance * (0.125 + x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z_decentered",
                        dist.Normal((mean - 0.5) / 2, variance**0.5 / 2).to_event(1))

    model = poutine.reparam(centred, config={"z": LocScaleReparam(centered=0.0)})
    x = _data().test
    result = ppl_vae.evaluate(model, guide, x, iw_samples=20)
    exact = float(dist.Normal(0.5, math.sqrt(5.0)).log_prob(x).mean())
    assert result["log_likelihood_of"] == "log p(x)"
    assert result["elbo"] == pytest.approx(exact, abs=1e-4)
    assert result["log_likelihood"] == pytest.approx(exact, abs=1e-4)
