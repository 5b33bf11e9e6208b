"""ρ_rms and K_active beside the decorrelation score (issue 38 §4), by known answers.

A covariance built from a chosen correlation matrix and arbitrary scales must give back
that matrix's off-diagonal RMS exactly, and the score ``1 / (ρ_rms √(K - 1))``; a guide
whose posterior means have exactly chosen sample correlations must report them through
:func:`~ppl_vae.latents.latent_statistics`.
"""

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_vae.latents import (
    aggregate_decorrelation,
    correlation_of_covariance,
    correlation_rms,
    latent_statistics,
)

PAIRS = {(0, 1): 0.1, (0, 2): 0.2, (0, 3): 0.3, (1, 2): -0.1, (1, 3): 0.05, (2, 3): 0.0}


def correlation_matrix(pairs: dict, k: int) -> torch.Tensor:
    corr = torch.eye(k, dtype=torch.float64)
    for (i, j), rho in pairs.items():
        corr[i, j] = corr[j, i] = rho
    return corr


def test_rms_and_score_of_a_constructed_covariance():
    corr = correlation_matrix(PAIRS, 4)
    scales = torch.tensor([0.5, 2.0, 3.0, 0.1], dtype=torch.float64)
    covariance = scales[:, None] * corr * scales[None, :]
    assert torch.allclose(correlation_of_covariance(covariance), corr)
    rho_rms = math.sqrt((0.01 + 0.04 + 0.09 + 0.01 + 0.0025 + 0.0) / 6)  # by hand: 0.15943
    assert correlation_rms(corr) == pytest.approx(rho_rms, rel=1e-12)
    assert correlation_rms(correlation_of_covariance(covariance)) == pytest.approx(rho_rms)
    assert aggregate_decorrelation(covariance) == pytest.approx(1 / (rho_rms * math.sqrt(3)))
    assert correlation_rms(torch.eye(1)) is None


def test_same_correlation_same_rms_whatever_the_dimension_count():
    """The issue's example: one pairwise ρ scores 4.0 over 10 dimensions and 12.1 over 2."""
    rho = 0.0825
    ten = torch.full((10, 10), rho, dtype=torch.float64).fill_diagonal_(1.0)
    two = ten[:2, :2]
    assert correlation_rms(ten) == pytest.approx(rho) and correlation_rms(two) == pytest.approx(rho)
    assert aggregate_decorrelation(ten) == pytest.approx(1 / (3 * rho))  # 4.04
    assert aggregate_decorrelation(two) == pytest.approx(1 / rho)  # 12.12


def exact_correlated_means(n: int, rho: float) -> torch.Tensor:
    """``(n, 3)`` columns with sample variance 1, corr(0, 1) = ρ exactly, column 2
    uncorrelated with both."""
    generator = torch.Generator().manual_seed(0)
    raw = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    q, _ = torch.linalg.qr(raw - raw.mean(0))  # orthonormal, centred columns
    u = q * math.sqrt(n - 1)  # sample variance 1
    return torch.stack([u[:, 0], rho * u[:, 0] + math.sqrt(1 - rho**2) * u[:, 1], u[:, 2]], 1)


def test_latent_statistics_report_rms_and_active_count_beside_the_score():
    n, rho, within = 400, 0.6, 0.25
    means = exact_correlated_means(n, rho)
    codes = torch.cat([means, torch.zeros(n, 1, dtype=torch.float64)], 1)  # 4th: collapsed

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 4), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def guide(x):  # q(z | x) = N(x, within) on the three active dims, N(0, 1) on the 4th
        scale = x.new_tensor([within, within, within, 1.0]).sqrt().expand_as(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, scale).to_event(1))

    stats = latent_statistics(model, guide, codes)
    assert stats["active_units"] == 3 and stats["decorrelation_aggregate_dims"] == 3
    # posterior means: one pair at ρ, two at 0 -> ρ_rms = √(2ρ² / 6)
    assert stats["correlation_rms_active"] == pytest.approx(rho / math.sqrt(3))
    assert stats["decorrelation_active"] == pytest.approx(1 / (rho / math.sqrt(3) * math.sqrt(2)))
    # aggregate Σ = Cov m + diag(within): the pair's correlation shrinks to ρ / (1 + within)
    aggregate_rms = rho / (1 + within) / math.sqrt(3)
    assert stats["correlation_rms_aggregate"] == pytest.approx(aggregate_rms)
    assert stats["decorrelation_aggregate"] == pytest.approx(1 / (aggregate_rms * math.sqrt(2)))
    # one draw per example, over all 4 dimensions: one pair at ρ / (1 + within) of 6 pairs,
    # up to the sampling noise of 400 draws (about 1/√400 per pair)
    sampled = rho / (1 + within) * math.sqrt(2 / 12)
    assert stats["correlation_rms_sampled"] == pytest.approx(sampled, abs=0.04)


@pytest.mark.slow  # a run report and a diagnose: about a minute on a shared core
def test_run_report_and_diagnose_show_rms_beside_each_score(trained, tmp_path):
    from ppl_vae.reporting.diagnostics import diagnose_pair
    from ppl_vae.reporting.run_report import finish_run

    run, data = trained
    finished = finish_run(run, data, iw_samples=5)
    diagnose_pair(run.model, run.guide, data, tmp_path / "diag", pair=run.pair, n_examples=5,
                  draws=20, metrics="none", quiet=True)
    for folder in (run.path, tmp_path / "diag"):
        text = (folder / "report.md").read_text()
        latents = json.loads((folder / "report.json").read_text())["latents"]
        rms = latents["correlation_rms_sampled"]
        assert rms is not None and f"(ρ_rms {rms:.3f})" in text
        score = latents["decorrelation_sampled"]
        assert score == pytest.approx(1 / (rms * math.sqrt(len(latents["activity"]) - 1)))
    assert finished["latents"]["correlation_rms_sampled"] is not None
