"""Networks keep leading batch dims; every likelihood trains and checks its data."""

import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.likelihoods import make_likelihood
from ppl_vae.nets import ConvDecoder, ConvEncoder, make_decoder, make_encoder


@pytest.mark.parametrize("side, stages", [(64, 4), (32, 3), (28, 2)])
def test_conv_pair_shapes_and_burgess_layout(side, stages):
    encoder, decoder = make_encoder((1, side, side), 6), make_decoder(3, (1, side, side))
    assert isinstance(encoder, ConvEncoder) and isinstance(decoder, ConvDecoder)
    convs = [m for m in encoder.conv if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == stages and all(c.kernel_size == (4, 4) and c.stride == (2, 2)
                                        for c in convs)
    if side == 64:
        assert [c.out_channels for c in convs] == [32, 32, 64, 64]
        assert encoder.dense[0].out_features == 256
    x = torch.rand(5, 2, 1, side, side)
    assert encoder(x).shape == (5, 2, 6)
    assert decoder(torch.randn(7, 2, 3)).shape == (7, 2, 1, side, side)


def test_mlp_for_flat_data():
    encoder = make_encoder((10,), 4)
    assert encoder(torch.randn(3, 2, 10)).shape == (3, 2, 4)


@pytest.mark.parametrize("likelihood, sigma", [("bernoulli", None),
                                               ("continuous_bernoulli", None),
                                               ("gaussian", 0.5), ("gaussian", None)])
def test_each_likelihood_trains(binary_data, likelihood, sigma):
    options = {"sigma": sigma} if sigma else {}
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp",
                         likelihood=likelihood, **options)
    before = {k: v.detach().clone() for k, v in pair.named_parameters().items()}
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=5, batch_size=20, lr=1e-2,
                      quiet=True, device="cpu", pair=pair)
    assert run.metrics[-1]["train_objective"] > run.metrics[0]["train_objective"]
    if likelihood == "gaussian" and sigma is None:
        name = "model.likelihood.log_sigma"
        assert name in before and not torch.equal(before[name], pair.named_parameters()[name])


def test_gaussian_likelihood_log_density_by_hand():
    head = make_likelihood("gaussian", 1, sigma=0.5)
    h, x = torch.tensor([[0.2, -1.0]]), torch.tensor([[0.0, 1.0]])
    by_hand = (-0.5 * ((x - h) / 0.5) ** 2 - torch.log(torch.tensor(0.5))
               - 0.5 * torch.log(torch.tensor(2 * torch.pi))).sum()
    assert torch.allclose(head(h).log_prob(x), by_hand)


def test_continuous_bernoulli_accepts_grey_levels_and_refuses_outside():
    head = make_likelihood("continuous_bernoulli", 3)
    head.check_data(torch.full((2, 1, 2, 2), 0.3))
    with pytest.raises(PplVaeError, match=r"\[0, 1\]"):
        head.check_data(torch.full((2, 1, 2, 2), 1.5))
