"""The command line: a small end-to-end run, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ppl_vae.cli import main

TRAIN = ["--epochs", "1", "--latent-dim", "2", "--batch-size", "20", "--iw-samples", "5",
         "--quiet", "--device", "cpu"]
TINY = ["--data", "shapes", "--size", "32", "--n", "120", *TRAIN]


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_evaluate_sample_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["train", "--model", "beta_vae", "--beta", "2", *TINY,
                               "--out", str(out)], capsys)
    assert code == 0
    assert json.loads(stdout)["n_examples"] == 12
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "report.json", "report.md"):
        assert (out / name).exists(), name
    for name in ("reconstructions", "prior_samples", "traversals", "loss_curve"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name
    code, stdout, _ = run_cli(["evaluate", str(out), "--iw-samples", "10", "--quiet",
                               "--elbo", "trace"], capsys)
    result = json.loads(stdout)
    assert code == 0 and result["iw_samples"] == 10 and "training_objective" in result
    assert json.loads((out / "evaluation.json").read_text())["log_likelihood"] is not None
    code, _, _ = run_cli(["sample", str(out), "-n", "9", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0 and (tmp_path / "s.png").exists()
    code, _, _ = run_cli(["train", *TINY, "--out", str(out), "--resume", "--epochs", "2"], capsys)
    assert code == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def _bernoulli_out_of_range(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.full((40, 1, 8, 8), 2.0, dtype=np.float32))
    return ["--data", "array", "--data-path", str(path)]


BAD = {
    "unknown model": (["--model", "nope"], "unknown model 'nope'"),
    "unknown guide": (["--guide", "nope"], "unknown guide 'nope'"),
    "unknown ELBO": (["--elbo", "nope"], "unknown estimator 'nope'"),
    "unknown dataset": (["--data", "nope"], "nope"),
    "beta zero": (["--model", "beta_vae", "--beta", "0"], "--beta must be positive"),
    "beta negative": (["--model", "beta_vae", "--beta", "-1"], "--beta must be positive"),
    "latent dim zero": (["--latent-dim", "0"], "--latent-dim must be at least 1"),
    "particles zero": (["--particles", "0"], "--particles must be at least 1"),
    "renyi alpha one": (["--model", "vae", "--elbo", "renyi", "--alpha", "1"], "--alpha 1"),
    "iwae with beta": (["--model", "beta_vae", "--beta", "4", "--elbo", "iwae"],
                       "unscaled sites"),
    "option for another model": (["--model", "vae", "--beta", "4"], "unknown option"),
    "epochs zero": (["--epochs", "0"], "--epochs must be at least 1"),
    "lr zero": (["--lr", "0"], "--lr must be positive"),
    "cuda without gpu": (["--device", "cuda"], "no CUDA GPU"),
    "alpha for trace": (["--alpha", "0.5"], "the estimator 'trace' takes no --alpha; its options: --particles"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_train_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    args, message = BAD[case]
    if case == "cuda without gpu" and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run_cli(["train", *TINY, *args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ppl-vae: error:") and message in err, err


def test_data_outside_unit_interval_for_bernoulli(tmp_path, capsys):
    code, _, err = run_cli(["train", *TRAIN, *_bernoulli_out_of_range(tmp_path), "--out",
                            str(tmp_path / "r")], capsys)
    assert code == 2 and "needs values in [0, 1]" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["evaluate"], ["sample", "--out", "x.png"]])
def test_missing_run_folder(command, tmp_path, capsys):
    code, _, err = run_cli([command[0], str(tmp_path / "missing"), *command[1:]], capsys)
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_existing_run_folder_needs_resume_or_overwrite(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert run_cli(["train", *TINY, "--out", out], capsys)[0] == 0
    code, _, err = run_cli(["train", *TINY, "--out", out], capsys)
    assert code == 2 and "--overwrite" in err


def test_real_process_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ppl_vae", "train", "--model", "nope",
                             "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_list_shows_every_family(capsys):
    code, out, _ = run_cli(["list"], capsys)
    for name in ("beta_vae", "diagonal", "iwae", "meanfield", "shapes"):
        assert name in out
    assert code == 0


@pytest.mark.parametrize("elbo", ["trace", "meanfield", "iwae", "renyi"])
def test_ngvae_trains_from_the_cli_with_every_elbo(elbo, tmp_path, capsys):
    code, stdout, err = run_cli(["train", "--model", "ngvae", "--elbo", elbo, *TINY,
                                 "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "informative_components" in json.dumps(report["guide_report"])
