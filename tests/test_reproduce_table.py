"""The reproduction table's verdict rule (``benchmarks/reproduce/table.py``): known answers.

Each verdict is checked on hand-made runs whose answer follows from the rule in the
module's docstring, and the committed ``table.md`` must be exactly what the rule makes of
the committed raw JSON (a hand edit, or results added without regenerating, fails).
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "reproduce"))

import table  # noqa: E402
from table import Target, claim_verdict, movement, ngvae_factor_rows, verdict  # noqa: E402


def run(budget: str = "paper", curve: list[float] | None = None, **numbers) -> dict:
    record = {"budget": budget, **numbers}
    if curve is not None:
        record["metrics_per_epoch"] = [{"test_elbo": v} for v in curve]
    return record


def test_likelihood_target_holds_within_one_nat_and_gives_the_signed_gap_outside():
    nll = Target("NLL", "nll", 89.78, nats=True)
    assert nll.gap([90.7]) is None and nll.gap([88.9]) is None
    assert nll.gap([91.56]) == pytest.approx(1.78)
    assert nll.gap([88.5]) == pytest.approx(-1.28)


def test_spread_target_holds_inside_the_range_and_measures_from_the_nearest_end():
    mig = Target("MIG", "mig", spread=(0.05, 0.35))
    assert mig.gap([0.05]) is None and mig.gap([0.2, 0.3]) is None
    assert mig.gap([0.40]) == pytest.approx(0.05)
    assert mig.gap([0.01, 0.03]) == pytest.approx(-0.03)


def test_point_target_without_a_spread_holds_within_two_sd_of_our_runs():
    higgins = Target("BetaVAE", "beta_vae_higgins", 0.9923)
    assert higgins.gap([0.96, 0.98]) is None                    # |0.97 - 0.9923| < 2 × 0.0141
    assert higgins.gap([0.9637, 0.9763]) == pytest.approx(-0.0223)  # > 2 × 0.0089, < 3 ×
    assert higgins.gap([0.99]) == pytest.approx(-0.0023)          # one run: exact match only


def test_verdict_order_unpublished_then_reproduced_then_budget():
    nll = [Target("NLL", "nll", 89.78, nats=True)]
    curve = [-100.0, -99.0, -98.0, -97.5]
    assert verdict([run(nll=95.0)], nll, "no setting").startswith("setting unpublished: no")
    assert verdict([run("short", curve, nll=90.0)], nll).startswith(
        "reproduced (at the short budget); test ELBO +0.50 over the last 1 of 4 epochs")
    assert verdict([run(nll=90.0)], nll).startswith("reproduced;")
    assert verdict([run("short", curve, nll=95.28)], nll) == (
        "short of budget: NLL +5.5 nats; test ELBO +0.50 over the last 1 of 4 epochs")
    assert verdict([run(nll=91.56)], nll).startswith(
        "not reproduced: NLL +1.78 nats at the published budget")


def test_movement_averages_the_runs_curves_and_says_when_there_is_none():
    runs = [run(curve=[-10.0, -9.0, -8.0, -6.0, -5.0, -4.0, -3.0, -2.0]),
            run(curve=[-12.0, -11.0, -10.0, -8.0, -7.0, -6.0, -5.0, -4.0])]
    assert movement(runs) == "test ELBO +2.00 over the last 2 of 8 epochs"
    assert movement([run(nll=1.0)]) == "no per-epoch curve in the raw JSON"
    assert movement([{"accuracy_per_epoch": [0.5, 0.7]}]) == (
        "accuracy +0.20 over the last 1 of 2 epochs")


def study(config: str, model: str, counts: dict[int, list[int]]) -> list[dict]:
    return [{"config": config, "model": model, "options": {}, "factors": f, "seed": s,
             "informative": c if model == "ngvae" else None, "active_units": c + 1,
             "size": 32, "setting": {"latent_dim": 15}, "steps": 6000,
             "seconds_total": 60.0, "command": "python ngvae_factors.py",
             "metrics_per_epoch": [{"test_elbo": -50.0}, {"test_elbo": -45.0}]}
            for f, seed_counts in counts.items() for s, c in enumerate(seed_counts)]


def test_factor_claim_reproduced_refuted_or_undecided():
    assert claim_verdict(study("n", "ngvae", {2: [2, 2], 3: [3, 3], 5: [5, 5]})).startswith(
        "reproduced")
    assert claim_verdict(study("n", "ngvae", {2: [2, 2], 5: [4, 4]})) == (
        "refuted: with 5 varying factors the mean count is 4.0")
    assert claim_verdict(study("n", "ngvae", {2: [3, 3], 5: [5, 5]})).startswith("refuted")
    assert claim_verdict(study("n", "ngvae", {2: [2, 3], 5: [5, 5]})).startswith("undecided")


def test_factor_rows_count_ngvae_by_its_own_count_and_baselines_by_active_units():
    rows = ngvae_factor_rows(study("ngvae_normal", "ngvae", {2: [2, 2], 5: [5, 5]})
                             + study("vae", "beta_vae", {2: [4, 4], 5: [4, 4]}))
    ngvae, vae = (r for r in rows if "ngvae_normal" in r), (r for r in rows if "| vae" in r)
    ngvae, vae = next(ngvae), next(vae)
    assert "2 → 2.0 ± 0.0 (n = 2), 5 → 5.0 ± 0.0 (n = 2)" in ngvae
    assert "reproduced at factors [2, 5]" in ngvae
    assert "2 → 5.0 ± 0.0 (n = 2)" in vae and "| comparison; test ELBO +5.00" in vae


@pytest.mark.parametrize("k", [2, 4, 10])
def test_rho_rms_from_a_score_is_the_correlation_matrixs_own(k):
    """A random correlation matrix over K dimensions: its decorrelation score and K give back
    its off-diagonal RMS correlation."""
    import torch

    from ppl_vae.latents import _decorrelation_score, correlation_rms

    draws = torch.randn(500, k, generator=torch.Generator().manual_seed(k)) @ torch.randn(
        k, k, generator=torch.Generator().manual_seed(k + 1))
    corr = torch.corrcoef(draws.T)
    run = {"decorrelation": _decorrelation_score(corr), "decorrelation_dims": k}
    assert table.rho_rms(run) == pytest.approx(correlation_rms(corr), rel=1e-5)


def test_committed_table_is_what_the_rule_makes_of_the_committed_results(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert table.render() == table.TABLE.read_text(), (
        "table.md is stale or edited by hand: run python benchmarks/reproduce/table.py")
    pythae = [line for line in table.render().splitlines()
              if line.startswith("| pythae") and "(paper)" in line]
    assert len(pythae) == 1 and "not reproduced: NLL +1.78 nats" in pythae[0]
