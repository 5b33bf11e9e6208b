"""The engine is a layer on Pyro: no global side effects, Pyro's own ELBO objects,
enumeration, and the errors a Pyro user gets for programs the contract cannot take."""

import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import (
    SVI,
    JitTrace_ELBO,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroParam
from torch import nn

import ppl_vae
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.estimators import as_estimator, from_spec, make_elbo

PYRO_ELBOS = [Trace_ELBO, TraceMeanField_ELBO, TraceGraph_ELBO,
              lambda **k: RenyiELBO(alpha=0.5, num_particles=2, **k), TraceEnum_ELBO]


class UnrelatedRegression(PyroModule):
    """Pyro-tutorial code that never touches ppl_vae: a Bayesian-ish regression."""

    def __init__(self):
        super().__init__()
        self.linear = PyroModule[nn.Linear](3, 1)
        self.noise = PyroParam(torch.tensor(1.0), dist.constraints.positive)

    def forward(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("obs", dist.Normal(self.linear(x).squeeze(-1), self.noise), obs=y)


def test_import_changes_no_pyro_setting():
    code = ("import pyro; before = pyro.settings.get(); import ppl_vae; "
            "assert pyro.settings.get() == before, (before, pyro.settings.get())")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("make_elbo_object", PYRO_ELBOS)
def test_pyro_svi_steps_on_a_built_pair_and_on_unrelated_code(binary_data, make_elbo_object):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, batch_size=50, quiet=True,
                device="cpu")  # the engine ran in this process, and left no setting behind
    assert pyro.settings.get("module_local_params") is False
    x = binary_data.train[:20]
    svi = SVI(pair.model, pair.guide, pyro.optim.Adam({"lr": 1e-3}),
              make_elbo_object(max_plate_nesting=1))
    losses = [svi.step(x) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    pyro.clear_param_store()
    regression, features = UnrelatedRegression(), torch.randn(30, 3)
    target = features.sum(-1)
    svi = SVI(regression, lambda x, y=None: None, pyro.optim.Adam({"lr": 1e-2}),
              make_elbo_object(max_plate_nesting=1))
    assert all(torch.isfinite(torch.tensor([svi.step(features, target) for _ in range(3)])))


def test_pyro_trace_elbo_object_gives_the_same_loss_and_training_as_trace(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp", seed=3)
    x = binary_data.train[:30]
    values = []
    for elbo in ("trace", Trace_ELBO(), JitTrace_ELBO()):
        estimator = as_estimator(elbo)
        with pair.scope():
            pyro.set_rng_seed(7)
            values.append(estimator(pair.model, pair.guide, x))
    assert torch.allclose(values[0], values[1], rtol=1e-6)
    assert abs(float(values[2] - values[0])) < 2.0  # JIT: the same bound, other draws
    with pair.scope():  # TraceGraph: the value of -ELBO (its gradient is Pyro's surrogate's)
        pyro.set_rng_seed(7)
        graph = as_estimator(TraceGraph_ELBO())(pair.model, pair.guide, x)
    assert torch.allclose(graph, values[0], rtol=1e-6)
    runs = []
    for elbo in ("trace", Trace_ELBO()):
        pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp", seed=3)
        runs.append(ppl_vae.fit(pair.model, pair.guide, binary_data, elbo=elbo, epochs=2,
                                batch_size=20, quiet=True, device="cpu", seed=1))
    for a, b in zip(runs[0].metrics, runs[1].metrics):
        assert a["train_objective"] == pytest.approx(b["train_objective"], rel=1e-5)
    assert runs[1].config.estimator["elbo"] == "pyro.infer.Trace_ELBO"
    rebuilt = from_spec(runs[1].config.estimator)
    assert isinstance(rebuilt.elbo, Trace_ELBO)


def test_callables_and_tracegraph_train_and_renyi_object_is_refused(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")

    def my_loss(model, guide, x, **inputs):
        return TraceMeanField_ELBO().differentiable_loss(model, guide, x, **inputs)

    for elbo in (my_loss, TraceGraph_ELBO()):
        run = ppl_vae.fit(pair.model, pair.guide, binary_data, elbo=elbo, epochs=1,
                          batch_size=50, quiet=True, device="cpu")
        assert run.metrics[-1]["train_objective"] < 0
    assert run.config.estimator["elbo"] == "pyro.infer.TraceGraph_ELBO"
    with pytest.raises(PplVaeError, match="elbo='renyi', alpha=0.3, particles=4"):
        as_estimator(RenyiELBO(alpha=0.3, num_particles=4))
    with pytest.raises(PplVaeError, match="user loss function 'test_callables"):
        make_elbo("callable:" + my_loss.__qualname__)


# --- enumeration --------------------------------------------------------------------------

MEANS = torch.tensor([-2.0, 0.5, 3.0])
PRIOR = torch.tensor([0.2, 0.5, 0.3])
NOISE = 0.7


class MixtureModel(PyroModule):
    """y ~ Cat(π), z ~ N(μ_y, 1), x ~ N(z, σ²): p(x) = Σ_y π_y N(x; μ_y, 1 + σ²) exactly."""

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(PRIOR))
            z = pyro.sample("z", dist.Normal(MEANS[y], 1.0))
            pyro.sample("x", dist.Normal(z, NOISE), obs=x)


class ExactGivenY(PyroModule):
    """q(y | x) learned (enumerated), q(z | x, y) the exact posterior given y."""

    def __init__(self, enumerate_y=True):
        super().__init__()
        self.logits = nn.Linear(1, 3)
        self.infer = {"enumerate": "parallel"} if enumerate_y else {}

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=self.logits(x[:, None])),
                            infer=self.infer)
            precision = 1.0 + 1.0 / NOISE**2
            loc = (MEANS[y] + x / NOISE**2) / precision
            pyro.sample("z", dist.Normal(loc, precision**-0.5))


def _mixture_data(n=40):
    x = MEANS[torch.multinomial(PRIOR, n, replacement=True)] + torch.randn(n) * 1.2
    return x


def test_evaluate_sums_an_enumerated_guide_site_exactly():
    x = _mixture_data()
    exact = torch.logsumexp(dist.Normal(MEANS, (1 + NOISE**2) ** 0.5).log_prob(x[:, None])
                            + PRIOR.log(), -1).mean()
    result = ppl_vae.evaluate(MixtureModel(), ExactGivenY(), x, iw_samples=1)
    assert result["log_likelihood"] == pytest.approx(float(exact), abs=1e-5)  # one draw: exact
    assert result["elbo"] < result["log_likelihood"]  # q(y|x) is not the posterior
    sampled = ppl_vae.evaluate(MixtureModel(), ExactGivenY(enumerate_y=False), x, iw_samples=1)
    assert abs(sampled["log_likelihood"] - float(exact)) > 0.01  # sampling y is not exact


def test_trace_sums_marked_sites_and_meanfield_refuses_them():
    x = _mixture_data()
    model, guide = MixtureModel(), ExactGivenY()
    ours = make_elbo("trace")
    with ppl_vae.engine_settings(model, guide):
        pyro.set_rng_seed(0)
        loss = ours(model, guide, x)
        pyro.set_rng_seed(0)
        expected = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x)
        assert torch.allclose(loss, expected / x.shape[0])
        elbo = ppl_vae.evaluate(model, guide, x, iw_samples=1)["elbo"]
        assert float(loss) == pytest.approx(-elbo, abs=1e-5)  # z | y is exact: no noise left
        with pytest.raises(PplVaeError, match="TraceEnum_ELBO"):
            make_elbo("meanfield")(model, guide, x)
        with pytest.raises(PplVaeError, match="marked for enumeration"):
            make_elbo("iwae")(model, guide, x)


class GMMPriorVAE(PyroModule):
    """c ~ Cat(π) summed out in the model, z | c ~ N(μ_c, I), x | z ~ Bernoulli(f(z))."""

    def __init__(self, pixels=64, latent=2, clusters=3):
        super().__init__()
        self.means = nn.Parameter(torch.randn(clusters, latent))
        self.weights = nn.Parameter(torch.zeros(clusters))
        self.decoder = nn.Linear(latent, pixels)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.weights),
                            infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(self.means[c], 1.0).to_event(1))
            logits = self.decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class Encoder(PyroModule):
    def __init__(self, pixels=64, latent=2):
        super().__init__()
        self.net = nn.Linear(pixels, 2 * latent)

    def forward(self, x):
        loc, raw = self.net(x.flatten(1)).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))


def test_gmm_prior_vae_loss_equals_the_hand_marginalized_bound(binary_data):
    model, guide, x = GMMPriorVAE(), Encoder(), binary_data.train[:16]
    pyro.set_rng_seed(4)
    loss = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x)
    pyro.set_rng_seed(4)
    q = pyro.poutine.trace(guide).get_trace(x).nodes["z"]
    z = q["value"]
    log_prior = torch.logsumexp(model.weights.log_softmax(0)
                                + dist.Normal(model.means, 1.0).to_event(1).log_prob(z[:, None]),
                                -1)
    log_lik = dist.Bernoulli(logits=model.decoder(z).reshape(x.shape)).to_event(3).log_prob(x)
    hand = -(log_lik + log_prior - q["fn"].log_prob(z)).sum()
    assert torch.allclose(loss, hand, rtol=1e-5)
    pyro.set_rng_seed(4)
    result = ppl_vae.evaluate(model, guide, x, iw_samples=1)
    assert result["elbo"] == pytest.approx(-float(hand) / 16, rel=1e-5)
    run = ppl_vae.fit(model, guide, binary_data, elbo=TraceEnum_ELBO(max_plate_nesting=1),
                      epochs=6, batch_size=20, lr=2e-2, quiet=True, device="cpu")
    assert run.metrics[-1]["train_objective"] > run.metrics[0]["train_objective"] + 1.0


# --- errors a Pyro user understands ---------------------------------------------------------

def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_autoguide_of_unindexed_local_latents_is_told_to_subsample(binary_data):
    model = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp").model
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, AutoNormal(model), binary_data, epochs=1, quiet=True, device="cpu")
    assert "AutoNormal keeps one value per example of the local site(s) ['z']" in \
        _one_line(error)
    assert "create_plates=" in _one_line(error)


def test_a_plate_with_another_name_is_told_to_rename(binary_data):
    def model(x):
        with pyro.plate("batch", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(0.5).expand(x.shape[1:]).to_event(3), obs=x)

    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, lambda x: None, binary_data, epochs=1, quiet=True, device="cpu")
    assert "rename your plate to 'data'" in _one_line(error)


@pytest.mark.parametrize("given", ["tensor", "loader"])
def test_tensors_and_loaders_are_told_to_use_from_tensors(binary_data, given):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    data = binary_data.train if given == "tensor" else torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(binary_data.train))
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, data, epochs=1, quiet=True, device="cpu")
    assert "ppl_vae.data.from_tensors" in _one_line(error)
    dataset = ppl_vae.data.from_tensors(binary_data.train)
    assert ppl_vae.fit(pair.model, pair.guide, dataset, epochs=1, quiet=True, device="cpu",
                       batch_size=30).metrics


class ShapeOfX(PyroModule):
    """Written as most Pyro tutorials write it: reshape(x.shape), one particle only."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2, 64)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            logits = self.decoder(z).reshape(x.shape)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


def test_a_pair_not_vectorized_over_particles_is_evaluated_in_a_loop(binary_data):
    model, guide = ShapeOfX(), Encoder()
    run = ppl_vae.fit(model, guide, binary_data, epochs=1, batch_size=20, quiet=True,
                      device="cpu")
    with pytest.warns(PplVaeWarning, match="one at a time"):
        result = run.evaluate(binary_data.test, iw_samples=8)
    assert result["elbo"] <= result["log_likelihood"]
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, guide, binary_data, elbo="iwae", epochs=1, quiet=True, device="cpu")
    assert "reshape(*z.shape[:-1], *x.shape[1:])" in _one_line(error)
