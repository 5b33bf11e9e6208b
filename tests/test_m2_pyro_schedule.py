"""M2 as Pyro's ss-vae example runs it: the label draw, the networks' init, the batch rule."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

from examples.pyro_tutorials.ss_vae_m2 import SSVAE

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return _load(ROOT / "examples" / "semi_supervised_m2.py", "semi_supervised_m2")


def test_label_draw_by_hand(example):
    """Per class in turn, that class's rows shuffled by numpy's legacy generator, the first
    count/10 kept: the rows Pyro's get_ss_indices_per_class keeps for that seed."""
    labels = torch.arange(60) % 10
    mask = example.pyro_label_draw(labels, 20, seed=4)
    rng = np.random.RandomState(4)
    expected = []
    for digit in range(10):
        rows = [i for i in range(60) if i % 10 == digit]
        rng.shuffle(rows)
        expected += rows[:2]
    assert sorted(mask.nonzero().squeeze(1).tolist()) == sorted(expected)
    assert torch.bincount(labels[mask], minlength=10).tolist() == [2] * 10
    assert not torch.equal(mask, example.pyro_label_draw(labels, 20, seed=5))


def test_label_draw_refuses_uneven_counts(example):
    with pytest.raises(SystemExit, match="multiple of 10"):
        example.pyro_label_draw(torch.arange(60) % 10, 25, seed=0)


def test_pyro_init():
    """Hidden layers N(0, 0.001²): tiny weights; output layers keep PyTorch's default."""
    pyro.set_rng_seed(0)
    m2 = SSVAE()
    hidden = m2.encoder_y[0].weight
    assert hidden.shape == (500, 784) and 0.0008 < hidden.std().item() < 0.0012
    assert m2.encoder_y[2].weight.std().item() > 0.01
    assert m2.encoder_z.hidden[0].weight.std().item() < 0.0012
    loc, scale = m2.encoder_z(torch.zeros(3, 794))
    assert loc.shape == scale.shape == (3, 50) and bool((scale > 0).all())


def test_batch_rule():
    sys.path.insert(0, str(ROOT / "benchmarks" / "reproduce"))
    try:
        m2 = _load(ROOT / "benchmarks" / "reproduce" / "m2.py", "m2_reproduce")
    finally:
        sys.path.pop(0)
    assert (m2.batch_for(3000), m2.batch_for(600), m2.batch_for(100)) == (200, 200, 100)
