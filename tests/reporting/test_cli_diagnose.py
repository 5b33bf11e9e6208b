"""``ppl-vae diagnose RUN`` from the command line."""

import json

import pytest

from ppl_vae.cli import main
from tests.test_cli import TINY


def test_diagnose_command_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(out), "--n-examples", "8", "--draws", "20",
                 "--metrics", "none", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "psis" in printed
    for name in ("posterior.nc", "report.json", "report.md"):
        assert (out / "diagnostics" / name).exists(), name


def test_diagnose_bad_draws_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(out), "--draws", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl-vae: error:") and err.count("\n") == 1


@pytest.mark.slow  # ~1 min on a shared CPU: training, the stock figures, SBC and NUTS
def test_diagnose_runs_every_bayesian_check_from_the_command_line(tmp_path, capsys):
    import arviz as az
    import torch

    import ppl_vae

    out = tmp_path / "run"
    assert main(["train", *TINY, "--net", "mlp", "--out", str(out)]) == 0
    before = {k: v.clone() for k, v in ppl_vae.load_run(out).params().items()}
    capsys.readouterr()
    assert main(["diagnose", str(out), "--n-examples", "4", "--draws", "20", "--metrics", "none",
                 "--quiet", "--ppc-draws", "10", "--sbc", "30", "--sbc-draws", "9",
                 "--sbc-levels", "0.5,0.8", "--mcmc-examples", "1", "--mcmc-draws", "10",
                 "--mcmc-warmup", "10", "--mcmc-chains", "2", "--mcmc-jit"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sbc"]["verdict"].split(":")[0] in ("calibrated", "miscalibrated")
    assert set(printed["sbc"]["coverage_median"]) == {"0.5", "0.8"}
    assert "z" in printed["nuts"] and "share_extreme_log_lik" in printed["posterior_predictive"]
    folder = out / "diagnostics"
    for name in ("nuts.nc", "sbc_ranks.npy", "sbc.png", "ppc.png", "nuts_vs_guide.png"):
        assert (folder / name).exists(), name
    guide = az.from_netcdf(str(folder / "posterior.nc"))
    nuts = az.from_netcdf(str(folder / "nuts.nc"))
    assert nuts.posterior["z"].dims == guide.posterior["z"].dims
    assert nuts.posterior["z"].shape[:3] == (2, 10, 1)
    after = ppl_vae.load_run(out).params()
    assert all(torch.equal(before[k], after[k]) for k in before)
    text = (folder / "report.md").read_text()
    assert "Simulation-based calibration" in text and "NUTS reference" in text


def test_diagnose_bad_check_sizes_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    for flags in (["--mcmc-examples", "1", "--mcmc-chains", "1"], ["--sbc", "1"],
                  ["--sbc", "5", "--sbc-levels", "0.5,1.5"], ["--site", "nothing"]):
        assert main(["diagnose", str(out), "--metrics", "none", *flags]) == 2, flags
        err = capsys.readouterr().err
        assert err.startswith("ppl-vae: error:") and err.count("\n") == 1, err
