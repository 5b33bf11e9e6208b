"""Pareto k̂ per example on PPCA, whose posterior is known exactly.

With the exact posterior as the guide the weights are constant (k̂ = -inf by
our rule); a wider guide has bounded weights (k̂ < 0.5); a guide much
narrower than the posterior, or shifted off it, has heavy-tailed weights
(k̂ > 0.7).
"""

import arviz as az
import numpy as np
import pytest

from ppl_vae.diagnostics import collect_draws, pareto_k, summarize_k
from tests.ppca import PosteriorGuide, ppca_data

DRAWS = 1000


def _khat(inflate: float = 1.0, shift: float = 0.0, n: int = 20) -> np.ndarray:
    model, x = ppca_data(n)
    draws = collect_draws(model, PosteriorGuide(model, inflate, shift), x, DRAWS)
    assert draws.log_weight.shape == (DRAWS, n)
    return pareto_k(draws.log_weight)


def test_exact_posterior_guide_has_low_khat():
    assert (_khat() < 0.5).all()


def test_slightly_wide_guide_has_low_finite_khat():
    khat = _khat(inflate=1.5)
    assert np.isfinite(khat).all() and (khat < 0.5).all()


def test_too_narrow_guide_has_high_khat():
    khat = _khat(inflate=0.05)
    assert summarize_k(khat)["share_above_0.7"] >= 0.9
    assert np.median(khat) > 0.9


def test_shifted_guide_has_high_khat():
    assert summarize_k(_khat(shift=1.0))["share_above_0.7"] >= 0.9


def test_per_dimension_kl_is_na_for_a_full_covariance_guide():
    model, x = ppca_data(4)
    draws = collect_draws(model, PosteriorGuide(model), x, 20)
    assert draws.kl_per_dim == {"z": None}  # MultivariateNormal guide: not separable


def test_pareto_k_is_arviz_psislw_with_draws_first():
    rng = np.random.default_rng(0)
    log_w = rng.standard_t(df=2, size=(500, 4)) * np.array([0.1, 1.0, 3.0, 10.0])
    _, expected = az.psislw(log_w.T)
    assert pareto_k(log_w) == pytest.approx(np.asarray(expected))


def test_constant_weights_get_minus_infinity():
    log_w = np.full((200, 2), -3.0)
    log_w[:, 1] += np.random.default_rng(0).normal(size=200)
    khat = pareto_k(log_w)
    assert khat[0] == -np.inf and np.isfinite(khat[1])


def test_summary_names_the_worst_examples():
    summary = summarize_k(np.array([0.1, 0.9, 0.6, np.inf, -np.inf]), worst=2)
    assert summary["worst_examples"] == [3, 1]
    assert summary["share_above_0.7"] == pytest.approx(0.4)
    assert summary["share_above_0.5"] == pytest.approx(0.6)
