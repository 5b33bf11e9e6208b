"""NGVAE measured on p(x), not on its auxiliary precisions: the collapsed (λ-marginal) pair
the guide declares, the Rao-Blackwellised KL under meanfield, analytic posterior moments."""

import math

import pyro
import pytest
import torch
from scipy import integrate, stats

import ppl_vae
from ppl_vae.estimators import make_elbo
from ppl_vae.latents import posterior_moments
from ppl_vae.models import ngvae as ngvae_module
from ppl_vae.models.ngvae import expected_gaussian_kl, student_t_marginal


@pytest.fixture(scope="module")
def trained():
    pyro.set_rng_seed(0)
    data = ppl_vae.data.load("shapes", size=32, n=600, seed=0)
    pair = ppl_vae.build("ngvae", latent_dim=4, data=data, seed=0, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, elbo="meanfield", epochs=3,
                batch_size=50, quiet=True, device="cpu", report=False)
    return pair, data


@pytest.mark.parametrize("z, loc, a, b", [(0.3, 0.0, 1.5, 0.5), (-1.2, 0.4, 2.5, 0.01),
                                          (2.0, -0.5, 1.5, 0.005)])
def test_student_t_marginal_equals_the_integral_over_the_precision(z, loc, a, b):
    def integrand(lam):
        return stats.norm.pdf(z, loc, lam**-0.5) * stats.gamma.pdf(lam, a, scale=1 / b)

    numeric, _ = integrate.quad(integrand, 0, math.inf, limit=200)
    closed = student_t_marginal(torch.tensor(loc), torch.tensor(a), torch.tensor(b))
    assert float(closed.log_prob(torch.tensor(z))) == pytest.approx(math.log(numeric), abs=1e-6)


def test_collapsed_log_likelihood_does_not_depend_on_the_prior_weights(trained):
    pair, data = trained
    x, results = data.test[:40], []
    for weight in (None, 0.57, 0.5, 0.2):
        if weight is not None:
            with torch.no_grad():
                pair.model.prior_logit.fill_(math.log(weight / (1 - weight)))
        with pair.scope():
            pyro.set_rng_seed(1)
            results.append(ppl_vae.evaluate(pair.model, pair.guide, x, iw_samples=20))
    collapsed = [r["log_likelihood"] for r in results]
    uncollapsed = [r["uncollapsed"]["log_likelihood"] for r in results]
    assert max(collapsed) - min(collapsed) < 0.05  # p(x) has no π under z_prior="normal"
    assert max(uncollapsed) - min(uncollapsed) > 0.05  # ... but λ's proposal does
    assert all(r["collapsed"] for r in results)


def test_the_collapsed_elbo_is_above_the_uncollapsed_one(trained):
    """ELBO_collapsed = ELBO + E_q(z) KL(q(λ | z, x) ‖ p(λ)) ≥ ELBO."""
    pair, data = trained
    result = ppl_vae.evaluate(pair.model, pair.guide, data.test[:40], iw_samples=400)
    gap = result["elbo"] - result["uncollapsed"]["elbo"]
    assert gap > 0 and result["log_likelihood"] >= result["elbo"]


def test_meanfield_takes_the_expected_gaussian_kl_in_closed_form(trained, monkeypatch):
    pair, data = trained
    x, calls = data.test[:10], []
    real = ngvae_module.expected_gaussian_kl
    monkeypatch.setattr(ngvae_module, "expected_gaussian_kl",
                        lambda *args: calls.append(args) or real(*args))
    with pair.scope():
        pyro.set_rng_seed(2)
        loss = make_elbo("meanfield")(pair.model, pair.guide, x)
        pyro.set_rng_seed(2)
        loc, weight = pair.guide.heads(x)
        a, b = pair.guide.relaxation(weight)
        q_precision = pyro.distributions.Gamma(a, b)
        precision = q_precision.rsample()
        z = loc + precision.rsqrt() * torch.randn_like(loc)
        recon = pair.model.likelihood(pair.model.decoder(z)).log_prob(x)
        log_ratio = (q_precision.log_prob(precision)
                     - pair.model.precision_prior().base_dist.log_prob(precision)).sum(-1)
        hand = -(recon - log_ratio - expected_gaussian_kl(loc, a, b).sum(-1)).mean()
    assert calls, "meanfield did not use the closed-form expected KL"
    assert torch.allclose(loss, hand, rtol=1e-5)


def test_posterior_variances_are_the_analytic_mean_not_a_draw(trained):
    pair, data = trained
    x = data.test[:20]
    with pair.scope():
        _, means, variances = posterior_moments(pair.model, pair.guide, x)
        loc, weight = pair.guide.heads(x)
        a, b = pair.guide.relaxation(weight)
    assert torch.allclose(means, loc) and torch.allclose(variances, b / (a - 1), rtol=1e-5)
