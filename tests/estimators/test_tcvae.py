"""β-TCVAE (ppl_vae/estimators/tcvae.py): the KL decomposition against Gaussian known answers,
the batch estimate of q(z) against the exact mixture, the data-set size reaching the estimator
through the Batch, and the objective end to end.

The pair: ``q(z | x) = N(x, s² I)`` (x carries the posterior mean), ``p(z) = N(0, I)``.
With means ``μ_j ~ N(0, Σ)`` the aggregate posterior is close to ``N(0, C)``, ``C = Σ + s² I``:

    TC = -½ log det R   (R the correlation matrix of C),   MI = ½ log det C - ½ K log s²,
    dimKL = Σ_d ½ (C_dd - 1 - log C_dd),   KL = E_j KL(N(μ_j, s² I) || N(0, I)).
"""

import json
import math
import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, create
from ppl_vae.estimators.tcvae import decompose, mixture_weights
from ppl_vae.pair import Pair

S = 0.5
NARROW = 0.05
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]])


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x, S).to_event(1))


def full_covariance_guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(x, S**2 * torch.eye(x.shape[1])))


def recording_guide(scale, draws):
    """``q(z | x) = N(x, scale² I)`` that appends each draw of ``z`` to ``draws``."""
    def guide(x):
        with pyro.plate("data", x.shape[0]):
            draws.append(pyro.sample("z", dist.Normal(x, scale).to_event(1)))
    return guide


def _parts(means, dataset_size):
    nesting, plan = Pair(model, guide).plan(means)
    return decompose(model, guide, Batch(means, dataset_size=dataset_size), 1, nesting, plan)


def test_parts_match_the_gaussian_aggregate_and_add_up_to_the_kl():
    torch.manual_seed(0)
    n = 3000
    means = torch.distributions.MultivariateNormal(torch.zeros(2), COV).sample((n,))
    c = COV + S**2 * torch.eye(2)
    correlation = c / c.diag().sqrt().outer(c.diag().sqrt())
    parts = _parts(means, n)  # the batch is the data set: the exact mixture q(z)
    assert float(parts.total_correlation.mean()) == pytest.approx(
        float(-0.5 * torch.logdet(correlation)), abs=0.04)
    assert float(parts.mutual_information.mean()) == pytest.approx(
        float(0.5 * torch.logdet(c) - math.log(S**2)), abs=0.05)
    assert float(parts.dimension_kl.mean()) == pytest.approx(
        float(sum(0.5 * (c[d, d] - 1 - torch.log(c[d, d])) for d in range(2))), abs=0.02)
    kl = 0.5 * (2 * S**2 + means.pow(2).sum(1) - 2 - 2 * math.log(S**2))
    total = parts.mutual_information + parts.total_correlation + parts.dimension_kl
    assert float(total.mean()) == pytest.approx(float(kl.mean()), abs=3 * float(
        total.std()) / math.sqrt(n))


def test_a_shared_factorized_posterior_has_no_mi_and_no_tc():
    parts = _parts(torch.zeros(50, 3), 50)  # every q(z | x_j) is the same N(0, s² I)
    assert parts.mutual_information.abs().max() < 1e-5
    assert parts.total_correlation.abs().max() < 1e-5


def test_one_dimension_has_no_total_correlation_in_any_batch():
    """With one dimension ``q(z_i)`` and its only marginal are the same estimate: ``TC_i = 0``
    for every draw, here in a batch of 8 from 400 (the marginals' own sum over the batch)."""
    torch.manual_seed(2)
    parts = _parts(torch.randn(400, 1)[:8], 400)
    assert parts.total_correlation.abs().max() < 1e-5


def test_batches_of_a_larger_data_set_estimate_the_same_parts():
    torch.manual_seed(1)
    n = 3000
    means = torch.distributions.MultivariateNormal(torch.zeros(2), COV).sample((n,))
    whole = _parts(means, n)
    batches = [_parts(means[torch.randperm(n)[:300]], n) for _ in range(10)]
    for name in ("mutual_information", "total_correlation"):
        mean = sum(float(getattr(b, name).mean()) for b in batches) / len(batches)
        assert mean == pytest.approx(float(getattr(whole, name).mean()), abs=0.06)


def test_the_batch_estimate_of_q_z_is_unbiased_in_density_space():
    """``E[q̂(z_i)] = q(z_i) = (1/N) Σ_n q(z_i | x_n)`` over random batches, as
    ``E[q̂(z_i) / q(z_i)] = 1`` against the exact mixture over all ``N`` examples.

    Narrow posteriors (s = 0.05 among N = 400 means from N(0, I)) make the draw's own
    example about 60 % of ``q(z_i)``, so its weight ``1/N`` is measured; batches of
    ``B = 8 ≪ N`` make it differ ~50-fold from the others' ``(N - 1)/(N (B - 1))``; every
    position of each shuffled batch is checked, so the example sits at position 0 in one
    check of 8. The ratio's mean is 1.04 here, 0.50 with ``N`` ×10, 6.5 with ``N`` ÷10 and 31
    with the reference implementation's weights (1/N in column 0, not on the diagonal); its
    Monte Carlo error is ≈ 0.05. (In log space the mean is biased low: Jensen.)
    """
    torch.manual_seed(0)
    n, b, particles = 400, 8, 4
    means = torch.randn(n, 2)
    draws = []
    guide = recording_guide(NARROW, draws)
    nesting, plan = Pair(model, guide).plan(means[:b])
    ratios = []
    for _ in range(400):
        x = means[torch.randperm(n)[:b]]
        parts = decompose(model, guide, Batch(x, dataset_size=n), particles, nesting, plan)
        z = draws[-1]  # (K, B, 2)
        # MI_i = log q(z_i | x_i) - log q̂(z_i)
        log_q_hat = dist.Normal(x, NARROW).log_prob(z).sum(-1) - parts.mutual_information
        log_q = torch.logsumexp(dist.Normal(means, NARROW).log_prob(z.unsqueeze(-2)).sum(-1),
                                -1) - math.log(n)
        ratios.append((log_q_hat - log_q).exp())
    assert float(torch.stack(ratios).mean()) == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("batch_size, dataset_size", [(8, 400), (2, 3), (6, 6)])
def test_each_row_of_weights_is_a_mixture_with_1_over_n_on_the_draws_own_example(
        batch_size, dataset_size):
    weights = mixture_weights(batch_size, dataset_size, torch.zeros(())).exp()
    others = weights[~torch.eye(batch_size, dtype=torch.bool)]
    assert torch.allclose(weights.diagonal(), torch.tensor(1 / dataset_size))
    assert torch.allclose(others, others[0])  # the others share the remaining mass equally
    assert torch.allclose(weights.sum(-1), torch.tensor(1.0))


def test_weight_one_is_the_elbo_and_the_weight_scales_the_tc():
    x = torch.randn(40, 2)
    pyro.set_rng_seed(3)
    trace = float(create("trace")(model, guide, x))
    pyro.set_rng_seed(3)
    assert float(create("tcvae", tc_weight=1.0)(model, guide, x)) == pytest.approx(trace, rel=1e-6)
    pyro.set_rng_seed(3)
    tc = float(_parts(x, 40).total_correlation.mean())
    pyro.set_rng_seed(3)
    weighted = float(create("tcvae", tc_weight=5.0)(model, guide, x))
    assert weighted == pytest.approx(trace + 4.0 * tc, rel=1e-5)


def test_the_data_set_size_comes_through_the_batch():
    x = torch.randn(40, 2)
    estimator = create("tcvae", tc_weight=5.0)
    values = []
    for n in (40, 4000):
        pyro.set_rng_seed(0)
        values.append(float(estimator.loss(Pair(model, guide), Batch(x, dataset_size=n))))
    assert values[0] != pytest.approx(values[1])


def test_refuses_a_guide_that_does_not_factorize():
    with pytest.raises(PplVaeError, match="factorizes over its dimensions"):
        create("tcvae")(model, full_covariance_guide, torch.randn(8, 2))


def test_an_unknown_option_names_the_ones_it_takes():
    with pytest.raises(PplVaeError, match="takes no --alpha; its options: --particles, "
                                          "--tc-weight"):
        create("tcvae", alpha=0.5)


def test_trains_from_the_cli_with_its_flag(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "ppl_vae", "train", "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--tc-weight" in help_text and "tcvae" in help_text
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "ppl_vae", "train", "--model", "vae", "--data",
                    "shapes", "--size", "32", "--n", "300", "--epochs", "1", "--latent-dim",
                    "3", "--elbo", "tcvae", "--tc-weight", "4", "--eval-examples", "20",
                    "--iw-samples", "4", "--out", str(out), "--quiet"], check=True,
                   capture_output=True)
    config = json.loads((out / "config.json").read_text())
    assert config["estimator"] == {"elbo": "tcvae", "particles": 1, "tc_weight": 4.0}
