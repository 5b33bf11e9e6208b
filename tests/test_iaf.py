"""The IAF guide: its density is the change of variables, and it trains and evaluates."""

import pytest
import torch
from torch.autograd.functional import jacobian

import ppl_vae
from ppl_vae.errors import PplVaeError


def _perturbed_iaf(data, latent_dim=5, flows=2):
    """An IAF guide whose flows are far from the identity they start at."""
    pair = ppl_vae.build("vae", "iaf", latent_dim=latent_dim, flows=flows, data=data,
                         net="mlp")
    with torch.no_grad():
        for flow in pair.guide.flows:
            out = flow.nn.layers[-1]
            out.weight.normal_(0, 0.3)
            out.bias.normal_(0, 0.3)
    return pair


def test_log_prob_is_the_change_of_variables(binary_data):
    pair = _perturbed_iaf(binary_data)
    guide = pair.guide
    x = binary_data.test[:3]
    q = guide.distribution(x)
    z0 = q.base_dist.rsample()
    transforms = q.transforms

    def push(z):
        for t in transforms:
            z = t(z)
        return z

    z = push(z0)
    for i in range(x.shape[0]):
        # the flow is per example: the Jacobian of example i's z₀ ↦ z, with the others fixed
        def push_one(v, i=i):
            return push(torch.cat([z0[:i], v[None], z0[i + 1:]]))[i]

        log_det = torch.linalg.slogdet(jacobian(push_one, z0[i]))[1]
        by_hand = q.base_dist.log_prob(z0)[i] - log_det
        fresh = guide.distribution(x)  # no cached inverse: scored by inverting each layer
        assert torch.allclose(fresh.log_prob(z)[i], by_hand, atol=1e-4)
        assert torch.allclose(q.log_prob(z)[i], by_hand, atol=1e-4)
    assert (q.base_dist.log_prob(z0) - q.log_prob(z)).abs().max() > 0.1  # not the identity


@pytest.mark.parametrize("elbo", ["trace", "iwae"])
def test_iaf_trains_and_is_evaluated(binary_data, elbo):
    pair = ppl_vae.build("vae", "iaf", latent_dim=4, data=binary_data, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, elbo=elbo, epochs=6,
                      batch_size=20, lr=1e-2, quiet=True, device="cpu", pair=pair)
    objectives = [m["train_objective"] for m in run.metrics]
    assert objectives[-1] > objectives[0]
    moved = [f.nn.layers[-1].weight.abs().max().item() for f in pair.guide.flows]
    assert min(moved) > 1e-4  # the flows learned, not only the base Gaussian
    result = run.evaluate(binary_data.test, iw_samples=64)
    assert torch.isfinite(torch.tensor(result["log_likelihood"]))
    assert result["log_likelihood"] > result["elbo"] - 0.5


def test_flows_must_be_positive(binary_data):
    with pytest.raises(PplVaeError, match="--flows must be at least 1"):
        ppl_vae.build("vae", "iaf", latent_dim=4, flows=0, data=binary_data, net="mlp")
