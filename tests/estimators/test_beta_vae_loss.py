"""β-VAE loss equals a hand computation of recon + β·KL on fixed weights."""

import pyro
import pytest
import torch
from pyro import poutine
from torch.nn.functional import softplus

import ppl_vae
from ppl_vae.estimators import make_elbo
from ppl_vae.guides.diagonal import MIN_SCALE


def seeded_loss(name, pair, x, seed, **options):
    """The estimator's loss at a seed, after its one-off plate-nesting trace."""
    elbo = make_elbo(name, **options)
    elbo(pair.model, pair.guide, x)
    pyro.set_rng_seed(seed)
    return elbo(pair.model, pair.guide, x)


def hand_terms(pair, x, seed):
    """Per-example -log p(x|z), analytic KL and MC log q - log p at the z the ELBO draws."""
    pyro.set_rng_seed(seed)
    z = poutine.trace(pair.guide).get_trace(x).nodes["z"]["value"]
    loc, raw = pair.guide.encoder(x).chunk(2, -1)
    scale = softplus(raw) + MIN_SCALE
    logits = pair.model.decoder(z)
    recon = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(1)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    return recon, kl, log_q - log_p


@pytest.mark.parametrize("beta", [1.0, 4.0, 0.25])
def test_meanfield_is_recon_plus_beta_kl_exactly(binary_data, beta):
    pair = ppl_vae.build("beta_vae", beta=beta, latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:16]
    loss = seeded_loss("meanfield", pair, x, seed=7)
    recon, kl, _ = hand_terms(pair, x, seed=7)
    assert loss.item() == pytest.approx((recon + beta * kl).mean().item(), rel=1e-5)


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_trace_is_recon_plus_beta_mc_kl_at_the_same_draw(binary_data, beta):
    pair = ppl_vae.build("beta_vae", beta=beta, latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:16]
    loss = seeded_loss("trace", pair, x, seed=3)
    recon, _, mc_kl = hand_terms(pair, x, seed=3)
    assert loss.item() == pytest.approx((recon + beta * mc_kl).mean().item(), rel=1e-5)


def test_trace_matches_recon_plus_beta_kl_in_expectation(binary_data):
    beta = 4.0
    pair = ppl_vae.build("beta_vae", beta=beta, latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:4]
    trace = make_elbo("trace", num_particles=20000)
    with torch.no_grad():
        loss = trace(pair.model, pair.guide, x).item()
        meanfield = make_elbo("meanfield", num_particles=20000)(pair.model, pair.guide, x).item()
    # Both are means of 20,000 particles per example; their difference is MC noise of the KL.
    assert loss == pytest.approx(meanfield, abs=0.05)


def test_beta_scales_only_the_kl(binary_data):
    x = binary_data.train[:16]
    losses = {}
    for beta in (1.0, 3.0):
        pair = ppl_vae.build("beta_vae", beta=beta, latent_dim=3, data=binary_data, net="mlp")
        losses[beta] = seeded_loss("meanfield", pair, x, seed=11).item()
        _, kl, _ = hand_terms(pair, x, seed=11)
    assert losses[3.0] - losses[1.0] == pytest.approx(2 * kl.mean().item(), rel=1e-4)
