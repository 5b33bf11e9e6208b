"""The metrics on rendered ``shapes`` images with a hand-written encoder.

The encoder reads the sprite's centre of mass and the square root of its
area: it captures pos_x, pos_y and (mixed with shape) scale, and nothing of
orientation. Expected: MIG about (0.76 + 0.76 + 0.66 + 0.39 + 0) / 5 ≈ 0.5;
BetaVAE ≈ 0.8 (shape and orientation are confused with each other only);
FactorVAE ≈ 0.5 (three codes can name at most three of five factors).
"""

import numpy as np
import torch

import ppl_vae
from ppl_vae.metrics import compute_beta_vae, compute_factor_vae, compute_mig

SHAPES = ppl_vae.data.load("shapes", size=32, n=20)


def centroid(images: torch.Tensor) -> np.ndarray:
    """Column and row of the centre of mass, and sqrt(area), of each image."""
    x = images[:, 0].double()
    mass = x.sum((1, 2)).clamp_min(1)
    grid = torch.arange(x.shape[-1], dtype=x.dtype)
    cols = (x.sum(1) * grid).sum(1) / mass
    rows = (x.sum(2) * grid).sum(1) / mass
    return torch.stack([cols, rows, mass.sqrt()], 1).numpy()


def constant(images: torch.Tensor) -> np.ndarray:
    return np.zeros((images.shape[0], 3))


def test_mig_of_a_centroid_encoder():
    scores = compute_mig(centroid, SHAPES, num_train=3000)
    gaps = dict(zip(SHAPES.factor_names, scores["gap_per_factor"]))
    assert gaps["pos_x"] > 0.65 and gaps["pos_y"] > 0.65
    assert gaps["orientation"] < 0.05
    assert 0.4 < scores["discrete_mig"] < 0.65
    assert compute_mig(constant, SHAPES, num_train=500)["discrete_mig"] == 0.0


def test_beta_vae_and_factor_vae_of_a_centroid_encoder():
    beta = compute_beta_vae(centroid, SHAPES, num_train=300, num_eval=150, batch_size=16)
    assert 0.65 < beta["eval_accuracy"] < 0.95
    assert compute_beta_vae(constant, SHAPES, num_train=100, num_eval=100,
                            batch_size=4)["eval_accuracy"] < 0.4
    factor = compute_factor_vae(centroid, SHAPES, num_train=200, num_eval=100,
                                num_variance_estimate=1000, batch_size=32)
    assert factor["num_active_dims"] == 3 and 0.35 < factor["eval_accuracy"] < 0.7
