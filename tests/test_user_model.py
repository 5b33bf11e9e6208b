"""Pairs written only here — plain functions with pyro.module, and a PyroModule with a
two-layer latent hierarchy — train, evaluate and sample with the engine unchanged."""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

import ppl_vae
from ppl_vae.figures import observation_mean

LATENT = 3


def make_laplace_pair(event_numel: int = 64):
    """A Laplace-prior VAE written as two plain functions registering their nets."""
    decoder = nn.Sequential(nn.Linear(LATENT, 32), nn.Tanh(), nn.Linear(32, event_numel))
    encoder = nn.Sequential(nn.Flatten(-3), nn.Linear(event_numel, 32), nn.Tanh(),
                            nn.Linear(32, 2 * LATENT))

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Laplace(x.new_zeros(LATENT), 1.0).to_event(1))
            logits = decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        loc, log_scale = encoder(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    return model, guide, (encoder, decoder)


class TwoLayerModel(PyroModule):
    """z2 ~ N(0, I); z1 | z2 ~ N(f(z2), 1); x | z1 ~ Bernoulli(g(z1))."""

    def __init__(self):
        super().__init__()
        self.top = nn.Linear(2, LATENT)
        self.decoder = nn.Linear(LATENT, 64)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z2 = pyro.sample("z2", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            z1 = pyro.sample("z1", dist.Normal(self.top(z2), 1.0).to_event(1))
            logits = self.decoder(z1).reshape(*z1.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class TwoLayerGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Linear(64, 2 * LATENT)
        self.enc2 = nn.Linear(LATENT, 4)

    def forward(self, x):
        loc1, s1 = self.enc1(x.flatten(-3)).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(loc1, s1.exp()).to_event(1))
            loc2, s2 = self.enc2(z1).chunk(2, -1)
            pyro.sample("z2", dist.Normal(loc2, s2.exp()).to_event(1))


def _train_evaluate_sample(model, guide, data, elbo):
    run = ppl_vae.fit(model, guide, data, elbo=elbo, epochs=8, batch_size=20, lr=1e-2,
                      quiet=True, device="cpu")
    objectives = [m["train_objective"] for m in run.metrics]
    assert objectives[-1] > objectives[0] + 1.0, objectives
    result = run.evaluate(data.test, iw_samples=50)
    assert result["elbo"] <= result["log_likelihood"] + 0.5
    assert result["n_examples"] == data.test.shape[0]
    with run.pair.scope():
        images = observation_mean(model, guide, data.test[:1].expand(5, 1, 8, 8), from_prior=True)
    assert images.shape == (5, 1, 8, 8) and ((images >= 0) & (images <= 1)).all()


def test_plain_function_pair_trains_evaluates_samples(binary_data):
    model, guide, _ = make_laplace_pair()
    _train_evaluate_sample(model, guide, binary_data, "trace")


def test_two_layer_pyro_module_trains_with_iwae(binary_data):
    _train_evaluate_sample(TwoLayerModel(), TwoLayerGuide(), binary_data, "iwae")


def test_two_pairs_in_one_process_do_not_share_parameters(binary_data):
    """Both plain-function pairs register 'decoder'/'encoder' in Pyro's param store."""
    model1, guide1, nets1 = make_laplace_pair()
    model2, guide2, nets2 = make_laplace_pair()
    ppl_vae.fit(model1, guide1, binary_data, epochs=1, batch_size=20, quiet=True, device="cpu")
    after_first = [p.detach().clone() for net in nets1 for p in net.parameters()]
    before_second = [p.detach().clone() for net in nets2 for p in net.parameters()]
    ppl_vae.fit(model2, guide2, binary_data, epochs=2, batch_size=20, quiet=True, device="cpu")
    for p, saved in zip((p for net in nets1 for p in net.parameters()), after_first):
        assert torch.equal(p, saved)  # the second run did not touch the first pair
    moved = [not torch.equal(p, s) for p, s in
             zip((p for net in nets2 for p in net.parameters()), before_second)]
    assert all(moved)  # ... and trained its own parameters, not the first pair's
    assert len(pyro.get_param_store()) == 0  # nothing leaked into the global store


def test_two_built_models_in_one_process_do_not_share_parameters(binary_data):
    a = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp", seed=1)
    b = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp", seed=2)
    a_before = {k: v.detach().clone() for k, v in a.named_parameters().items()}
    ppl_vae.fit(b.model, b.guide, binary_data, epochs=1, batch_size=20, quiet=True, device="cpu")
    for name, value in a.named_parameters().items():
        assert torch.equal(value, a_before[name])


def test_plain_function_pair_reloads_from_its_run_folder(binary_data, tmp_path):
    model, guide, nets = make_laplace_pair()
    ppl_vae.fit(model, guide, binary_data, epochs=1, batch_size=20, quiet=True, device="cpu",
                out=tmp_path / "r")
    trained = [p.detach().clone() for net in nets for p in net.parameters()]
    model2, guide2, nets2 = make_laplace_pair()
    run = ppl_vae.load_run(tmp_path / "r", model=model2, guide=guide2)
    for p, saved in zip((p for net in nets2 for p in net.parameters()), trained):
        assert torch.equal(p, saved)
    assert run.evaluate(binary_data.test, iw_samples=5)["n_examples"] == 20
