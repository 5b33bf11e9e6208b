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


def _constant_guide_pair(fn_of_x):
    """A pair whose guide draws ``z`` from ``fn_of_x(x)`` (a batch of distributions)."""
    import pyro
    import pyro.distributions as dist

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 3), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", fn_of_x(x))

    return model, guide


def test_aggregate_keeps_a_structured_guides_within_example_covariance():
    """A chain guide, the same for every x: the aggregate is that Σ, correlation and all."""
    from ppl_vae.distributions import ChainPrecisionNormal
    from ppl_vae.latents import latent_statistics, within_covariance_and_draws
    from ppl_vae.pair import Pair

    diag, offdiag = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64), torch.tensor(
        [1.5, 0.0], dtype=torch.float64)

    def chain(x):
        n = x.shape[0]
        return ChainPrecisionNormal(x.new_zeros(n, 3).double(), diag.expand(n, 3),
                                    offdiag.expand(n, 2))

    model, guide = _constant_guide_pair(chain)
    x = torch.zeros(50, 1, dtype=torch.float64)
    sigma = torch.linalg.inv(torch.diag(diag) + torch.diag(offdiag, -1))
    sigma = sigma.T @ sigma
    within, draws = within_covariance_and_draws(Pair(model, guide), x)
    assert torch.allclose(within, sigma) and draws.shape == (50, 3)
    means = torch.zeros(50, 3, dtype=torch.float64)
    aggregate = aggregate_covariance(means, within=within)
    rho = sigma[0, 1] / (sigma[0, 0] * sigma[1, 1]).sqrt()
    assert abs(rho) > 0.8  # the within-example correlation the old diagonal form dropped
    expected = math.sqrt(3) / (math.sqrt(2) * abs(float(rho)))
    assert aggregate_decorrelation(aggregate) == pytest.approx(expected)
    assert aggregate_decorrelation(aggregate_covariance(means, torch.diag(sigma).expand(
        50, 3))) == math.inf  # what diag E_x v(x) alone would have read
    stats = latent_statistics(model, guide, x)
    assert stats["decorrelation_aggregate_dims"] == 0  # no dimension moves with x
    assert stats["decorrelation_aggregate_all_dims"] == pytest.approx(expected)


def test_decorrelation_over_active_dimensions_does_not_reward_collapse():
    generator = torch.Generator().manual_seed(0)
    shared = torch.randn(400, 1, generator=generator, dtype=torch.float64)
    means = torch.cat([shared, shared + 0.5 * torch.randn(400, 1, generator=generator,
                                                          dtype=torch.float64)], 1)
    variances = torch.full((400, 2), 0.01, dtype=torch.float64)
    two = aggregate_decorrelation(aggregate_covariance(means, variances))
    collapsed = torch.cat([means, torch.zeros(400, 8, dtype=torch.float64)], 1)
    with_noise = torch.cat([variances, torch.ones(400, 8, dtype=torch.float64)], 1)
    everything = aggregate_covariance(collapsed, with_noise)
    assert aggregate_decorrelation(everything) > 2 * two  # all dims: collapse "helps"
    assert aggregate_decorrelation(everything[:2, :2]) == pytest.approx(two)


def test_sampled_decorrelation_sits_at_its_noise_ceiling_for_independent_draws():
    from ppl_vae.latents import sampled_decorrelation

    draws = torch.randn(4000, 6, generator=torch.Generator().manual_seed(1))
    score, ceiling = sampled_decorrelation(draws)
    assert ceiling == pytest.approx(math.sqrt(4000 / 5))
    assert 0.7 * ceiling < score < 1.4 * ceiling
