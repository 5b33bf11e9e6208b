"""Pyro's AutoGuides as Pyro's SVI trains them: global latents, and per-example values of
local latents under a subsampled ``"data"`` plate (``create_plates``).

An AutoGuide samples each latent through an auxiliary site (``mu_unconstrained``, marked
``is_auxiliary``) and hands the model a ``Delta`` carrying ``log |det J|``; the guide's
density is the sum of both, as Pyro's ELBOs count it. The known answers:

- the model ``mu ~ N(0, P² I)``, ``tau ~ Gamma(2, 1)``, ``x_n | mu ~ N(mu, σ² I)`` with
  ``q(mu) = N(m, s²)``, ``q(tau) = LogNormal(a, b)`` has the closed-form ELBO

      Σ_n Σ_d [-½ log 2πσ² - ((x_nd - m_d)² + s_d²) / 2σ²]
      + Σ_d [-½ log 2πP² - (m_d² + s_d²) / 2P²] + Σ_d ½ log 2πe s_d²
      + (a - exp(a + b²/2)) + (a + ½ log 2πe b²)

  (``E log Gamma(tau; 2, 1) = E log tau - E tau``; a log-normal's entropy is
  ``a + ½ log 2πe b²``); a batch of ``B`` of ``N`` carries the global terms ``B/N`` times;
- ``z_n ~ N(0, I)``, ``x_n | z_n ~ N(z_n, I)``: each example's posterior is
  ``N(x_n / 2, I / 2)`` and ``p(x_n) = N(0, 2 I)``.
"""

import math
import re

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value
from pyro.nn import PyroModule, PyroParam

import ppl_vae
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, create
from ppl_vae.reporting.diagnostics import diagnose
from ppl_vae.traces import particle_traces

D, PRIOR_SD, NOISE = 2, 3.0, 0.7
PHI_1 = 0.8413447460685429  # Φ(1): the quantile one sd above a normal's median


def _global_data(n: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n + 4, D, generator=g) * NOISE + torch.tensor([1.0, -2.0])
    return ppl_vae.data.from_tensors(x[:n], x[n:])


def global_model(x):
    mu = pyro.sample("mu", dist.Normal(torch.zeros(D), PRIOR_SD).to_event(1))
    pyro.sample("tau", dist.Gamma(2.0, 1.0))  # off the real line: the Jacobian counts
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, NOISE).to_event(1), obs=x)


def _closed_form_loss(guide, x_batch, n_total):
    """The loss per example of a batch (module docstring), from the guide's own marginals."""
    median, upper = guide.median(), guide.quantiles([PHI_1])
    m, s = median["mu"], upper["mu"][0] - median["mu"]
    a, b = median["tau"].log(), upper["tau"][0].log() - median["tau"].log()
    likelihood = (-0.5 * math.log(2 * math.pi * NOISE**2)
                  - ((x_batch - m) ** 2 + s**2) / (2 * NOISE**2)).sum()
    shared = ((-0.5 * math.log(2 * math.pi * PRIOR_SD**2) - (m**2 + s**2) / (2 * PRIOR_SD**2)
               + 0.5 * torch.log(2 * math.pi * math.e * s**2)).sum()
              + a - torch.exp(a + b**2 / 2) + a + 0.5 * torch.log(2 * math.pi * math.e * b**2))
    batch = x_batch.shape[0]
    return -(likelihood + batch / n_total * shared) / batch


@pytest.mark.parametrize("elbo", ["trace", "meanfield"])
@pytest.mark.parametrize("make", [AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal])
@pytest.mark.parametrize("batch", [8, 3])
def test_the_loss_with_an_autoguide_is_the_closed_form_elbo(make, elbo, batch):
    data = _global_data(8)
    pyro.set_rng_seed(1)
    start = init_to_value(values={"mu": torch.tensor([0.5, -1.0]), "tau": torch.tensor(3.0)})
    guide = make(global_model, init_loc_fn=start, init_scale=0.3)
    pair = ppl_vae.Pair(global_model, guide)
    x = data.train[:batch]
    with pair.scope(), torch.no_grad():
        estimator = create(elbo, particles=20000)
        ours = estimator.loss(pair, Batch(x, {}, dataset_size=8))
        exact = _closed_form_loss(guide, x, 8)
    assert float(ours) == pytest.approx(float(exact), abs=0.02)


@pytest.mark.parametrize("make", [AutoNormal, AutoDiagonalNormal, AutoMultivariateNormal])
def test_an_autoguide_of_a_global_mean_learns_its_exact_posterior(make):
    n = 40
    data = _global_data(n)

    def model(x):
        mu = pyro.sample("mu", dist.Normal(torch.zeros(D), PRIOR_SD).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, NOISE).to_event(1), obs=x)

    precision = 1 / PRIOR_SD**2 + n / NOISE**2
    exact_mean = data.train.sum(0) / NOISE**2 / precision
    guide = make(model)
    run = ppl_vae.fit(model, guide, data, elbo="meanfield", particles=32, epochs=200,
                      batch_size=n, lr=0.05, lr_schedule="cosine", eval_every=200, quiet=True,
                      report=False, device="cpu", seed=0)
    with run.pair.scope():
        median, upper = guide.median(), guide.quantiles([PHI_1])
    assert torch.allclose(median["mu"], exact_mean, atol=0.02)
    assert torch.allclose(upper["mu"][0] - median["mu"],
                          torch.full((D,), precision**-0.5), rtol=0.08)


N_LOCAL = 24


def indexed_model(x, index):
    with pyro.plate("data", N_LOCAL, subsample=index):
        z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def same_plate(x, index):
    return pyro.plate("data", N_LOCAL, subsample=index)


def _local_data():
    x = torch.randn(N_LOCAL + 6, D, generator=torch.Generator().manual_seed(1)) * 2
    return ppl_vae.data.from_tensors(x[:N_LOCAL], x[N_LOCAL:])


def test_autonormal_with_the_models_plate_learns_each_examples_posterior_in_minibatches():
    data = _local_data()
    guide = AutoNormal(indexed_model, create_plates=same_plate)
    ppl_vae.fit(indexed_model, guide, data, inputs=["index"], elbo="meanfield", particles=8,
                epochs=300, batch_size=6, lr=0.05, lr_schedule="cosine", eval_every=300,
                quiet=True, report=False, device="cpu", seed=0)
    index = torch.arange(N_LOCAL)
    with torch.no_grad():
        median = guide.median(data.train, index)["z"]
        sd = guide.quantiles([PHI_1], data.train, index)["z"][0] - median
    assert median.shape == (N_LOCAL, D)  # one row per example, never a shared one
    assert torch.allclose(median, data.train / 2, atol=0.1)
    assert torch.allclose(sd, torch.full_like(sd, math.sqrt(0.5)), atol=0.1)
    result = ppl_vae.evaluate(indexed_model, guide, data.train, iw_samples=200,
                              inputs={"index": index})
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(data.train).sum(-1).mean()
    assert result["log_likelihood"] == pytest.approx(float(exact), abs=0.05)


@pytest.mark.parametrize("make, settings, message", [
    (lambda m: AutoNormal(m), {}, "create_plates=lambda x, index"),
    (lambda m: AutoDiagonalNormal(m), {}, "AutoDiagonalNormal puts every latent in one vector"),
    (lambda m: AutoDelta(m, create_plates=lambda x: pyro.plate("data", x.shape[0])),
     {"inputs": None}, "keeps one value per example of the local site(s) ['z']"),
])
def test_autoguides_that_cannot_follow_the_batches_are_refused_in_one_line(make, settings,
                                                                           message):
    data = _local_data()

    def plain_model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(D), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    indexed = settings.get("inputs", ["index"]) is not None
    model = indexed_model if indexed else plain_model
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, make(model), data, inputs=["index"] if indexed else None, epochs=1,
                    batch_size=6, quiet=True, report=False, device="cpu")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_guide_drawing_its_own_subsample_is_refused():
    def guide(x, index):
        loc = pyro.param("loc", torch.zeros(N_LOCAL, D))
        with pyro.plate("data", N_LOCAL, subsample_size=x.shape[0]) as rows:
            pyro.sample("z", dist.Normal(loc[rows], 1.0).to_event(1))

    with pytest.raises(PplVaeError, match=r"pyro.plate\('data', 24, subsample_size=6\) draws "
                                          "its own rows"):
        ppl_vae.fit(indexed_model, guide, _local_data(), inputs=["index"], epochs=1,
                    batch_size=6, quiet=True, report=False, device="cpu")


def test_an_autoguide_whose_plates_draw_their_own_subsample_is_refused():
    guide = AutoNormal(indexed_model, create_plates=lambda x, index: pyro.plate(
        "data", N_LOCAL, subsample_size=x.shape[0]))
    with pytest.raises(PplVaeError, match="draws its own subsample of examples, but the "
                                          "model's is given"):
        ppl_vae.fit(indexed_model, guide, _local_data(), inputs=["index"], epochs=1,
                    batch_size=6, quiet=True, report=False, device="cpu")


def test_evaluate_counts_the_auxiliary_sites_of_global_latents():
    data = _global_data(8)
    pyro.set_rng_seed(2)
    start = init_to_value(values={"mu": data.train.mean(0), "tau": torch.tensor(3.0)})
    guide = AutoNormal(global_model, init_loc_fn=start, init_scale=0.3)  # little MC noise
    result = ppl_vae.evaluate(global_model, guide, data.train, iw_samples=300)
    with torch.no_grad():
        exact = -_closed_form_loss(guide, data.train, 8)
    assert result["elbo"] == pytest.approx(float(exact), abs=0.02)  # q's entropy: 0.08
    assert result["log_likelihood"] is None  # global latents: no per-example weight


def test_a_fresh_autoguide_runs_in_its_module_context_from_its_first_call():
    """Its parameters are made on that call; read without the context, the plate could not
    index them (the engine runs plain PyroModules by ``forward``)."""
    guide = AutoNormal(indexed_model, create_plates=same_plate)
    x, index = _local_data().train[:6], torch.arange(6)
    with engine_settings(indexed_model, guide):
        _, guide_trace = particle_traces(indexed_model, guide, x, 1, 1, plate_one=False,
                                         inputs={"index": index})
    assert guide_trace.nodes["z"]["value"].shape == (6, D)


class IndexedModuleGuide(PyroModule):
    """A user's PyroModule with Pyro's subsampling idiom: a ``PyroParam`` with
    ``event_dim``, indexed by the plate through the module's context."""

    def __init__(self):
        super().__init__()
        self.loc = PyroParam(torch.zeros(N_LOCAL, D), event_dim=1)

    def forward(self, x, index):
        with pyro.plate("data", N_LOCAL, subsample=index):
            pyro.sample("z", dist.Normal(self.loc, 1.0).to_event(1))


def test_a_pyro_module_with_event_dim_parameters_is_indexed_by_the_plate():
    guide = IndexedModuleGuide()
    x, index = _local_data().train[:6], torch.arange(6, 12)
    with engine_settings(indexed_model, guide):
        _, guide_trace = particle_traces(indexed_model, guide, x, 1, 1, plate_one=False,
                                         inputs={"index": index})
    assert guide_trace.nodes["z"]["value"].shape == (6, D)


@pytest.mark.parametrize("elbo, message", [
    ("iwae-stl", "auxiliary site(s) ['z_unconstrained']"),
    ("tcvae", "needs exactly one reparameterized latent site per example"),
])
def test_estimators_that_rescore_the_guides_draws_refuse_an_autoguide(elbo, message):
    guide = AutoNormal(indexed_model, create_plates=same_plate)
    with pytest.raises(PplVaeError, match=re.escape(message)):
        ppl_vae.fit(indexed_model, guide, _local_data(), inputs=["index"], elbo=elbo,
                    epochs=1, batch_size=6, quiet=True, report=False, device="cpu")


def test_iwae_trains_an_autoguide_with_its_auxiliary_sites_in_the_weights():
    data = _local_data()
    guide = AutoNormal(indexed_model, create_plates=same_plate)
    run = ppl_vae.fit(indexed_model, guide, data, inputs=["index"], elbo="iwae", particles=4,
                      epochs=2, batch_size=6, quiet=True, report=False, device="cpu")
    assert math.isfinite(run.metrics[-1]["train_objective"])


def test_a_run_with_per_example_values_is_diagnosed_on_its_training_rows(tmp_path):
    data = _local_data()
    guide = AutoNormal(indexed_model, create_plates=same_plate)
    ppl_vae.fit(indexed_model, guide, data, inputs=["index"], elbo="meanfield", particles=8,
                epochs=150, batch_size=6, lr=0.05, lr_schedule="cosine", eval_every=150,
                quiet=True, device="cpu", seed=0, out=tmp_path)
    report = diagnose(tmp_path, n_examples=10, draws=200, metrics="none", quiet=True,
                      model=indexed_model, guide=guide, data=data)
    assert report["settings"]["split"] == "train" and report["sites"] == {"z": [D]}
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(data.train[:10]).sum(-1).mean()
    assert report["psis"]["is_log_likelihood"] == pytest.approx(float(exact), abs=0.1)
    assert "10 training examples" in (tmp_path / "diagnostics" / "report.md").read_text()
