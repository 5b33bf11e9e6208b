"""The benchmarks' hand-written baselines compute exactly what the engine computes.

A speed ratio means something only if both sides do the same work: with the
same seed, each hand-written objective draws the same ``z`` and returns the
engine's value.
"""

import sys
from pathlib import Path

import pytest
import torch

import ppl_vae
from ppl_vae.estimators import make_elbo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_evaluate import hand_log_likelihood  # noqa: E402
from bench_floor import floor_loss  # noqa: E402
from bench_step import hand_loss  # noqa: E402


@pytest.fixture
def pair_and_x():
    x = (torch.rand(12, 1, 28, 28) < 0.3).float()
    return ppl_vae.build("vae", latent_dim=4, event_shape=(1, 28, 28), net="mlp"), x


@pytest.mark.parametrize("estimator,particles",
                         [("trace", 1), ("meanfield", 1), ("iwae", 5), ("trace", 3)])
def test_hand_step_objective_equals_the_engine(pair_and_x, estimator, particles):
    pair, x = pair_and_x
    elbo = make_elbo(estimator, particles)
    elbo(pair.model, pair.guide, x)  # the first call checks the pair and forks the RNG
    torch.manual_seed(3)
    ours = elbo(pair.model, pair.guide, x)
    torch.manual_seed(3)
    hand = hand_loss(pair, x, estimator, particles)
    assert torch.allclose(ours, hand, rtol=1e-6)


def test_floor_loss_equals_the_engine(pair_and_x):
    pair, x = pair_and_x
    elbo = make_elbo("trace", 1)
    elbo(pair.model, pair.guide, x)
    torch.manual_seed(3)
    ours = elbo(pair.model, pair.guide, x)
    torch.manual_seed(3)
    assert torch.allclose(ours, floor_loss(pair, x), rtol=1e-6)


def test_hand_log_likelihood_equals_evaluate(pair_and_x):
    pair, x = pair_and_x
    torch.manual_seed(3)
    ours = ppl_vae.evaluate(pair.model, pair.guide, x, iw_samples=50, budget=200)
    torch.manual_seed(3)
    hand = hand_log_likelihood(pair, x, 50, 200)
    assert ours["log_likelihood"] == pytest.approx(hand, rel=1e-5)
