"""The engine's speed-ups give the slow path's results: same values, same gradients."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule, PyroSample

import ppl_vae
from ppl_vae import traces
from ppl_vae.estimators import make_elbo
from ppl_vae.likelihoods import BernoulliImage, NormalImage
from ppl_vae.training import speedups


@pytest.fixture(autouse=True)
def _engine_settings():
    """These tests call the engine's internals directly, under the setting its calls enter."""
    with ppl_vae.engine_settings():
        yield


def _loss_and_grads(estimator, model, guide, x, params, seed=3):
    pyro.set_rng_seed(seed)
    for p in params:
        p.grad = None
    loss = estimator(model, guide, x)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in params]


@pytest.mark.parametrize("elbo, particles", [("trace", 1), ("meanfield", 1), ("trace", 3),
                                             ("iwae", 4)])
def test_pyro_modules_run_by_forward_match_the_called_modules(binary_data, monkeypatch,
                                                              elbo, particles):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    x, params = binary_data.train[:16], list(pair.named_parameters().values())
    estimator = make_elbo(elbo, particles)
    fast = _loss_and_grads(estimator, pair.model, pair.guide, x, params)
    assert traces.runnable(pair.model) == pair.model.forward
    monkeypatch.setattr(traces, "runnable", lambda program: program)  # the slow path
    slow = _loss_and_grads(estimator, pair.model, pair.guide, x, params)
    assert torch.equal(fast[0], slow[0])
    for a, b in zip(fast[1], slow[1]):
        assert torch.equal(a, b)


def test_one_particle_without_the_particle_plate_draws_the_same_numbers(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    x = binary_data.train[:16]
    nesting, plan = traces.prepare(pair.model, pair.guide, x)
    runs = []
    for plate_one in (True, False):
        pyro.set_rng_seed(5)
        model_trace, guide_trace = traces.particle_traces(pair.model, pair.guide, x, 1, nesting,
                                                          plate_one=plate_one)
        runs.append([traces.site_log_prob(model_trace.nodes["x"], ()),
                     traces.site_log_prob(guide_trace.nodes["z"], ())])
    assert guide_trace.nodes["z"]["value"].shape == (16, 3)  # the pair's own shape
    for with_plate, without in zip(*runs):
        assert with_plate.shape == without.shape == (1, 16)
        assert torch.allclose(with_plate, without, rtol=1e-6, atol=1e-6)


def test_data_plate_at_dim_minus_two_with_one_particle_equals_pyro():
    """Per-example reduction without the particle plate, for a data plate left of a pixel plate."""

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0))
            with pyro.plate("pixels", x.shape[1], dim=-1):
                pyro.sample("x", dist.Normal(z.expand(*z.shape[:-1], x.shape[1]), 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal(x.mean(-1, keepdim=True), 0.5))

    x = torch.randn(6, 5)
    ours = make_elbo("trace", 1)
    ours(model, guide, x)
    pyro.set_rng_seed(1)
    a = ours(model, guide, x).item()
    pyro.set_rng_seed(1)
    b = Trace_ELBO(max_plate_nesting=2).differentiable_loss(model, guide, x).item() / 6
    assert a == pytest.approx(b, rel=1e-6)


class SampledScaleModel(PyroModule):
    """A model whose latent is a ``PyroSample`` attribute: needs its PyroModule context."""

    def __init__(self):
        super().__init__()
        self.loc = PyroSample(lambda self: dist.Normal(torch.zeros(2), 1.0).to_event(1))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def test_pyro_modules_with_pyro_sample_attributes_are_called_not_bypassed():
    model = SampledScaleModel()
    assert traces.runnable(model) is model


def test_image_distributions_equal_torch_independent_in_value_and_gradient():
    logits = torch.randn(3, 4, 1, 5, 5, requires_grad=True)
    x = (torch.rand(4, 1, 5, 5) < 0.4).float()
    ours = BernoulliImage(logits, 3).log_prob(x)
    torch_version = dist.Bernoulli(logits=logits).to_event(3).log_prob(x)
    assert ours.shape == (3, 4)
    assert torch.allclose(ours, torch_version, atol=1e-5)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_torch,) = torch.autograd.grad(torch_version.sum(), logits)
    assert torch.allclose(g_ours, g_torch, atol=1e-6)
    log_sigma = torch.tensor(-0.4, requires_grad=True)
    ours = NormalImage(logits, log_sigma, 3).log_prob(x)
    torch_version = dist.Normal(logits, log_sigma.exp()).to_event(3).log_prob(x)
    assert torch.allclose(ours, torch_version, rtol=1e-5)
    grads = [torch.autograd.grad(v.sum(), log_sigma)[0] for v in (ours, torch_version)]
    assert torch.allclose(*grads, rtol=1e-5)


def test_image_distributions_expand_and_sample_like_pyro_expects():
    head = BernoulliImage(torch.zeros(4, 1, 5, 5), 3).expand((2, 4))
    assert head.batch_shape == (2, 4) and head.event_shape == (1, 5, 5)
    draw = head.sample()
    assert draw.shape == (2, 4, 1, 5, 5) and set(draw.unique().tolist()) <= {0.0, 1.0}
    normal = NormalImage(torch.zeros(4, 1, 5, 5), torch.tensor(0.0), 3)
    assert normal.rsample((7,)).shape == (7, 4, 1, 5, 5)
    with pytest.raises(ValueError):
        BernoulliImage(torch.zeros(4, 1, 5, 5), 3, validate_args=True).log_prob(
            torch.full((4, 1, 5, 5), 0.5))


def test_fused_adam_matches_the_default_adam(binary_data):
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 3)
    copy = torch.nn.Linear(6, 3)
    copy.load_state_dict(net.state_dict())
    fused, default = speedups.adam(net.parameters(), 1e-2), torch.optim.Adam(copy.parameters(), 1e-2)
    assert fused.defaults["fused"]
    x = torch.randn(10, 6)
    for _ in range(20):
        for module, optimizer in ((net, fused), (copy, default)):
            optimizer.zero_grad()
            module(x).pow(2).sum().backward()
            optimizer.step()
    assert torch.allclose(net.weight, copy.weight, atol=1e-6)


def test_allocator_setting_applies_on_linux_glibc():
    import platform
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert speedups.keep_freed_memory()


def test_global_param_store_mode_keeps_calling_the_module(binary_data):
    pair = ppl_vae.build("vae", latent_dim=3, data=binary_data, net="mlp")
    with pyro.settings.context(module_local_params=False):
        assert traces.runnable(pair.model) is pair.model
