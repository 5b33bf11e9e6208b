"""NGVAE: relaxation, closed-form KL terms, gradients, analytic meanfield, training, hooks."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import ppl_vae
import ppl_vae.estimators.trace
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from ppl_vae.models.ngvae import Relaxation, expected_gaussian_kl
from ppl_vae.reporting.run_report import finish_run
from ppl_vae.traces import log_weights, prepare

Z_PRIORS = ["normal", "normal_gamma"]


def build(data, **options):
    return ppl_vae.build("ngvae", data=data, latent_dim=3, net="mlp", **options)


def test_relaxation_endpoints_are_exact_and_p_to_one_selects_component_1():
    relax = Relaxation(concentration1=5.0, rate1=0.04, concentration2=3.0, rate2=2.0)
    a, b = relax(torch.tensor([1.0, 0.0]))
    assert a.tolist() == pytest.approx([5.0, 3.0], abs=1e-6)
    assert b.tolist() == pytest.approx([0.04, 2.0], abs=1e-6)
    assert relax.mean_variance(1.0).item() == pytest.approx(0.01, rel=1e-4)
    assert relax.mean_variance(0.0).item() == pytest.approx(1.0, rel=1e-4)
    w = torch.linspace(0, 1, 101)
    s = relax.unit_sigmoid(w)
    assert (s.diff() > 0).all() and s[50].item() == pytest.approx(0.5)
    assert (relax.mean_variance(w).diff() < 0).all()  # larger p: smaller variance


def test_sharper_relaxation_is_closer_to_a_switch():
    w = torch.tensor([0.3, 0.7])
    soft, sharp = Relaxation(sharpness=4.0), Relaxation(sharpness=40.0)
    assert sharp.unit_sigmoid(w).tolist() == pytest.approx([0.0, 1.0], abs=1e-3)
    assert 0.1 < soft.unit_sigmoid(w)[0] < 0.4


@pytest.mark.parametrize("options, message", [
    ({"concentration1": 1.0}, "exceed 1"), ({"rate2": -1.0}, "positive"),
    ({"rate1": 3.0}, "smaller mean variance"), ({"prior_weight": 1.0}, "prior-weight"),
    ({"z_prior": "flat"}, "z-prior"),
])
def test_bad_hyperparameters_get_one_line_errors(binary_data, options, message):
    with pytest.raises(PplVaeError, match=message):
        build(binary_data, **options)


def test_prior_is_the_two_component_mixture_and_its_kl_has_known_values(binary_data):
    model = build(binary_data, prior_weight=0.2, learn_prior_weight=False, concentration1=3.0,
                  rate1=0.02, concentration2=3.0, rate2=2.0).model  # components barely overlap
    prior = model.precision_prior()
    lam = torch.tensor([[0.5, 30.0, 150.0]])
    r = model.relaxation
    by_hand = torch.logsumexp(torch.stack([
        torch.tensor(0.2).log() + dist.Gamma(r.concentration1, r.rate1).log_prob(lam),
        torch.tensor(0.8).log() + dist.Gamma(r.concentration2, r.rate2).log_prob(lam)]), 0)
    assert torch.allclose(prior.log_prob(lam), by_hand.sum(-1))
    # q on component c, far from the other: KL(q ‖ mixture) = -log π_c
    loc = torch.zeros(1, 3)
    for weight, expected in ((1.0, -torch.tensor(0.2).log()), (0.0, -torch.tensor(0.8).log())):
        a, b = r(torch.full((1, 3), weight))
        kl_lambda = model.kl_per_dimension(loc, a, b, draws=20_000) - expected_gaussian_kl(
            loc, a, b)
        assert torch.allclose(kl_lambda, expected.expand(1, 3), atol=0.03)
    assert not any(p is model.prior_logit for p in model.parameters())  # fixed when asked


@pytest.mark.parametrize("z_prior", Z_PRIORS)
def test_expected_gaussian_kl_matches_monte_carlo_over_the_precision(z_prior):
    loc, a, b = torch.tensor([0.3, -1.5, 0.0]), torch.tensor([3.0, 6.0, 3.0]), torch.tensor(
        [0.02, 1.0, 2.0])
    lam = dist.Gamma(a, b).sample((400_000,))
    prior_scale = lam.rsqrt() if z_prior == "normal_gamma" else torch.ones_like(lam)
    conditional = torch.distributions.kl_divergence(dist.Normal(loc, lam.rsqrt()),
                                                    dist.Normal(0.0, prior_scale))
    closed = expected_gaussian_kl(loc, a, b, z_prior)
    assert torch.allclose(closed, conditional.mean(0), rtol=0.02, atol=0.01)


@pytest.mark.parametrize("z_prior", Z_PRIORS)
def test_kl_per_dimension_is_the_joint_kl_of_the_traces(binary_data, z_prior):
    pair = build(binary_data, z_prior=z_prior)
    x = binary_data.train[:2]
    with torch.no_grad():
        nesting, plan = prepare(pair.model, pair.guide, x)
        w = log_weights(pair.model, pair.guide, x, 100_000, nesting, plan)
        mc = (w.log_guide - w.log_prior).mean(0)  # E_q[log q(λ, z | x) - log p(λ, z)]
        loc, weight = pair.guide.heads(x)
        a, b = pair.model.relaxation(weight)
        kl = pair.model.kl_per_dimension(loc, a, b, draws=100_000).sum(-1)
    assert torch.allclose(mc, kl, rtol=0.02, atol=0.03)


def test_gradients_reach_the_weight_through_concentration_and_rate():
    relax = Relaxation()
    w = torch.tensor(0.6, requires_grad=True)
    a, b = relax(w)
    lam = dist.Gamma(a, b).rsample((400_000,))
    (1 / lam).mean().backward()  # d/dw E[λ⁻¹], by implicit reparameterization
    mc = w.grad.item()
    w_exact = torch.tensor(0.6, requires_grad=True)
    relax.mean_variance(w_exact).backward()
    assert mc == pytest.approx(w_exact.grad.item(), rel=0.03)
    a_, b_ = torch.tensor(3.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    dist.Gamma(a_, b_).rsample((10,)).log().sum().backward()
    assert a_.grad.abs() > 0 and b_.grad.abs() > 0


def test_weight_head_gets_gradient_from_the_elbo(binary_data):
    pair = build(binary_data)
    x = binary_data.train[:8]
    make_elbo("trace")(pair.model, pair.guide, x).backward()
    last = [m for m in pair.guide.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    weight_rows = last.weight.grad[3:]  # second half of the output: the logits of p_k
    assert weight_rows.abs().sum() > 0
    assert pair.model.prior_logit.grad.abs().sum() > 0  # the learned prior weights π_k


def _spy(monkeypatch):
    """Record the (guide, prior) base-distribution types of every KL meanfield takes."""
    calls = []

    def kl(q, p):
        calls.append((type(q.base_dist).__name__, type(p.base_dist).__name__))
        return torch.distributions.kl_divergence(q, p)

    monkeypatch.setattr(ppl_vae.estimators.trace, "kl_divergence", kl)
    return calls


@pytest.mark.parametrize("z_prior", Z_PRIORS)
def test_meanfield_takes_the_gaussian_kl_analytically_and_the_mixture_by_monte_carlo(
        binary_data, monkeypatch, z_prior):
    pair = build(binary_data, z_prior=z_prior)
    elbo, x = make_elbo("meanfield"), binary_data.train[:8]
    assert elbo.prepare(pair, x)[1].analytic_kl == {"z"}
    calls = _spy(monkeypatch)
    elbo(pair.model, pair.guide, x)
    # the z-site's KL is the λ-average in closed form; the precision site is log q - log p
    assert calls == [("NormalGivenGammaPrecision", "Normal")]


@pytest.mark.parametrize("z_prior", Z_PRIORS)
def test_meanfield_equals_recon_plus_mc_lambda_term_plus_closed_form_gaussian_kl(binary_data,
                                                                                  z_prior):
    pair = build(binary_data, z_prior=z_prior)
    x = binary_data.train[:16]
    elbo = make_elbo("meanfield")
    elbo(pair.model, pair.guide, x)  # one-off plate-nesting trace
    pyro.set_rng_seed(5)
    loss = elbo(pair.model, pair.guide, x)
    pyro.set_rng_seed(5)
    guide_trace = poutine.trace(pair.guide).get_trace(x)
    lam, z = guide_trace.nodes["precision"]["value"], guide_trace.nodes["z"]["value"]
    model_trace = poutine.trace(poutine.replay(pair.model, guide_trace)).get_trace(x)
    recon = -model_trace.nodes["x"]["fn"].log_prob(x)
    loc, _ = pair.guide.heads(x)
    lambda_term = (guide_trace.nodes["precision"]["fn"].log_prob(lam)
                   - model_trace.nodes["precision"]["fn"].log_prob(lam))
    a, b = pair.guide.relaxation(pair.guide.heads(x)[1])
    gaussian_kl = expected_gaussian_kl(loc, a, b, z_prior)  # E_λ KL, not the KL at λ
    kl = lambda_term + gaussian_kl.sum(-1)
    assert z.shape == loc.shape
    assert loss.item() == pytest.approx((recon + kl).mean().item(), rel=1e-5)


@pytest.mark.parametrize("elbo, z_prior", [("trace", "normal"), ("meanfield", "normal"),
                                           ("iwae", "normal"), ("meanfield", "normal_gamma")])
def test_trains_through_fit_with_each_estimator(binary_data, elbo, z_prior):
    pair = build(binary_data, z_prior=z_prior)
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, elbo=elbo, epochs=4, batch_size=20,
                      lr=1e-2, quiet=True, device="cpu", pair=pair)
    objectives = [m["train_objective"] for m in run.metrics]
    assert all(torch.isfinite(torch.tensor(objectives)))
    assert objectives[-1] > objectives[0] + 1.0, objectives
    result = run.evaluate(binary_data.test, iw_samples=20)
    assert result["elbo"] <= result["log_likelihood"] + 0.5


def test_meanfield_and_trace_agree_in_expectation(binary_data):
    pair = build(binary_data)
    x = binary_data.train[:4]
    with torch.no_grad():
        trace = make_elbo("trace", num_particles=20_000)(pair.model, pair.guide, x).item()
        meanfield = make_elbo("meanfield", num_particles=20_000)(pair.model, pair.guide, x).item()
    assert trace == pytest.approx(meanfield, abs=0.1)


def test_build_picks_the_ngvae_guide_and_the_guide_refuses_other_models(binary_data):
    pair = ppl_vae.build("ngvae", data=binary_data, sharpness=20.0, prior_weight=0.3)
    assert pair.spec.guide == "ngvae" and pair.guide.relaxation.sharpness == 20.0
    assert pair.model.prior_weight().tolist() == pytest.approx([0.3] * 10)
    with pytest.raises(PplVaeError, match="needs the 'ngvae' model"):
        ppl_vae.build("vae", guide="ngvae", data=binary_data)


def test_report_and_figures_hooks_land_in_the_run_folder(binary_data, tmp_path):
    pair = build(binary_data)
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, batch_size=20, quiet=True,
                      device="cpu", out=tmp_path / "run", pair=pair)
    finish_run(run, binary_data, iw_samples=5)
    report = json.loads((tmp_path / "run" / "report.json").read_text())["guide_report"]
    assert 0 <= report["informative_components"] <= 3
    assert len(report["mean_weight"]) == len(report["mean_variance"]) == 3
    assert all(0.01 * (1 - 1e-4) <= v <= 1 + 1e-4 for v in report["mean_variance"])
    assert len(report["kl_per_dimension"]) == 3 and len(report["prior_weight"]) == 3
    for name in ("ngvae_variances.png", "ngvae_correlation.png"):
        assert (tmp_path / "run" / "figures" / name).stat().st_size > 1000
    reloaded = ppl_vae.load_run(tmp_path / "run")  # rebuilt from config.json, π_k included
    assert torch.equal(reloaded.model.prior_logit, pair.model.prior_logit.detach())
