"""SIGKILL mid-epoch and mid-checkpoint: resume loses at most one checkpoint interval and
ends exactly where an uninterrupted run ends."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ppl_vae.runs import STEPS, load_checkpoint, read_metrics

ROOT = Path(__file__).resolve().parents[2]


def drive(out: Path, mode: str, at: int = 0) -> int:
    return subprocess.run([sys.executable, "-m", "tests.crash_driver", str(out), mode, str(at)],
                          cwd=ROOT, capture_output=True).returncode


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    assert drive(out, "none") == 0
    return load_checkpoint(out), read_metrics(out), read_metrics(out, STEPS)


def _same_end(out: Path, uninterrupted) -> None:
    state, metrics, steps = uninterrupted
    assert len(steps) == 5 and steps[0]["warmup_scale"] < 1  # 15 steps, a line every 3
    assert read_metrics(out, STEPS) == steps
    resumed = load_checkpoint(out)
    for name, value in state["params"].items():
        assert torch.equal(value, resumed["params"][name]), name
    drop = ("seconds", "examples_per_s", "eval_seconds")
    assert [{k: v for k, v in m.items() if k not in drop} for m in read_metrics(out)] == \
        [{k: v for k, v in m.items() if k not in drop} for m in metrics]


def test_sigkill_mid_epoch_resumes_from_last_checkpoint(tmp_path, uninterrupted):
    out = tmp_path / "run"
    # 5 steps an epoch, checkpoints after steps 2 and 4 and at each epoch's end: step 8
    # is step 3 of epoch 2, so the last checkpoint is epoch 2, step 2.
    assert drive(out, "kill_step", at=8) == -signal.SIGKILL
    state = load_checkpoint(out)
    assert (state["epoch"], state["step"]) == (1, 2)
    assert len(read_metrics(out)) == 1
    assert drive(out, "resume") == 0
    _same_end(out, uninterrupted)


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, uninterrupted):
    out = tmp_path / "run"
    # Checkpoints: 1 = epoch 1 step 2, 2 = step 4, 3 = end of epoch 1, 4 = epoch 2 step 2.
    assert drive(out, "kill_checkpoint", at=4) == -signal.SIGKILL
    assert len(list(out.glob(".checkpoint.pt.*.tmp"))) == 1  # half a checkpoint, aside
    state = load_checkpoint(out)  # the half-written temporary file is not the checkpoint
    assert (state["epoch"], state["step"]) == (1, 0)
    assert drive(out, "resume") == 0
    _same_end(out, uninterrupted)
    assert not list(out.glob(".*.tmp"))  # the killed writer's temporary file is cleaned up
