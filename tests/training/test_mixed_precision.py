"""bf16 mixed precision: networks in bfloat16, every density and the bound in float32."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from ppl_vae.pair import Pair
from ppl_vae.training.mixed_precision import MixedPrecision, networks

CPU = torch.device("cpu")
pytestmark = pytest.mark.filterwarnings("ignore:this CPU has no native bfloat16")


def test_networks_are_the_outermost_plain_modules_with_parameters(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    assert networks(pair.modules()) == [pair.model.decoder, pair.guide.encoder]
    learned = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp",
                            likelihood="gaussian")
    assert learned.model.likelihood in networks(learned.modules())  # holds log σ


def test_bf16_runs_networks_in_bfloat16_and_densities_in_float32(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:32]
    first_layer = pair.guide.encoder.net[0]
    seen = []
    first_layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    estimator = make_elbo("trace", 1)
    pyro.set_rng_seed(0)
    full = estimator(pair.model, pair.guide, x)
    with MixedPrecision(pair, "bf16", CPU):
        pyro.set_rng_seed(0)
        mixed = estimator(pair.model, pair.guide, x)
        mixed.backward()
    assert seen[-1] == torch.bfloat16 and full.dtype == mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(full.item(), rel=0.01)
    assert all(p.grad.dtype == torch.float32 for p in pair.model.parameters())
    assert "forward" not in vars(pair.guide.encoder)  # restored on leaving
    pyro.set_rng_seed(0)
    assert estimator(pair.model, pair.guide, x).item() == full.item()


def test_bf16_training_from_fit_records_the_setting(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=2, batch_size=20,
                      precision="bf16", device="cpu", quiet=True)
    assert run.config.training.precision == "bf16"
    assert all(torch.isfinite(torch.tensor(m["train_objective"])) for m in run.metrics)


def test_bad_precision_and_function_pairs_are_refused(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    with pytest.raises(PplVaeError, match="unknown --precision 'fp16'"):
        MixedPrecision(pair, "fp16", CPU)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.0, 1.0).expand(x.shape[1:]).to_event(3), obs=x)

    with pytest.raises(PplVaeError, match="needs model and guide to be nn.Modules"):
        MixedPrecision(Pair(model, model), "bf16", CPU)
