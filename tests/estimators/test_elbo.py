"""Our trace/meanfield estimators equal Pyro's Trace_ELBO / TraceMeanField_ELBO exactly
(values and gradients), and the Rényi bound refuses what it cannot do right."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import make_elbo
from tests.conftest import global_latent_pair


def _loss_and_grads(loss_fn, pair, x, seed):
    pyro.set_rng_seed(seed)
    for p in pair.named_parameters().values():
        p.grad = None
    loss = loss_fn(x)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in pair.named_parameters().values()]


@pytest.mark.parametrize("name, pyro_class", [("trace", Trace_ELBO),
                                              ("meanfield", TraceMeanField_ELBO)])
@pytest.mark.parametrize("beta, particles", [(1.0, 1), (4.0, 3)])
def test_fast_path_equals_pyro(binary_data, name, pyro_class, beta, particles):
    pair = ppl_vae.build("beta_vae", beta=beta, latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:10]
    ours = make_elbo(name, particles)
    ours(pair.model, pair.guide, x)  # first call: checks and caches the plan
    theirs = pyro_class(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    a, grads_a = _loss_and_grads(lambda x: ours(pair.model, pair.guide, x), pair, x, 4)
    b, grads_b = _loss_and_grads(
        lambda x: theirs.differentiable_loss(pair.model, pair.guide, x) / x.shape[0], pair, x, 4)
    assert a == pytest.approx(b, rel=1e-6)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.allclose(ga, gb, rtol=1e-5, atol=1e-7)


def discrete_pair():
    """A model with a Bernoulli latent: the guide cannot be reparameterized."""
    logit = torch.nn.Parameter(torch.zeros(()))

    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            loc = (2 * c - 1)[..., None, None, None].expand(*c.shape, *x.shape[1:])
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(3), obs=x)

    def guide(x):
        pyro.param("logit", logit)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(logits=logit.expand(x.shape[0])))

    return model, guide, logit


def test_non_reparameterized_guide_gets_score_function_gradients(binary_data):
    model, guide, logit = discrete_pair()
    x = torch.ones(20, 1, 8, 8)  # all examples favour c = 1
    loss = make_elbo("trace", 200)(model, guide, x)
    loss.backward()
    assert logit.grad is not None and logit.grad < 0  # raising q(c=1) lowers the loss
    with pytest.raises(PplVaeError, match="reparameterizable"):
        make_elbo("iwae", 5)(model, guide, x)


def test_meanfield_uses_the_analytic_kl(binary_data):
    """With the decoder switched off, the meanfield loss is the KL alone: no MC noise."""
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:10]
    for p in pair.model.decoder.parameters():
        p.data.zero_()
    meanfield, trace = make_elbo("meanfield"), make_elbo("trace")
    with torch.no_grad():
        mf = [meanfield(pair.model, pair.guide, x).item() for _ in range(5)]
        tr = [trace(pair.model, pair.guide, x).item() for _ in range(5)]
    assert max(mf) - min(mf) < 1e-5 < max(tr) - min(tr)


def test_renyi_refuses_a_latent_outside_the_data_plate(binary_data):
    model, guide = global_latent_pair()
    with pytest.raises(PplVaeError, match="sit outside pyro.plate"):
        make_elbo("iwae", 3)(model, guide, binary_data.train[:4])


def nested_plate_pair():
    """A per-example latent and a latent in an inner plate of 3 pieces per example."""
    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            a = pyro.sample("a", dist.Normal(x.new_zeros(()), 1.0))
            with pyro.plate("pieces", 3, dim=-2):
                b = pyro.sample("b", dist.Normal(a, 1.0))
            total = b.sum(-2, keepdim=True) + a  # (..., 1, batch)
            loc = total[..., None, None, None].expand(*total.shape, *x.shape[1:])
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(3), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.sample("a", dist.Normal(x.new_zeros(()) + 0.3, 0.8))
            with pyro.plate("pieces", 3, dim=-2):
                pyro.sample("b", dist.Normal(x.new_zeros(()) - 0.2, 0.7))

    return model, guide


@pytest.mark.parametrize("name, pyro_class", [("trace", Trace_ELBO),
                                              ("meanfield", TraceMeanField_ELBO)])
def test_nested_plates_reduce_to_one_number_per_example(name, pyro_class):
    from ppl_vae.traces import log_weights, prepare

    model, guide = nested_plate_pair()
    x = torch.randn(4, 1, 2, 2)
    nesting, plan = prepare(model, guide, x)
    assert nesting == 2
    assert log_weights(model, guide, x, 5, nesting, plan).total.shape == (5, 4)
    ours = make_elbo(name, 3)
    ours(model, guide, x)
    pyro.set_rng_seed(2)
    a = ours(model, guide, x).item()
    pyro.set_rng_seed(2)
    b = pyro_class(num_particles=3, vectorize_particles=True, max_plate_nesting=2) \
        .differentiable_loss(model, guide, x).item() / x.shape[0]
    assert a == pytest.approx(b, rel=1e-6)
