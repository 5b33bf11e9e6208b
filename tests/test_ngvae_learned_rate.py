"""NGVAE with the informative rate β1 learned per dimension (``learn_rate1``)."""

import pyro.distributions as dist
import torch
from pyro import poutine

import ppl_vae
from ppl_vae.models.ngvae import InformativeRate, Relaxation


def build(data, **options):
    return ppl_vae.build("ngvae", data=data, latent_dim=3, net="mlp", seed=0, **options)


def test_rate_starts_at_rate1_and_never_makes_component_1_the_wider_one():
    relaxation = Relaxation(concentration1=2.0, rate1=0.02, concentration2=3.0, rate2=1.0)
    rate = InformativeRate(4, relaxation)
    assert torch.allclose(rate(), torch.full((4,), 0.02))
    with torch.no_grad():
        rate.logit.copy_(torch.tensor([-50.0, 0.0, 5.0, 50.0]))
    mean_variance_1 = rate() / (relaxation.concentration1 - 1)
    assert (mean_variance_1 <= relaxation.mean_variance(0.0) + 1e-7).all()
    assert torch.allclose(mean_variance_1[1], relaxation.mean_variance(0.0) / 2)


def test_per_dimension_rate_gives_the_hand_mixture(binary_data):
    model = build(binary_data, learn_rate1=True, prior_weight=0.3).model
    with torch.no_grad():
        model.informative_rate.logit.copy_(torch.tensor([-3.0, -1.0, 2.0]))
    rate1, r = model.rate1(), model.relaxation
    lam = torch.tensor([[0.7, 20.0, 3.0]])
    by_hand = torch.logsumexp(torch.stack([
        torch.tensor(0.3).log() + dist.Gamma(r.concentration1, rate1).log_prob(lam),
        torch.tensor(0.7).log() + dist.Gamma(r.concentration2, r.rate2).log_prob(lam)]), 0)
    assert torch.allclose(model.precision_prior().log_prob(lam), by_hand.sum(-1))
    # the guide's relaxation ends at the same per-dimension component 1
    guide = build(binary_data, learn_rate1=True).guide
    guide.informative_rate.load_state_dict(model.informative_rate.state_dict())
    a, b = guide.components(torch.ones(3))
    assert torch.allclose(b, rate1) and torch.allclose(a, torch.tensor(r.concentration1))


def test_at_its_start_the_learned_variant_is_the_fixed_model(binary_data):
    fixed, learned = build(binary_data), build(binary_data, learn_rate1=True)
    learned.model.decoder.load_state_dict(fixed.model.decoder.state_dict())
    learned.guide.encoder.load_state_dict(fixed.guide.encoder.state_dict())
    x = binary_data.train[:16]
    values = []
    for pair in (fixed, learned):
        with pair.scope():
            torch.manual_seed(3)
            guide = poutine.trace(pair.guide).get_trace(x)
            model = poutine.trace(poutine.replay(pair.model, trace=guide)).get_trace(x)
            values.append(model.log_prob_sum() - guide.log_prob_sum())
    assert torch.allclose(values[0], values[1], atol=1e-4)


def test_one_shared_parameter_gets_gradient_from_prior_and_guide(binary_data):
    pair = build(binary_data, learn_rate1=True)
    assert pair.model.informative_rate is pair.guide.informative_rate
    names = [n for n in pair.named_parameters() if "informative_rate" in n]
    assert names == ["model.informative_rate.logit"]  # trained once
    x = binary_data.train[:16]
    logit = pair.model.informative_rate.logit
    with pair.scope():
        guide = poutine.trace(pair.guide).get_trace(x)
        model = poutine.trace(poutine.replay(pair.model, trace=guide)).get_trace(x)
        prior_term = model.nodes["precision"]["fn"].log_prob(
            guide.nodes["precision"]["value"].detach()).sum()
        (prior_grad,) = torch.autograd.grad(prior_term, logit)
        guide_term = guide.nodes["precision"]["fn"].log_prob(
            guide.nodes["precision"]["value"].detach()).sum()
        (guide_grad,) = torch.autograd.grad(guide_term, logit)
    assert prior_grad.abs().min() > 0 and guide_grad.abs().min() > 0


def test_trains_reloads_and_reports_the_learned_variances(binary_data, tmp_path):
    pair = build(binary_data, learn_rate1=True)
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=2, batch_size=32, lr=0.05,
                      out=tmp_path / "run", quiet=True, pair=pair)
    trained = pair.model.rate1().detach()
    assert not torch.allclose(trained, torch.full((3,), 0.005))  # it moved
    loaded = ppl_vae.load_run(tmp_path / "run")
    assert torch.allclose(loaded.pair.model.rate1(), trained)
    assert loaded.pair.guide.informative_rate is loaded.pair.model.informative_rate
    report = run.pair.guide.report(binary_data.test, run.pair.model)
    a1 = run.pair.model.relaxation.concentration1
    assert torch.allclose(torch.tensor(report["informative_component_variance"]),
                          trained / (a1 - 1), rtol=1e-4)
