"""Conditioning inputs (labels, partly known) and global latents, against hand computations."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule
from torch import nn
from torch.distributions import kl_divergence
from torch.nn.functional import one_hot, softplus

import ppl_vae
from ppl_vae.estimators import Batch, as_estimator, make_elbo

# --- global latents ---------------------------------------------------------------------------

PRIOR_SD = 0.1


class GlobalMean(PyroModule):
    """θ ~ N(0, 0.1²) shared by all examples; x_n ~ N(θ, 1)."""

    def forward(self, x):
        theta = pyro.sample("theta", dist.Normal(0.0, PRIOR_SD))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(theta.unsqueeze(-1), 1.0).to_event(1), obs=x)


class GlobalGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.loc, self.raw = nn.Parameter(torch.tensor(0.0)), nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        pyro.sample("theta", dist.Normal(self.loc, softplus(self.raw)))


def _global_data(n=100):
    return ppl_vae.data.from_tensors(1.5 + torch.randn(n, 1), test=1.5 + torch.randn(20, 1))


@pytest.mark.parametrize("elbo", ["trace", "meanfield", Trace_ELBO()])
def test_a_global_latent_counts_once_per_data_set(elbo):
    model, guide, data = GlobalMean(), GlobalGuide(), _global_data()
    x, n = data.train[:10], data.train.shape[0]
    with ppl_vae.engine_settings(model, guide):
        pyro.set_rng_seed(2)
        loss = as_estimator(elbo).loss(ppl_vae.Pair(model, guide), Batch(x, dataset_size=n))
    pyro.set_rng_seed(2)
    q = dist.Normal(guide.loc, softplus(guide.raw))
    theta, prior = q.rsample(), dist.Normal(0.0, PRIOR_SD)
    local = dist.Normal(theta, 1.0).log_prob(x).sum()
    shared = -kl_divergence(q, prior) if elbo == "meanfield" else \
        prior.log_prob(theta) - q.log_prob(theta)
    hand = -(local + shared * x.shape[0] / n) / x.shape[0]  # (1/B)[(B/N) G + Σ_b L_b]
    assert torch.allclose(loss, hand, rtol=1e-6)


def test_training_a_global_latent_finds_its_exact_posterior():
    """If the prior counted once per batch, the posterior sd would be 0.03, not 0.07."""
    model, guide, data = GlobalMean(), GlobalGuide(), _global_data()
    # the rate anneals to 0, so the last iterate is the optimum rather than a point of Adam's
    # constant-rate jitter (seeds 0-2 give loc within 0.004 of the exact mean)
    run = ppl_vae.fit(model, guide, data, elbo="meanfield", epochs=80, batch_size=10, lr=0.05,
                      lr_schedule="cosine", quiet=True, device="cpu")
    precision = 1 / PRIOR_SD**2 + data.train.shape[0]
    assert float(guide.loc) == pytest.approx(float(data.train.sum()) / precision, abs=0.02)
    assert float(softplus(guide.raw)) == pytest.approx(precision**-0.5, rel=0.25)
    result = run.evaluate(data.test, iw_samples=1)
    assert result["log_likelihood"] is None and "global" in result["log_likelihood_note"]
    with pytest.raises(ppl_vae.PplVaeError, match="sit outside pyro.plate"):
        ppl_vae.fit(model, guide, data, elbo="iwae", epochs=1, quiet=True, device="cpu")


def test_evaluate_reports_the_set_elbo_with_global_terms_once():
    model, guide, data = GlobalMean(), GlobalGuide(), _global_data()
    x = data.test
    pyro.set_rng_seed(5)
    result = ppl_vae.evaluate(model, guide, x, iw_samples=1)
    pyro.set_rng_seed(5)
    q = dist.Normal(guide.loc, softplus(guide.raw))
    theta = q.rsample()
    hand = dist.Normal(theta, 1.0).log_prob(x).sum(-1).mean() \
        + (dist.Normal(0.0, PRIOR_SD).log_prob(theta) - q.log_prob(theta)) / x.shape[0]
    assert result["elbo"] == pytest.approx(float(hand), rel=1e-5)


# --- conditioning inputs ---------------------------------------------------------------------

CLASSES = 3


class SemiSupervised(PyroModule):
    """y ~ Cat (observed where given), z ~ N(0, I), x | y, z ~ Bernoulli; records its calls."""

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2 + CLASSES, 64)
        self.calls = []

    def forward(self, x, y=None):
        self.calls.append(None if y is None else y.shape[0])
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(torch.ones(CLASSES) / CLASSES), obs=y)
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            code = one_hot(y, CLASSES).float().expand(*z.shape[:-1], CLASSES)
            logits = self.decoder(torch.cat([z, code], -1)).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class SemiSupervisedGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.classify, self.encode = nn.Linear(64, CLASSES), nn.Linear(64 + CLASSES, 4)

    def forward(self, x, y=None):
        flat = x.flatten(1)
        with pyro.plate("data", x.shape[0]):
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=self.classify(flat)),
                                infer={"enumerate": "parallel"})
            code = one_hot(y, CLASSES).float()  # (3, 1, 3) where y is enumerated
            batch = torch.broadcast_shapes(code.shape[:-1], flat.shape[:-1])
            both = torch.cat([flat.expand(*batch, 64), code.expand(*batch, CLASSES)], -1)
            loc, raw = self.encode(both).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, softplus(raw) + 1e-3).to_event(1))


def _labelled_data(binary_data, labelled):
    y = torch.arange(120) % CLASSES
    x = torch.cat([binary_data.train, binary_data.test])
    return ppl_vae.data.from_tensors(x[:100], test=x[100:], labels=y[:100], test_labels=y[100:],
                                     labelled=labelled)


def test_partly_known_labels_split_the_batch_and_weight_each_part_by_its_size(binary_data):
    data = _labelled_data(binary_data, 0.3)
    model, guide = SemiSupervised(), SemiSupervisedGuide()
    x, y, known = data.train[:20], data.train_labels[:20], data.known["y"][:20]

    def per_example_loss(model, guide, x, y=None):  # deterministic: 1 per labelled, 3 else
        return x.new_full((x.shape[0],), 1.0 if y is not None else 3.0).sum()

    with ppl_vae.engine_settings(model, guide):
        loss = as_estimator(per_example_loss).loss(
            ppl_vae.Pair(model, guide), Batch(x, {"y": y}, {"y": known}, dataset_size=100))
    assert float(loss) == pytest.approx(float(torch.where(known, 1.0, 3.0).mean()))
    model.calls.clear()
    run = ppl_vae.fit(model, guide, data, inputs=["y"], epochs=4, batch_size=25, lr=1e-2,
                      quiet=True, device="cpu")
    assert None in model.calls and any(c is not None for c in model.calls)
    assert run.metrics[-1]["train_objective"] > run.metrics[0]["train_objective"]
    assert run.config.inputs == {"y": ["int64", []]}


def test_unknown_labels_are_summed_out_as_in_the_marginal_bound(binary_data):
    """The unlabelled part's loss is -Σ_y q(y|x)[ELBO(x, y) - log q(y|x)] (TraceEnum)."""
    model, guide = SemiSupervised(), SemiSupervisedGuide()
    x = binary_data.train[:10]
    with ppl_vae.engine_settings(model, guide):
        pyro.set_rng_seed(0)
        unlabelled = make_elbo("trace")(model, guide, x, y=None)
        pyro.set_rng_seed(0)
        result = ppl_vae.evaluate(model, guide, x, iw_samples=1, inputs={"y": None})
    assert float(unlabelled) == pytest.approx(-result["elbo"], rel=1e-4)


def test_unknown_input_name_is_a_one_line_error(binary_data):
    data = _labelled_data(binary_data, None)
    with pytest.raises(ppl_vae.PplVaeError, match=r"no input\(s\) \['label'\].*has: \['y'\]"):
        ppl_vae.fit(SemiSupervised(), SemiSupervisedGuide(), data, inputs=["label"], epochs=1,
                    quiet=True, device="cpu")
