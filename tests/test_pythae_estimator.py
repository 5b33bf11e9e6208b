"""``benchmarks/reproduce/pythae_estimator.py``: the block estimator's known answers."""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce"))

from pythae_estimator import block_nll  # noqa: E402


def test_equal_weights_give_their_value_at_every_k():
    log_w = torch.full((12, 3), -90.0)
    for k in (1, 2, 3, 4, 6, 12):
        assert block_nll(log_w, k) == pytest.approx(90.0)


def test_a_block_is_log_mean_exp_and_blocks_and_images_are_averaged():
    # image 0: draws (0, log 3 | log 2, log 2) → blocks of 2: log 2, log 2; image 1: all 0
    log_w = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [math.log(2), 0.0],
                          [math.log(2), 0.0]])
    assert block_nll(log_w, 2) == pytest.approx(-math.log(2) / 2)
    assert block_nll(log_w, 4) == pytest.approx(-math.log(8 / 4) / 2)
    assert block_nll(log_w, 1) == pytest.approx(-(math.log(3) + 2 * math.log(2)) / 8)
    assert block_nll(log_w, 2, blocks=1) == pytest.approx(-math.log(2) / 2)
