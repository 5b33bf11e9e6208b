"""Resume equals an uninterrupted run; NaN stops cleanly; checkpoints are weights-only."""

import os
import signal

import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Estimator, make_elbo
from ppl_vae.runs import load_checkpoint, read_metrics
from ppl_vae.training import TrainingDiverged


class Faulty(Estimator):
    """The trace ELBO, with a fault injected at call ``at`` (call k is training step k)."""

    def __init__(self, fault: str, at: int):
        super().__init__(1)
        self.inner, self.fault, self.at, self.calls = make_elbo("trace"), fault, at, 0
        self.name = "trace"

    def __call__(self, model, guide, x):
        self.calls += 1
        loss = self.inner(model, guide, x)
        if self.calls == self.at and self.fault == "sigint":
            os.kill(os.getpid(), signal.SIGINT)
        if self.calls >= self.at and self.fault == "nan":
            loss = loss * float("nan")
        return loss


def _train(data, out, epochs, elbo="trace", **options):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    return ppl_vae.fit(pair.model, pair.guide, data, elbo=elbo, epochs=epochs, batch_size=20,
                       seed=3, out=out, quiet=True, device="cpu", pair=pair, **options)


def _params(run):
    return {k: v.detach().clone() for k, v in run.pair.named_parameters().items()}


def test_resume_after_an_epoch_equals_uninterrupted(binary_data, tmp_path):
    straight = _train(binary_data, tmp_path / "a", epochs=3)
    _train(binary_data, tmp_path / "b", epochs=1)
    resumed = _train(binary_data, tmp_path / "b", epochs=3, resume=True)
    for name, value in _params(straight).items():
        assert torch.equal(value, _params(resumed)[name]), name
    strip = [{k: v for k, v in m.items() if k not in ("seconds", "examples_per_s", "eval_seconds")}
             for m in read_metrics(tmp_path / "a")]
    assert strip == [{k: v for k, v in m.items() if k not in ("seconds", "examples_per_s", "eval_seconds")}
                     for m in read_metrics(tmp_path / "b")]


def test_ctrl_c_mid_epoch_saves_and_resume_equals_uninterrupted(binary_data, tmp_path):
    straight = _train(binary_data, tmp_path / "a", epochs=2)
    with pytest.raises(PplVaeError, match="interrupted at epoch 2, step 3.*--resume"):
        _train(binary_data, tmp_path / "b", epochs=2, elbo=Faulty("sigint", at=8))
    state = load_checkpoint(tmp_path / "b")
    assert (state["epoch"], state["step"]) == (1, 3)
    resumed = _train(binary_data, tmp_path / "b", epochs=2, resume=True)
    for name, value in _params(straight).items():
        assert torch.equal(value, _params(resumed)[name]), name


def test_nan_stops_with_epoch_and_step_and_keeps_last_good_checkpoint(binary_data, tmp_path):
    # 100 examples / 20 = 5 steps an epoch, so call 9 is step 4 of epoch 2; the loss is
    # read every 50 steps and at the end of an epoch.
    with pytest.raises(TrainingDiverged, match="epoch 2 by step 5"):
        _train(binary_data, tmp_path / "r", epochs=3, elbo=Faulty("nan", at=9))
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 0
    assert all(torch.isfinite(v).all() for v in state["params"].values())
    run = ppl_vae.load_run(tmp_path / "r")
    assert all(torch.isfinite(v).all() for v in run.pair.named_parameters().values())


def test_nan_reports_the_step_when_synced_every_step(binary_data, tmp_path):
    with pytest.raises(TrainingDiverged, match="epoch 2 by step 4"):
        _train(binary_data, tmp_path / "r", epochs=3, elbo=Faulty("nan", at=9), sync_every=1)


def test_checkpoint_loads_weights_only_and_run_reloads(binary_data, tmp_path):
    run = _train(binary_data, tmp_path / "r", epochs=1)
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    assert set(state["params"]) == set(run.pair.named_parameters())
    loaded = ppl_vae.load_run(tmp_path / "r", model=run.model.__class__(
        (1, 8, 8), 2, net="mlp"), guide=run.guide.__class__((1, 8, 8), 2, net="mlp"))
    for name, value in _params(run).items():
        assert torch.equal(value, loaded.pair.named_parameters()[name])


def test_existing_run_is_not_overwritten(binary_data, tmp_path):
    _train(binary_data, tmp_path / "r", epochs=1)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    with pytest.raises(PplVaeError, match="--resume.*--overwrite"):
        _train(binary_data, tmp_path / "r", epochs=1)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before
    _train(binary_data, tmp_path / "r", epochs=1, overwrite=True)


def test_hostile_checkpoint_is_refused_and_does_not_run(tmp_path, binary_data):
    _train(binary_data, tmp_path / "r", epochs=1)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"params": Payload()}, tmp_path / "r" / "checkpoint.pt")
    with pytest.raises(PplVaeError, match="refused"):
        load_checkpoint(tmp_path / "r")
    assert not marker.exists()
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PplVaeError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "r")


def test_detect_anomaly_names_the_operation(binary_data, tmp_path):
    with pytest.raises(TrainingDiverged, match="autograd anomaly in epoch 1, step 2: .*nan"):
        _train(binary_data, tmp_path / "r", epochs=1, elbo=Faulty("nan", at=2),
               detect_anomaly=True)
