"""Every registered bound's value against its closed form on a linear-Gaussian pair.

``p(z) = N(0, I)``, ``p(x | z) = N(z, I)``: ``p(x) = N(x; 0, 2 I)``, ``p(z | x) = N(x/2, I/2)``.
The guide ``q(z | x) = N(x/2 + δ, s² I)`` misses the posterior, so each bound lies below
``log p(x)`` by a known amount, which ``K = 20000`` draws meet to about 0.01 nats
(per dimension, ``v₁ = s²``, ``v₂ = 1/2``, ``v_α = α v₂ + (1 - α) v₁``)::

    Rényi, α ∈ [0, 1):  L_α → log p(x) - D_α(q || p(z | x)),
        D_α = α δ² / (2 v_α) + log(v_α / (v₁^(1-α) v₂^α)) / (2 (1 - α))     (D_0 = 0: IWAE)
    ELBO (α = 1):       log p(x) - KL(q || p(z | x))

(Li & Turner 2016, eq. 5; the Gaussian Rényi divergence in closed form.) Here the limits
are -3.01 (IWAE), -3.20 (α = 0.3), -3.52 (α = 0.7), -3.63 (α = 0.8) and -3.87 (ELBO): a
bound computed with α for 1 - α, without its log K, or as IWAE for the ELBO lands far
outside the 0.03 allowed.

A latent ``w ~ N(0, I)`` shared by the batch (outside the ``"data"`` plate), with the guide
``q(w) = N(m, s² I)``, counts once per batch: per example the ELBO is
``(1/B) [Σ_n E_q log N(x_n; w, I) - KL(q(w) || N(0, I))]``, with
``E_q log N(x; w, 1) = -½ log 2π - ½ ((x - m)² + s²)`` per dimension.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_vae.estimators import create

DELTA, SCALE, PARTICLES = 0.6, 0.9, 20000
X = torch.tensor([[0.7, -1.2]])


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def guide(x):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x / 2 + DELTA, SCALE).to_event(1))


def closed_form(alpha: float) -> float:
    """The module docstring's limit of ``L_α`` for the example ``X``."""
    log_px = float(dist.Normal(0.0, math.sqrt(2.0)).log_prob(X).sum())
    v1, v2, dims = SCALE**2, 0.5, X.numel()
    if alpha == 1:
        kl = 0.5 * (v1 / v2 + DELTA**2 / v2 - 1 - math.log(v1 / v2))
        return log_px - dims * kl
    va = alpha * v2 + (1 - alpha) * v1
    divergence = alpha * DELTA**2 / (2 * va) + math.log(va / (v1 ** (1 - alpha) * v2**alpha)) / (
        2 * (1 - alpha))
    return log_px - dims * divergence


@pytest.mark.parametrize("name, options, alpha", [
    ("iwae", {}, 0.0), ("renyi", {"alpha": 0.3}, 0.3), ("renyi", {"alpha": 0.8}, 0.8),
    ("iwae-dreg", {}, 0.0), ("iwae-stl", {}, 0.0), ("renyi-dreg", {"alpha": 0.3}, 0.3),
    ("trace", {}, 1.0), ("meanfield", {}, 1.0), ("trace-stl", {}, 1.0)])
def test_the_bound_meets_its_closed_form(name, options, alpha):
    value = -float(create(name, particles=PARTICLES, **options)(model, guide, X))
    assert value == pytest.approx(closed_form(alpha), abs=0.03)



GLOBAL_LOC, GLOBAL_SCALE = 0.4, 0.3
XS = torch.tensor([[0.5, -0.3], [1.4, 0.2], [-0.6, 0.9], [0.1, 1.1]])


def global_model(x):
    w = pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(w, 1.0).to_event(1), obs=x)


def global_guide(x):
    pyro.sample("w", dist.Normal(torch.full((2,), GLOBAL_LOC), GLOBAL_SCALE).to_event(1))


@pytest.mark.parametrize("name", ["trace", "meanfield"])
def test_a_global_latent_counts_once_per_batch(name):
    m, s = GLOBAL_LOC, GLOBAL_SCALE
    likelihood = (-0.5 * math.log(2 * math.pi) - 0.5 * ((XS - m) ** 2 + s**2)).sum()
    kl = 2 * (0.5 * (s**2 + m**2 - 1) - math.log(s))
    value = -float(create(name, particles=PARTICLES)(global_model, global_guide, XS))
    assert value == pytest.approx(float(likelihood - kl) / XS.shape[0], abs=0.02)
