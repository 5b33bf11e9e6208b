"""Shared fixtures: tiny data sets and a fresh RNG per test."""

from types import SimpleNamespace

import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    pyro.set_rng_seed(0)
    torch.set_num_threads(2)
    pyro.clear_param_store()
    yield


def tiny_binary(n: int = 120, side: int = 8, seed: int = 0) -> SimpleNamespace:
    """Random binary ``(n, 1, side, side)`` images split 100/20 into train/test."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, side, side, generator=g) < 0.3).float()
    split = n - 20
    return SimpleNamespace(train=x[:split], test=x[split:], event_shape=(1, side, side),
                           spec=None, dynamic_binarize=False)


@pytest.fixture
def binary_data():
    return tiny_binary()
