"""Disentanglement metrics against known answers (disentanglement_lib's kind of test).

The representation sees the factors themselves: ``FactorsAsImages`` draws
factors with the real ``shapes`` sampler and hands them on as the "images",
so an identity representation returns the exact ground truth.
"""

import numpy as np
import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.metrics import (
    compute_beta_vae,
    compute_dci,
    compute_factor_vae,
    compute_mig,
    dci_from_codes,
    mig_from_codes,
)

SHAPES = ppl_vae.data.load("shapes", size=32, n=20)


class FactorsAsImages:
    """The shapes factor sampler, whose "images" are the factor codes as floats."""

    factor_sizes = tuple(SHAPES.factor_sizes)
    name = "factors"

    def sample_factors(self, m, generator, fixed=None):
        return SHAPES.sample_factors(m, generator, fixed)

    def images_for_factors(self, factors):
        return torch.as_tensor(np.asarray(factors)).float()


DATA = FactorsAsImages()


def identity(images):
    return images.numpy()


def constant(images):
    return np.zeros((images.shape[0], 5))


def noise(images):
    """Codes independent of the input (a fresh draw every call)."""
    return np.random.default_rng(images.numel() + int(images.sum())).normal(
        size=(images.shape[0], 5))


def duplicated(images):
    """Factor 0 copied into two codes."""
    return np.concatenate([images[:, :1].numpy(), images.numpy()], axis=1)


BETA = {"num_train": 400, "num_eval": 200, "batch_size": 16}
FACTOR = {"num_train": 300, "num_eval": 200, "num_variance_estimate": 1000, "batch_size": 32}


def test_mig_ground_truth_scores_high():
    scores = compute_mig(identity, DATA, num_train=5000)
    # 20 bins for 32-40 classes cap a perfect code near 0.9 (MATH-NOTES C.2)
    assert 0.85 <= scores["discrete_mig"] <= 0.95
    assert min(scores["gap_per_factor"][:2]) > 0.98  # shape, scale: fewer classes than bins


def test_mig_constant_and_noise_score_low():
    assert compute_mig(constant, DATA, num_train=2000)["discrete_mig"] == 0.0
    assert compute_mig(noise, DATA, num_train=5000)["discrete_mig"] < 0.05


def test_mig_duplicated_latent_lowers_the_score():
    full = compute_mig(identity, DATA, num_train=5000)
    dup = compute_mig(duplicated, DATA, num_train=5000)
    assert dup["gap_per_factor"][0] < 0.01  # two codes share factor 0: no gap
    assert dup["discrete_mig"] < full["discrete_mig"] - 0.15
    assert dup["gap_per_factor"][1:] == pytest.approx(full["gap_per_factor"][1:])


def test_mig_from_codes_by_hand():
    # one binary factor, code 0 copies it, code 1 is half informative
    factor = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    codes = np.stack([factor, [0, 0, 0, 1, 1, 1, 1, 1]], 1).astype(float)
    mi_second = (3 / 8 * np.log(3 / 8 / (3 / 8 * 1 / 2)) + 1 / 8 * np.log(1 / 8 / (5 / 8 * 1 / 2))
                 + 4 / 8 * np.log(4 / 8 / (5 / 8 * 1 / 2)))
    expected = (np.log(2) - mi_second) / np.log(2)
    assert mig_from_codes(codes, factor[:, None], num_bins=2)["discrete_mig"] == \
        pytest.approx(expected)


def test_beta_vae_score_known_answers():
    assert compute_beta_vae(identity, DATA, **BETA)["eval_accuracy"] >= 0.95
    assert compute_beta_vae(noise, DATA, **BETA)["eval_accuracy"] < 0.4   # chance 1/5
    assert compute_beta_vae(constant, DATA, **BETA)["eval_accuracy"] < 0.4


def test_factor_vae_score_known_answers():
    scores = compute_factor_vae(identity, DATA, **FACTOR)
    assert scores["eval_accuracy"] >= 0.99 and scores["num_active_dims"] == 5
    assert compute_factor_vae(noise, DATA, **FACTOR)["eval_accuracy"] < 0.4
    assert compute_factor_vae(constant, DATA, **FACTOR) == \
        {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def _small_factors(n, rng):
    return rng.integers(0, 3, size=(n, 3))


def test_dci_known_answers_on_small_factors():
    rng = np.random.default_rng(0)
    train, test = _small_factors(200, rng), _small_factors(100, rng)
    exact = dci_from_codes(train.astype(float), train, test.astype(float), test)
    assert exact["disentanglement"] > 0.95 and exact["completeness"] > 0.95
    assert exact["informativeness_test"] == 1.0

    def mixed(f):  # sum and difference: both codes are needed for factors 0 and 1
        return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], 1).astype(float)

    rotated = dci_from_codes(mixed(train), train, mixed(test), test)
    assert rotated["disentanglement"] < exact["disentanglement"] - 0.2
    random = dci_from_codes(rng.normal(size=(200, 3)), train, rng.normal(size=(100, 3)), test)
    assert random["disentanglement"] < 0.3 and random["informativeness_test"] < 0.45


def test_dci_on_a_ground_truth_dataset():
    class TwoFactors(FactorsAsImages):
        factor_sizes = (3, 4)

        def sample_factors(self, m, generator, fixed=None):
            return torch.as_tensor(generator.integers(0, [3, 4], size=(m, 2)))

    scores = compute_dci(identity, TwoFactors(), num_train=200, num_test=100)
    assert scores["disentanglement"] > 0.95 and scores["completeness"] > 0.95
    assert np.asarray(scores["importance_matrix"]).shape == (2, 2)


def test_metrics_refuse_bad_inputs():
    digits = ppl_vae.data.load("digits")
    with pytest.raises(PplVaeError, match="factor"):
        compute_mig(identity, digits, num_train=10)
    with pytest.raises(PplVaeError, match=r"\(n, D\)"):
        compute_mig(lambda x: np.zeros(3), DATA, num_train=10)
    with pytest.raises(PplVaeError, match="NaN"):
        compute_mig(lambda x: np.full((len(x), 2), np.nan), DATA, num_train=10)
    with pytest.raises(PplVaeError, match="num_train"):
        compute_beta_vae(identity, DATA, num_train=0)
