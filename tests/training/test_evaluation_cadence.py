"""The test ELBO's cadence and particles: recorded, free to change on resume, never moving
the training's draws, and their cost said before they run."""

import json

import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError


def _fit(data, out=None, **options):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    settings = {"epochs": 5, "batch_size": 20, "seed": 3, "quiet": True, "device": "cpu",
                "report": False, **options}
    run = ppl_vae.fit(pair.model, pair.guide, data, out=out, pair=pair, **settings)
    with pair.scope():
        return run, {k: v.detach().clone() for k, v in pair.named_parameters().items()}


def test_eval_every_measures_on_its_epochs_and_the_last_without_changing_training(binary_data):
    every, every_params = _fit(binary_data)
    second, second_params = _fit(binary_data, eval_every=2)
    last, last_params = _fit(binary_data, eval_every=0)
    tested = lambda run: [m["epoch"] for m in run.metrics if m["test_elbo"] is not None]  # noqa: E731
    assert tested(every) == [1, 2, 3, 4, 5]
    assert tested(second) == [2, 4, 5] and tested(last) == [5]
    for params in (second_params, last_params):  # evaluation draws from its own stream
        assert all(torch.equal(params[k], every_params[k]) for k in params)
    assert second.metrics[3]["test_elbo"] == every.metrics[3]["test_elbo"]  # same draws too
    assert second.metrics[0]["eval_seconds"] is None and second.metrics[1]["eval_seconds"] > 0


def test_eval_particles_are_used_recorded_and_may_change_on_resume(binary_data, tmp_path):
    run, _ = _fit(binary_data, tmp_path / "r", epochs=2, eval_particles=4, eval_every=2)
    assert run.metrics[-1]["eval_passes"] == 4 * 20  # 4 particles x 20 test examples
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["evaluation"] == {"eval_every": 2, "eval_particles": 4, "iw_samples": 100,
                                    "eval_examples": None}
    one, _ = _fit(binary_data, epochs=2, eval_particles=1, eval_every=2)
    assert one.metrics[-1]["test_elbo"] != run.metrics[-1]["test_elbo"]
    resumed, _ = _fit(binary_data, tmp_path / "r", epochs=3, eval_particles=2, resume=True)
    assert resumed.metrics[-1]["eval_passes"] == 2 * 20
    stored = json.loads((tmp_path / "r" / "config.json").read_text())["evaluation"]
    assert stored["eval_particles"] == 2 and stored["eval_every"] == 1


def test_costs_are_said_before_evaluation_starts(binary_data, tmp_path, capsys):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, binary_data, pair=pair, epochs=2, batch_size=20,
                device="cpu", out=tmp_path / "r", iw_samples=7, eval_every=2)
    err = capsys.readouterr().err
    assert "test ELBO: 1 particle(s) x 20 test examples = 20 passes, every 2 epochs" not in err
    assert "test ELBO: 1 particle(s) x 20 test examples = 20 passes, after the last epoch " \
           "only" in err
    line = next(line for line in err.splitlines() if line.startswith("final evaluation"))
    assert "K=7 importance samples x 20 test examples = 140 passes, about" in line
    assert err.index("test ELBO: 1") < err.index("epoch 1/2") < err.index("final evaluation")


@pytest.mark.parametrize("options, message", [
    ({"eval_every": -1}, "eval_every must be an integer >= 0"),
    ({"eval_particles": 0}, "eval_particles must be an integer >= 1"),
    ({"eval_every": 0, "patience": 2}, "--patience"),
])
def test_evaluation_mistakes_are_one_line(binary_data, options, message):
    with pytest.raises(PplVaeError, match=message):
        _fit(binary_data, **options)
