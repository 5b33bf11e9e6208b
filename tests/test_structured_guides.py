"""Chain, grid and full-covariance guides: they train, and meanfield uses their KL."""

import pyro.distributions
import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

import ppl_vae
from ppl_vae.distributions import FullCovarianceNormal
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from ppl_vae.guides.structured import grid_columns


@pytest.mark.parametrize("guide", ["chain", "grid", "full"])
def test_guide_trains_and_meanfield_kl_is_analytic(binary_data, guide):
    pair = ppl_vae.build("beta_vae", guide, beta=2.0, latent_dim=4, data=binary_data, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, elbo="meanfield", epochs=6,
                      batch_size=20, lr=1e-2, quiet=True, device="cpu", pair=pair)
    objectives = [m["train_objective"] for m in run.metrics]
    assert objectives[-1] > objectives[0]
    for p in pair.model.decoder.parameters():
        p.data.zero_()
    meanfield = make_elbo("meanfield")
    x = binary_data.test[:8]
    with torch.no_grad():
        values = [meanfield(pair.model, pair.guide, x).item() for _ in range(4)]
    assert max(values) - min(values) < 1e-4  # only the analytic KL varies with z: none


def test_full_covariance_kl_to_diagonal_prior_matches_dense():
    tril = torch.randn(3, 4, 4, dtype=torch.float64).tril(-1) + torch.diag_embed(
        torch.rand(3, 4, dtype=torch.float64) + 0.5)
    q = FullCovarianceNormal(torch.randn(3, 4, dtype=torch.float64), scale_tril=tril)
    prior = pyro.distributions.Normal(torch.zeros(4, dtype=torch.float64), 1.0).to_event(1)
    dense = MultivariateNormal(torch.zeros(4, dtype=torch.float64),
                               covariance_matrix=torch.eye(4, dtype=torch.float64))
    assert torch.allclose(kl_divergence(q, prior), kl_divergence(q, dense))


def test_grid_columns():
    assert grid_columns(16, None) == 4 and grid_columns(10, None) == 2
    assert grid_columns(7, None) == 1 and grid_columns(12, 6) == 6
    with pytest.raises(PplVaeError, match="must divide"):
        grid_columns(10, 3)
