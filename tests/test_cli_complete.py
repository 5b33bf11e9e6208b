"""CLI completeness (issue 14): help and defaults, --debug anywhere, sample --out, --data
array flags and channel-last images, honest --resume, what evaluate calls its numbers."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pyro
import pytest

from ppl_vae import load_run
from ppl_vae.cli import HelpFormatter, build_parser, main
from ppl_vae.data import load
from ppl_vae.errors import PplVaeError, PplVaeWarning

TRAIN = ["--latent-dim", "2", "--epochs", "1", "--iw-samples", "5", "--device", "cpu", "--quiet"]
TINY = ["--data", "digits", "--n", "200", "--binarize", "static", *TRAIN]


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code, err, message):
    """Exit 2 and exactly one line on stderr, the project's error containing ``message``."""
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ppl-vae: error:"), err
    assert message in err, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch vae on 200 digits; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "--model", "vae", *TINY, "--out", str(out)]) == 0
    return out


def copy_of(run, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# --- help -------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "diagnose", "list"])
def test_every_option_has_help_and_a_default(command):
    parser = _subparsers()[command]
    formatter = HelpFormatter(prog="ppl-vae")
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        text = formatter._get_help_string(action)
        assert action.help, action.option_strings
        assert "default" in text or action.required and "required" in text, \
            (action.option_strings, text)


def test_train_help_states_the_default_run(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--model beta_vae", "diagonal", "--data shapes", "--elbo trace",
                   "--lr 0.001", "(default: beta_vae)", "(default: shapes)",
                   "--lr-schedule {constant,cosine,step,multistep}", "--warmup-steps", "--clip-norm",
                   "--patience", "--log-every", "--divergence-factor", "--key", "--labels",
                   "--factors", "--channels-last", "--test-fraction TEST_FRACTION share of "
                   "examples held out for test (default: 0.1)",
                   "--binarize {none,static,sampled,dynamic}", "--storage STORAGE auto"):
        assert phrase in text, phrase


def test_a_new_dataset_source_and_its_options_reach_the_cli_by_themselves(capsys):
    """Registering a source is the whole change: its options become flags (those registered
    without help stay Python-only), load() finds it, and it takes the shared options."""
    from ppl_vae.cli.parser import data_flags
    from ppl_vae.data import load
    from ppl_vae.registry import DATA_SOURCES

    @DATA_SOURCES.register("toy", "eight-pixel toys", width="image width in pixels")
    def load_toy(*, width: int = 5, token: str | None = None, **shared):
        return load("digits", n=40 + width, **shared)

    try:
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--width WIDTH toy: image width in pixels (default: 5)" in text
        assert "the dataset: array, digits, dsprites, mnist, mnist5k, shapes, toy" in text
        assert "--token" not in text and "token" not in data_flags()
        args = build_parser().parse_args(["train", "--out", "r", "--data", "toy", "--width",
                                          "10", "--test-fraction", "0.5"])
        assert (args.width, args.test_fraction) == (10, 0.5) and "width" in data_flags()
        ds = load("toy", width=10, test_fraction=0.5)
        assert (len(ds.train), len(ds.test)) == (25, 25)
    finally:
        DATA_SOURCES._entries.pop("toy")


# --- --debug ----------------------------------------------------------------------------

def test_debug_is_accepted_after_the_subcommand(tiny_run, tmp_path, capsys):
    code, _, err = run_cli(["sample", tiny_run, "--out", tmp_path / "s.xyz"], capsys)
    one_line_error(code, err, ".xyz is not an image format")
    with pytest.raises(PplVaeError, match="xyz"):
        main(["sample", str(tiny_run), "--out", str(tmp_path / "s.xyz"), "--debug"])
    with pytest.raises(PplVaeError, match="xyz"):
        main(["--debug", "sample", str(tiny_run), "--out", str(tmp_path / "s.xyz")])
    assert main(["list", "--debug"]) == 0


# --- sample --out -----------------------------------------------------------------------

SAMPLE_OUT = {
    "missing folder": ("nowhere/s.png", "folder {tmp}/nowhere does not exist"),
    "unknown suffix": ("s.xyz", ".xyz is not an image format matplotlib writes"),
    "no suffix": ("s", "has no suffix to choose the image format; use e.g. {tmp}/s.png"),
    "a folder": (".", "is a folder; name an image file in it"),
}


@pytest.mark.parametrize("case", sorted(SAMPLE_OUT))
def test_sample_out_is_checked_before_any_work(case, tiny_run, tmp_path, capsys):
    name, message = SAMPLE_OUT[case]
    before = set(tmp_path.rglob("*"))
    code, out, err = run_cli(["sample", tiny_run, "-n", "4", "--out", tmp_path / name], capsys)
    one_line_error(code, err, message.format(tmp=tmp_path))
    assert out == "" and set(tmp_path.rglob("*")) == before


def test_sample_prints_the_file_it_wrote(tiny_run, tmp_path, capsys):
    for name in ("s.svg", "s.PDF"):
        code, out, _ = run_cli(["sample", tiny_run, "-n", "4", "--out", tmp_path / name],
                               capsys)
        assert code == 0 and out.strip() == str(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.PDF", "s.svg"]


# --- --data array -----------------------------------------------------------------------

def _channel_last_npz(path, n=60):
    rng = np.random.default_rng(0)
    x = (rng.random((n, 8, 8, 3)) > 0.5).astype(np.float32)
    np.savez(path, images=x, y=rng.integers(0, 3, n))
    return x


def test_channel_last_npz_is_transposed_and_said_once(tmp_path, capsys):
    _channel_last_npz(tmp_path / "d.npz")
    code, _, err = run_cli(["train", "--model", "vae", *TRAIN, "--data", "array",
                            "--data-path", tmp_path / "d.npz", "--labels", "y",
                            "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith("ppl-vae: note:"), err
    assert "(60, 8, 8, 3) is read as channel-last images and transposed to (60, 3, 8, 8)" in err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["event_shape"] == [3, 8, 8] and config["data"]["channels_last"] is True
    assert config["data"]["labels"] == "y"
    # the run reloads silently: the spec records the choice
    code, _, err = run_cli(["evaluate", tmp_path / "r", "--iw-samples", "2", "--quiet"], capsys)
    assert code == 0 and err == ""


def test_channel_last_in_python_forced_off_and_on(tmp_path):
    x = _channel_last_npz(tmp_path / "d.npz")
    with pytest.warns(PplVaeWarning, match="channel-last"):
        ds = load("array", path=str(tmp_path / "d.npz"), key="images", test_fraction=0.5)
    assert ds.event_shape == (3, 8, 8)
    rows = {r.tobytes() for r in x.transpose(0, 3, 1, 2)}
    assert all(r.numpy().tobytes() in rows for r in ds.train)  # a transpose, not a reshape
    kept = load("array", path=str(tmp_path / "d.npz"), key="images", channels_last=False)
    assert kept.event_shape == (8, 8, 3)
    np.save(tmp_path / "c.npy", np.zeros((10, 2, 2, 5), np.float32))  # not detected: W = 2
    assert load("array", path=str(tmp_path / "c.npy")).event_shape == (2, 2, 5)
    assert load("array", path=str(tmp_path / "c.npy"),
                channels_last=True).event_shape == (5, 2, 2)
    np.save(tmp_path / "g.npy", np.zeros((10, 6, 6), np.float32))
    with pytest.raises(PplVaeError, match="channels_last=True needs"):
        load("array", path=str(tmp_path / "g.npy"), channels_last=True)


ARRAY_FILES = {
    "text named .npy": (lambda p: p.write_text("1,2,3\n4,5,6\n"),
                        "it is not a NumPy file (it holds text"),
    "empty .npy": (lambda p: p.write_bytes(b""), "it is not a NumPy file (it is empty)"),
    "object array": (lambda p: np.save(p, np.array([{"a": 1}] * 3, dtype=object)),
                     "holds Python objects (dtype object)"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_FILES))
def test_array_files_that_are_not_numbers(case, tmp_path, capsys):
    write, message = ARRAY_FILES[case]
    write(tmp_path / "x.npy")
    code, _, err = run_cli(["train", *TRAIN, "--data", "array", "--data-path",
                            tmp_path / "x.npy", "--out", tmp_path / "r"], capsys)
    one_line_error(code, err, message)
    assert "allow_pickle" not in err


def test_npz_with_labels_needs_key_or_labels(tmp_path, capsys):
    _channel_last_npz(tmp_path / "d.npz")
    args = ["train", *TRAIN, "--data", "array", "--data-path", tmp_path / "d.npz",
            "--out", tmp_path / "r"]
    code, _, err = run_cli(args, capsys)
    one_line_error(code, err, "holds arrays images, y; pass key= (--key)")
    code, _, err = run_cli([*args, "--key", "images", "--model", "vae"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", *TINY, "--key", "x", "--out", tmp_path / "s"], capsys)
    one_line_error(code, err, "dataset 'digits' has no option key")


# --- new training flags -----------------------------------------------------------------

def test_training_controls_reach_fit_and_the_config(tmp_path, capsys):
    code, _, err = run_cli(["train", "--model", "vae", *TINY, "--epochs", "2",
                            "--lr-schedule", "step", "--lr-step-epochs", "1", "--lr-gamma",
                            "0.5", "--warmup-steps", "4", "--warmup-start", "0.1",
                            "--clip-norm", "5", "--patience", "3", "--log-every", "2",
                            "--divergence-factor", "20", "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["schedule"] == {"lr_schedule": "step", "lr_step_epochs": 1, "lr_gamma": 0.5,
                                  "lr_milestones": None, "warmup_steps": 4, "warmup_start": 0.1}
    assert config["optimizer"]["clip_norm"] == 5.0
    assert {k: config["training"][k] for k in ("patience", "log_every", "divergence_factor")} \
        == {"patience": 3, "log_every": 2, "divergence_factor": 20.0}


# --- resume -----------------------------------------------------------------------------

RESUME = ["train", "--resume", "--quiet", "--iw-samples", "5"]


def test_resume_extends_the_epochs_with_the_stored_settings(tiny_run, tmp_path, capsys):
    run = copy_of(tiny_run, tmp_path)
    code, _, err = run_cli([*RESUME, "--out", run, "--epochs", "2"], capsys)
    assert code == 0, err
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    config = json.loads((run / "config.json").read_text())
    stored = json.loads((tiny_run / "config.json").read_text())
    assert config["training"]["epochs"] == 2
    assert {k: v for k, v in config.items() if k not in ("training", "environment")} == \
        {k: v for k, v in stored.items() if k not in ("training", "environment")}
    # giving the stored values again is no change
    code, _, err = run_cli([*RESUME, "--out", run, "--epochs", "3", "--model", "vae",
                            "--data", "digits", "--n", "200", "--latent-dim", "2", "--lr",
                            "0.001", "--elbo", "trace", "--particles", "1"], capsys)
    assert code == 0, err


def test_resume_with_another_lr_is_refused(tiny_run, tmp_path, capsys):
    run = copy_of(tiny_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = run_cli([*RESUME, "--out", run, "--lr", "0.1", "--epochs", "2"], capsys)
    one_line_error(code, err, "optimizer.lr: 0.001 → 0.1")
    assert "only --epochs may change" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_resume_refusal_lists_every_changed_key_in_one_line(tiny_run, tmp_path, capsys):
    code, _, err = run_cli([*RESUME, "--out", tiny_run, "--model", "ngvae", "--latent-dim",
                            "3", "--elbo", "iwae", "--lr", "0.1", "--data", "mnist5k",
                            "--batch-size", "7", "--epochs", "2", "--warmup-steps", "10"],
                           capsys)
    for key in ("pair.model: 'vae' → 'ngvae'", "pair.options.latent_dim: 2 → 3",
                "estimator.elbo: 'trace' → 'iwae'", "optimizer.lr: 0.001 → 0.1",
                "data.name: 'digits' → 'mnist5k'", "training.batch_size: 64 → 7",
                "schedule.warmup_steps: 0 → 10"):
        assert key in err, key
    one_line_error(code, err, "cannot resume")


def test_fit_itself_refuses_a_changed_setting(tiny_run, tmp_path):
    """The CLI's check is a convenience: ``fit(resume=True)`` refuses on its own."""
    from ppl_vae.pair import build
    from ppl_vae.training import fit

    run = copy_of(tiny_run, tmp_path)
    data = load(name="digits", n=200, binarize="static")
    pair = build("vae", data=data, latent_dim=2)
    with pytest.raises(PplVaeError, match="optimizer.lr: 0.001 → 0.1"):
        fit(pair.model, pair.guide, data, lr=0.1, epochs=2, out=run, resume=True, quiet=True,
            device="cpu", pair=pair)


# --- evaluate ---------------------------------------------------------------------------

def test_evaluate_reports_the_training_objective_apart_from_the_elbo(tmp_path, capsys):
    out = tmp_path / "beta"
    assert main(["train", "--model", "beta_vae", "--beta", "4", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    pyro.set_rng_seed(0)
    code, stdout, _ = run_cli(["evaluate", out, "--iw-samples", "50", "--quiet", "--elbo",
                               "meanfield", "--particles", "500"], capsys)
    result = json.loads(stdout)
    assert code == 0 and "bound" not in result and "elbo" in result and "kl" in result
    objective = result["training_objective"]
    assert objective["elbo"] == "meanfield" and "site scales (beta" in objective["note"]
    weighted = -(result["reconstruction"] + 4 * result["kl"])  # E log p(x|z) - β KL
    assert abs(objective["value"] - weighted) < abs(objective["value"] - result["elbo"])
    assert json.loads((out / "evaluation.json").read_text()) == result


def test_point_mass_guides_report_reconstruction_and_regulariser(tmp_path, capsys):
    out = tmp_path / "ae"
    code, stdout, _ = run_cli(["train", "--model", "autoencoder", *TINY, "--out", out], capsys)
    assert code == 0
    for result in (json.loads(stdout), json.loads(run_cli(
            ["evaluate", out, "--iw-samples", "2", "--quiet"], capsys)[1])):
        assert "elbo" not in result and "kl" not in result
        assert result["regulariser"] > 0 and result["reconstruction"] > 0
        assert "point mass" in result["log_likelihood_note"]


def test_hidden_widths_tanh_betas_and_milestones_reach_the_networks_and_the_config(
        tmp_path, capsys):
    code, _, err = run_cli(["train", "--model", "vae", *TINY, "--net", "mlp", "--hidden",
                            "12,6", "--activation", "tanh", "--betas", "0.5,0.9", "--lr-schedule",
                            "multistep", "--lr-milestones", "1", "--epochs", "2", "--out",
                            tmp_path / "r"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["pair"]["options"]["hidden"] == [12, 6]
    assert config["pair"]["options"]["activation"] == "tanh"
    assert config["optimizer"]["betas"] == [0.5, 0.9]
    assert config["schedule"]["lr_milestones"] == [1]
    run = load_run(tmp_path / "r")
    widths = [m.out_features for m in run.guide.encoder.net if hasattr(m, "out_features")]
    assert widths[:2] == [12, 6] and type(run.guide.encoder.net[1]).__name__ == "Tanh"
    code, _, err = run_cli(["train", "--resume", "--out", tmp_path / "r", "--epochs", "3"],
                           capsys)
    assert code == 0, err
