"""The seed table's Entropy and Decorrelation (aggregate posterior) and the BetaVAE factor choice.

Entropy and decorrelation are checked by hand and against the empirical covariance of
sampled latents; the BetaVAE ``factors`` option against a code that cannot tell two
factors apart (it sees neither), which only the restricted score forgives.
"""

import math

import numpy as np
import pytest
import torch

from ppl_vae.diagnostics.disentanglement import check_preset, with_beta_vae_factors
from ppl_vae.errors import PplVaeError
from ppl_vae.latents import aggregate_covariance, aggregate_decorrelation, variance_entropy
from ppl_vae.metrics import compute_beta_vae
from tests.test_metrics_known_answers import FactorsAsImages


def test_variance_entropy_by_hand():
    assert variance_entropy(torch.eye(4)) == pytest.approx(math.log(4))
    shares = np.array([1, 1, 2]) / 4
    expected = -(shares * np.log(shares)).sum()
    assert variance_entropy(torch.diag(torch.tensor([1.0, 1.0, 2.0]))) == pytest.approx(expected)
    # off-diagonal covariance does not enter; only the spread over dimensions does
    full = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 2.0]])
    assert variance_entropy(full) == pytest.approx(expected)


def test_aggregate_decorrelation_by_hand():
    # R offdiagonal 0.1 in K = 2: sqrt(2) / (sqrt(2) * 0.1) = 10, whatever the scales
    covariance = torch.tensor([[4.0, 0.1 * 2 * 3], [0.1 * 2 * 3, 9.0]], dtype=torch.float64)
    assert aggregate_decorrelation(covariance) == pytest.approx(10.0)
    assert aggregate_decorrelation(torch.eye(3)) == math.inf


def test_aggregate_covariance_is_the_covariance_of_sampled_latents():
    generator = torch.Generator().manual_seed(0)
    n, draws = 200, 2000
    means = torch.randn(n, 3, generator=generator, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.6, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.1]], dtype=torch.float64)
    variances = torch.rand(n, 3, generator=generator, dtype=torch.float64) * torch.tensor(
        [0.1, 0.2, 1.0], dtype=torch.float64)
    z = means + variances.sqrt() * torch.randn(draws, n, 3, generator=generator,
                                               dtype=torch.float64)
    empirical = torch.cov(z.reshape(-1, 3).T)
    analytic = aggregate_covariance(means, variances)
    assert torch.allclose(analytic, empirical, atol=0.01)
    # the means alone miss the third dimension's posterior variance
    assert analytic[2, 2] > 5 * torch.cov(means.T)[2, 2]


def blind_to_shape_and_scale(images):
    """Codes of orientation, x and y only: labels 'shape' and 'scale' look alike."""
    return images[:, 2:].numpy()


class NamedFactors(FactorsAsImages):
    factor_names = ["shape", "scale", "orientation", "pos_x", "pos_y"]


DATA = NamedFactors()
BETA = {"num_train": 600, "num_eval": 300, "batch_size": 16}


def test_beta_vae_score_scores_only_the_chosen_factors():
    everything = compute_beta_vae(blind_to_shape_and_scale, DATA, **BETA)
    chosen = compute_beta_vae(blind_to_shape_and_scale, DATA, **BETA,
                              factors=["orientation", "pos_x", "pos_y"])
    by_index = compute_beta_vae(blind_to_shape_and_scale, DATA, **BETA, factors=[4, 2, 3])
    assert everything["factors"] == [0, 1, 2, 3, 4] and chosen["factors"] == [2, 3, 4]
    assert chosen["eval_accuracy"] >= 0.98 and by_index["eval_accuracy"] >= 0.98
    assert everything["eval_accuracy"] < 0.9  # shape and scale confused: about 4/5


def test_beta_vae_factors_refused_in_one_line():
    with pytest.raises(PplVaeError, match="unknown factor 'colour'.*shape, scale"):
        compute_beta_vae(blind_to_shape_and_scale, DATA, **BETA, factors=["colour"])
    with pytest.raises(PplVaeError, match="at least two factors"):
        compute_beta_vae(blind_to_shape_and_scale, DATA, **BETA, factors=["shape"])
    settings = with_beta_vae_factors("fast", ["colour"])
    with pytest.raises(PplVaeError, match="unknown factor 'colour'"):
        check_preset(settings, DATA)  # before any work, as diagnose checks it
    assert with_beta_vae_factors("fast", None) == "fast"
