"""Training controls: honest resume, KL warm-up, schedules, early stopping, the divergence
guard — each recorded in the run's config and checked against what it must compute."""

import os
import stat

import pyro
import pytest
import torch
from torch.distributions import kl_divergence

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, make_elbo
from ppl_vae.runs import BEST, STEPS, read_metrics, read_run_config
from ppl_vae.training.schedules import TrainingDiverged, warmup_scale


def _fit(data, out=None, **options):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    settings = {"epochs": 2, "batch_size": 20, "seed": 3, "quiet": True, "device": "cpu",
                "report": False, **options}
    return ppl_vae.fit(pair.model, pair.guide, data, out=out, pair=pair, **settings)


def test_resume_refuses_changed_settings_listing_each_and_extends_epochs(binary_data, tmp_path):
    _fit(binary_data, tmp_path / "r")
    with pytest.raises(PplVaeError) as error:
        _fit(binary_data, tmp_path / "r", resume=True, elbo="iwae", lr=0.1)
    message = str(error.value)
    assert "\n" not in message
    assert "estimator.elbo: 'trace' → 'iwae'" in message and "optimizer.lr: 0.001 → 0.1" in message
    assert read_run_config(tmp_path / "r").training.lr == 1e-3  # nothing rewritten
    run = _fit(binary_data, tmp_path / "r", resume=True, epochs=3)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]
    assert read_run_config(tmp_path / "r").training.epochs == 3


def test_warmup_scales_the_kl_term_and_only_it(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    x = binary_data.train[:20]
    with pair.scope():
        pyro.set_rng_seed(1)
        loss = make_elbo("meanfield").loss(pair, Batch(x, dataset_size=100, latent_scale=0.25))
        pyro.set_rng_seed(1)
        q = pair.guide.distribution(x)
        z = q.rsample()
        recon = pair.model.likelihood(pair.model.decoder(z)).log_prob(x)
        kl = kl_divergence(q, pair.model.prior(x))
    assert torch.allclose(loss, -(recon - 0.25 * kl).mean(), rtol=1e-6)
    assert [warmup_scale(t, 4, 0.2) for t in (0, 2, 4, 9)] == pytest.approx([0.2, 0.6, 1, 1])
    run = _fit(binary_data, warmup_steps=6, warmup_start=0.1, log_every=1)
    assert run.metrics[0]["warmup_scale"] < 1 == run.metrics[1]["warmup_scale"]
    for elbo in ("iwae", "iwae-dreg", "renyi"):
        with pytest.raises(PplVaeError, match="warm-up scales the latent sites"):
            _fit(binary_data, elbo=elbo, warmup_steps=5)
    _fit(binary_data, elbo=pyro.infer.Trace_ELBO(), warmup_steps=5, epochs=1)


@pytest.mark.parametrize("schedule, expected", [("cosine", 0.0), ("step", 1e-4)])
def test_lr_schedules_reach_their_end_values(binary_data, schedule, expected):
    run = _fit(binary_data, epochs=3, lr_schedule=schedule, lr_step_epochs=2)
    assert run.metrics[-1]["lr"] == pytest.approx(expected, abs=1e-12)
    assert run.config.training.lr_schedule == schedule


def test_early_stopping_keeps_the_best_checkpoint(binary_data, tmp_path):
    run = _fit(binary_data, tmp_path / "r", epochs=30, lr=3e-2, patience=2)
    elbos = [m["test_elbo"] for m in run.metrics]
    assert len(elbos) < 30  # stopped
    best_epoch = max(range(len(elbos)), key=elbos.__getitem__) + 1
    assert len(elbos) == best_epoch + 2  # two epochs without improvement, then stop
    best = ppl_vae.load_run(tmp_path / "r", best=True)
    last = ppl_vae.load_run(tmp_path / "r")
    assert any(not torch.equal(a, b) for a, b in zip(best.pair.named_parameters().values(),
                                                      last.pair.named_parameters().values()))
    assert (tmp_path / "r" / BEST).exists()


def test_lr_10_on_a_real_model_stops_naming_the_step_and_keeps_a_good_checkpoint(tmp_path):
    data = ppl_vae.data.load("digits", n=400, binarize="static", seed=0)
    with pytest.raises(TrainingDiverged) as error:
        _fit(data, tmp_path / "r", epochs=5, lr=10.0, sync_every=5)
    message = str(error.value)
    assert "\n" not in message and "lower --lr (now 10)" in message and "by step" in message
    if (tmp_path / "r" / "checkpoint.pt").exists():
        run = ppl_vae.load_run(tmp_path / "r")
        assert all(torch.isfinite(v).all() for v in run.pair.named_parameters().values())
        assert all(abs(m["test_elbo"]) < 1e4 for m in run.metrics)


def test_step_lines_and_run_files_follow_the_umask(binary_data, tmp_path):
    old = os.umask(0o022)
    try:
        _fit(binary_data, tmp_path / "r", log_every=2)
    finally:
        os.umask(old)
    steps = read_metrics(tmp_path / "r", STEPS)
    assert [s["step"] for s in steps] == [2, 4, 6, 8, 10]
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", STEPS):
        assert stat.S_IMODE((tmp_path / "r" / name).stat().st_mode) == 0o644, name


def test_a_format_1_run_resumes_with_only_more_epochs(binary_data, tmp_path):
    """Runs written before the typed config had one "train" dict and none of the controls."""
    import json

    _fit(binary_data, tmp_path / "r")
    path = tmp_path / "r" / "config.json"
    new = json.loads(path.read_text())
    train = {**new["estimator"], "lr": new["optimizer"]["lr"], **new["environment"],
             **{k: new["training"][k] for k in ("epochs", "batch_size", "seed", "precision")}}
    old = {k: new[k] for k in ("pair", "data", "event_shape", "inputs")}
    path.write_text(json.dumps({"format_version": 1, **old, "train": train}))
    run = _fit(binary_data, tmp_path / "r", resume=True, epochs=3)
    assert len(run.metrics) == 3


def test_a_format_2_run_reads_with_the_new_settings_at_their_defaults(binary_data, tmp_path):
    """Format 2 had no Adam betas/eps or milestones, and wrote alpha for every estimator."""
    import json

    _fit(binary_data, tmp_path / "r", elbo="iwae")
    path = tmp_path / "r" / "config.json"
    new = json.loads(path.read_text())
    for key in ("betas", "eps"):
        new["optimizer"].pop(key)
    new["schedule"].pop("lr_milestones")
    new.update(format_version=2, estimator={**new["estimator"], "alpha": 0.0})
    path.write_text(json.dumps(new))
    stored = read_run_config(tmp_path / "r")
    assert stored.training.betas == (0.9, 0.999) and stored.estimator.options == {"particles": 5}
    run = _fit(binary_data, tmp_path / "r", elbo="iwae", resume=True, epochs=3)
    assert len(run.metrics) == 3


def test_multistep_schedule_decays_after_each_milestone_and_adam_gets_its_betas(
        binary_data, tmp_path):
    run = _fit(binary_data, tmp_path / "r", epochs=4, lr=1e-3, lr_schedule="multistep",
               lr_milestones=(1, 3), lr_gamma=0.5, betas=(0.5, 0.9), eps=1e-6)
    assert [m["lr"] for m in run.metrics] == pytest.approx([5e-4, 5e-4, 2.5e-4, 2.5e-4])
    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    group = saved["optimizer"]["param_groups"][0]
    assert tuple(group["betas"]) == (0.5, 0.9) and group["eps"] == 1e-6
    assert read_run_config(tmp_path / "r").training.lr_milestones == (1, 3)


@pytest.mark.parametrize("settings, message", [
    ({"lr_schedule": "multistep"}, "--lr-milestones goes with --lr-schedule multistep"),
    ({"lr_milestones": (2, 1), "lr_schedule": "multistep"}, "increasing epochs"),
    ({"betas": (0.9, 1.0)}, "--betas must be two numbers in \\[0, 1\\)"),
    ({"epochs_total": 3}, "unknown setting"),
])
def test_impossible_settings_are_one_line_errors(binary_data, settings, message):
    with pytest.raises(PplVaeError, match=message):
        _fit(binary_data, **settings)


def test_a_run_made_before_a_pair_option_existed_resumes_at_its_default(binary_data, tmp_path):
    """A pair option added since the run (here ``hidden``) was, for that run, at its default."""
    import json

    _fit(binary_data, tmp_path / "r")
    path = tmp_path / "r" / "config.json"
    stored = json.loads(path.read_text())
    assert stored["pair"]["options"].pop("hidden") == [400]
    path.write_text(json.dumps(stored))
    run = _fit(binary_data, tmp_path / "r", resume=True, epochs=3)
    assert len(run.metrics) == 3
    path.write_text(json.dumps(stored))
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp", seed=0, hidden=(30,))
    with pytest.raises(PplVaeError, match=r"pair.options.hidden: None → \[30\]"):
        ppl_vae.fit(pair.model, pair.guide, binary_data, out=tmp_path / "r", pair=pair,
                    resume=True, epochs=4, batch_size=20, seed=3, quiet=True, report=False)
