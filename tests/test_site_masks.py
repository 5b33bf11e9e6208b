"""Missing entries: Pyro's ``obs_mask``, ``poutine.mask`` around an observation, and a guide
that masks other entries than its model.

The known answer: ``z_n ~ N(0, 1)``, ``x_nd | z_n ~ N(z_n, 1)`` for ``d = 1..D``, with only
the entries ``m_nd`` seen. The missing entries integrate out, so

    p(x_n, seen) = N(x_n[m_n]; 0, I + 1 1ᵀ),

and the exact guide is ``q(z_n) = N(Σ_seen x_nd / (1 + k_n), 1 / (1 + k_n))`` (``k_n`` seen
entries) with, under ``obs_mask``, ``q(x_unobserved | z_n) = N(z_n, 1)`` on the missing
entries: every importance weight is then ``p(x_n, seen)``.
"""

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import ppl_vae
from ppl_vae.errors import PplVaeError, PplVaeWarning
from ppl_vae.estimators import Batch, create
from ppl_vae.traces import data_sites

D = 3


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, D, generator=g) * 1.5
    seen = torch.rand(8, D, generator=g) > 0.35
    seen[0] = False  # an example with nothing seen: its evidence is 1
    return x, seen


def _exact_log_evidence(x, seen):
    total = 0.0
    for row, keep in zip(x, seen):
        k = int(keep.sum())
        if k:
            cov = torch.eye(k) + torch.ones(k, k)
            total += float(dist.MultivariateNormal(torch.zeros(k), cov).log_prob(row[keep]))
    return total / x.shape[0]


def masked_obs_model(x, seen):
    with pyro.plate("data", x.shape[0], dim=-2):
        z = pyro.sample("z", dist.Normal(x.new_zeros(1, 1), 1.0))
        with pyro.plate("entries", D, dim=-1):
            pyro.sample("x", dist.Normal(z, 1.0), obs=x, obs_mask=seen)


def _exact_z(x, seen):
    k = seen.sum(-1, keepdim=True)
    return pyro.sample("z", dist.Normal((x * seen).sum(-1, keepdim=True) / (1 + k),
                                        (1 + k) ** -0.5))


def masked_obs_guide(x, seen):
    with pyro.plate("data", x.shape[0], dim=-2):
        z = _exact_z(x, seen)
        with pyro.plate("entries", D, dim=-1), poutine.mask(mask=~seen):
            pyro.sample("x_unobserved", dist.Normal(z, 1.0))


def masked_obs_guide_by_distribution(x, seen):
    """The same guide, masked by ``Distribution.mask`` rather than ``poutine.mask``."""
    with pyro.plate("data", x.shape[0], dim=-2):
        z = _exact_z(x, seen)
        with pyro.plate("entries", D, dim=-1):
            pyro.sample("x_unobserved", dist.Normal(z, 1.0).mask(~seen))


@pytest.mark.parametrize("guide", [masked_obs_guide, masked_obs_guide_by_distribution])
@pytest.mark.parametrize("elbo", ["trace", "iwae"])
def test_obs_mask_with_the_exact_guide_gives_the_evidence_of_the_seen_entries(elbo, guide):
    x, seen = _data()
    pair = ppl_vae.Pair(masked_obs_model, guide)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PplVaeWarning)  # matched masks: no warning
        with pair.scope(), torch.no_grad():
            loss = create(elbo, particles=4).loss(pair, Batch(x, {"seen": seen},
                                                              dataset_size=8))
        result = ppl_vae.evaluate(masked_obs_model, guide, x, iw_samples=30,
                                  inputs={"seen": seen})
    exact = _exact_log_evidence(x, seen)
    assert float(loss) == pytest.approx(-exact, abs=1e-4)
    assert result["elbo"] == pytest.approx(exact, abs=1e-4)
    assert result["log_likelihood"] == pytest.approx(exact, abs=1e-4)


def test_masking_an_ordinary_observation_gives_the_same_evidence():
    def model(x, seen):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(x.new_zeros(1, 1), 1.0))
            with pyro.plate("entries", D, dim=-1), poutine.mask(mask=seen):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x, seen):
        with pyro.plate("data", x.shape[0], dim=-2):
            _exact_z(x, seen)

    x, seen = _data()
    result = ppl_vae.evaluate(model, guide, x, iw_samples=30, inputs={"seen": seen})
    assert result["log_likelihood"] == pytest.approx(_exact_log_evidence(x, seen), abs=1e-4)


def _guide_drawing_every_entry(x, seen):
    """Draws the entries its model masks out: their -log q has no log p against it."""
    with pyro.plate("data", x.shape[0], dim=-2):
        z = _exact_z(x, seen)
        with pyro.plate("entries", D, dim=-1):
            pyro.sample("x_unobserved", dist.Normal(z, 1.0))


def _guide_masking_z(x, seen):
    """Masks out z where its model does not: log p(z) has no log q against it."""
    with pyro.plate("data", x.shape[0], dim=-2):
        with poutine.mask(mask=seen[:, :1]):
            z = _exact_z(x, seen)
        with pyro.plate("entries", D, dim=-1), poutine.mask(mask=~seen):
            pyro.sample("x_unobserved", dist.Normal(z, 1.0))


@pytest.mark.parametrize("guide, site", [(_guide_drawing_every_entry, "x_unobserved"),
                                         (_guide_masking_z, "z")])
def test_a_guide_masking_other_entries_than_its_model_is_warned_about_once(guide, site):
    x, seen = _data()
    pair = ppl_vae.Pair(masked_obs_model, guide)
    with pytest.warns(PplVaeWarning) as caught, pair.scope(), torch.no_grad():
        loss = create("trace", particles=4).loss(pair, Batch(x, {"seen": seen}, dataset_size=8))
    said = [str(w.message) for w in caught if issubclass(w.category, PplVaeWarning)]
    assert len(said) == 1 and f"[{site!r}]" in said[0] and "\n" not in said[0]
    assert -float(loss) != pytest.approx(_exact_log_evidence(x, seen), abs=1e-2)  # not a bound


def test_the_data_of_an_obs_mask_model_is_its_observed_part():
    x, seen = _data()
    trace = poutine.trace(masked_obs_model).get_trace(x, seen)
    assert data_sites(trace) == ["x_observed"]  # "x" is a record of both parts


def test_a_guide_without_the_unobserved_site_is_told_what_obs_mask_needs():
    def guide(x, seen):
        with pyro.plate("data", x.shape[0], dim=-2):
            _exact_z(x, seen)

    x, seen = _data()
    with pytest.raises(PplVaeError) as error:
        ppl_vae.evaluate(masked_obs_model, guide, x, iw_samples=4, inputs={"seen": seen})
    message = str(error.value)
    assert "['x_unobserved'] come from obs_mask=" in message and "\n" not in message
