"""Richer Gaussian guides start where the diagonal guide starts (same seed, step 0)."""

import pytest
import torch

import ppl_vae

RICHER = ["chain", "grid", "full", "iaf"]


def _distributions(guide_name: str, data, seed: int = 3):
    pair = ppl_vae.build("vae", guide_name, latent_dim=6, data=data, net="mlp", seed=seed)
    return pair.guide.distribution(data.test[:5])


@pytest.mark.parametrize("guide", RICHER)
def test_richer_guide_equals_the_diagonal_guide_at_step_zero(binary_data, guide):
    diagonal = _distributions("diagonal", binary_data)
    richer = _distributions(guide, binary_data)
    torch.manual_seed(0)
    # 40 spread points per example: two Gaussians in K = 6 whose log densities (quadratics,
    # 28 coefficients) agree at more than 28 generic points are the same distribution
    z = diagonal.mean + 2 * (diagonal.sample((40,)) - diagonal.mean)
    assert torch.allclose(richer.log_prob(z), diagonal.log_prob(z), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(diagonal.log_prob(z), diagonal.log_prob(z + 0.1))
    if guide != "iaf":
        assert torch.equal(richer.mean, diagonal.mean)
        assert torch.allclose(richer.variance, diagonal.variance, rtol=1e-5)


@pytest.mark.parametrize("guide", ["chain", "grid", "full"])
def test_couplings_move_off_zero_in_training(binary_data, guide):
    pair = ppl_vae.build("vae", guide, latent_dim=4, data=binary_data, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=2, batch_size=20, lr=1e-2,
                quiet=True, device="cpu", pair=pair)
    assert pair.guide.coupling.weight.abs().max() > 1e-4
