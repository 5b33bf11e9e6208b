"""Two CPU processes with gloo under torchrun: ranks stay identical and match one process
trained on the same global batches, and resume where they stopped."""

import subprocess
import sys
from pathlib import Path

import torch

from ppl_vae.runs import read_metrics
from tests.ddp_driver import train

ROOT = Path(__file__).resolve().parents[2]


def _torchrun(*args):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "tests.ddp_driver", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_two_processes_match_single_process(tmp_path):
    out = tmp_path / "ddp"
    _torchrun(out)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name  # DDP keeps ranks identical
    single, _ = train(tmp_path / "single")
    for name, value in single.items():
        # Whole tensors, not elements: Adam divides by sqrt(v), so a near-zero gradient whose
        # rounding differs between the two-rank average and the one-process mean moves a single
        # weight by up to ~1e-4; a wrong shard or a missing all-reduce moves every weight.
        assert torch.linalg.norm(rank0[name] - value) <= 1e-4 * torch.linalg.norm(value), name
    ddp_metrics, single_metrics = read_metrics(out), read_metrics(tmp_path / "single")
    assert len(ddp_metrics) == 2  # rank 0 alone wrote the run folder
    for a, b in zip(ddp_metrics, single_metrics):
        assert abs(a["train_objective"] - b["train_objective"]) < 1e-3
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == \
        ["checkpoint.pt", "rank0.pt", "rank1.pt"]


def test_two_processes_resume_to_the_uninterrupted_result(tmp_path):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    _torchrun(whole, 2)
    _torchrun(halves, 1)
    _torchrun(halves, 2, "--resume")
    for rank in (0, 1):
        a, b = (torch.load(folder / f"rank{rank}.pt", weights_only=True)
                for folder in (whole, halves))
        for name in a:
            assert torch.equal(a[name], b[name]), (rank, name)
    assert [m["epoch"] for m in read_metrics(halves)] == [1, 2]
