"""SBC of a program with several observed sites: one per step of a padded sequence.

The model (a DMM-like layout: ``obs=x[:, t]`` per step, padding masked)::

    z ~ N(0, 1),   x_t | z ~ N(c_t z, s_t² I_2)  for t < length,  padding masked

has the exact posterior ``z | x ~ N(m, 1/P)`` with ``P = 1 + 2 Σ_{t<len} c_t²/s_t²`` and
``m = Σ_{t<len} (c_t / s_t²) Σ_k x_tk / P``. The exact guide below reads every step of
``x`` and relies on the padding being zero (as the data are padded), so SBC must put each
step's simulated value back in its place and leave the padding alone. Its ranks must be
uniform (KS and a chi-square on ten bins, fixed seed); a guide that reads the steps in
reverse order, or is 0.6 times too narrow, must fail both.
"""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import stats

from ppl_vae import Pair
from ppl_vae.diagnostics import simulation_based_calibration
from ppl_vae.errors import PplVaeError

C, S = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([0.5, 1.0, 2.0])
STEPS, KEYS = 3, 2


def model(x, lengths):
    steps = torch.arange(STEPS) < lengths[:, None]
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        for t in range(STEPS):
            with poutine.mask(mask=steps[:, t]):
                loc = (C[t] * z)[:, None].expand(-1, KEYS)
                pyro.sample(f"x_{t}", dist.Normal(loc, S[t]).to_event(1),
                            obs=x[:, t])


def make_guide(order=(0, 1, 2), narrow: float = 1.0):
    """The exact posterior (with the steps read in ``order``, the sd times ``narrow``)."""
    def guide(x, lengths):
        steps = (torch.arange(STEPS) < lengths[:, None]).float()
        precision = 1 + KEYS * (steps * C**2 / S**2).sum(1)
        mean = (x[:, list(order)].sum(2) * C / S**2).sum(1) / precision  # padding is zero
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(mean, narrow * precision**-0.5))
    return guide


@pytest.fixture(scope="module")
def template():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, STEPS + 1, (100,), generator=g)
    x = torch.randn(100, STEPS, KEYS, generator=g)
    x[torch.arange(STEPS) >= lengths[:, None]] = 0.0  # padded with zeros
    return x, {"lengths": lengths}


def _sbc(template, guide):
    x, inputs = template
    return simulation_based_calibration(Pair(model, guide), x, simulations=600, draws=49,
                                        inputs=inputs, seed=0)


def _chi_square_p(result) -> float:
    """Chi-square test of uniform ranks over ten bins of the 50 rank values."""
    counts = np.bincount(np.asarray(result["ranks"])[:, 0] // 5, minlength=10)
    return float(stats.chisquare(counts).pvalue)


def test_sbc_of_the_exact_posterior_of_several_observed_sites_is_uniform(template):
    result = _sbc(template, make_guide())
    assert result["verdict"].startswith("calibrated"), result["verdict"]
    assert result["ks_p_value"][0] > 0.01 and _chi_square_p(result) > 0.01
    assert result["coverage_median"]["0.9"] == pytest.approx(0.9, abs=0.05)


@pytest.mark.parametrize("guide", [make_guide(order=(2, 1, 0)), make_guide(narrow=0.6)],
                         ids=["steps-reversed", "too-narrow"])
def test_sbc_fails_a_guide_off_by_a_known_amount(template, guide):
    result = _sbc(template, guide)
    assert result["verdict"].startswith("miscalibrated"), result["verdict"]
    assert result["ks_p_value"][0] < 1e-3 and _chi_square_p(result) < 1e-3


def test_sbc_refuses_an_observation_computed_from_x(template):
    def scaled(x, lengths):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z[:, None, None], 1.0).to_event(2), obs=2 * x)

    x, inputs = template
    with pytest.raises(PplVaeError, match="observed site 'x' is not a part of x"):
        simulation_based_calibration(Pair(scaled, make_guide()), x, simulations=20, draws=9,
                                     inputs=inputs)


def test_sbc_runs_on_pyros_deep_markov_model():
    """The DMM example as written (an observed site per step, ``obs=x[:, t - 1, :]``, masks
    past each length): SBC simulates every step, hands the guide the simulated sequences
    and leaves each sequence's padded steps out of the ranks."""
    from examples.pyro_tutorials import dmm
    from ppl_vae.naming import Names, renamed

    torch.manual_seed(0)
    sequences = dmm.Sequences(dmm.DMM(input_dim=88, z_dim=2, emission_dim=4, transition_dim=4,
                                      rnn_dim=4))
    names = Names(plate="z_minibatch", keywords={"lengths": ["lengths", None, None]})
    pair = Pair(renamed(sequences.model, names), renamed(sequences.guide, names))
    data = dmm.synthetic_chorales(n=24, steps=6)
    lengths = data.inputs("test")["lengths"]
    result = simulation_based_calibration(pair, data.test, simulations=40, draws=9,
                                          inputs={"lengths": lengths}, seed=0)
    assert len(result["dimensions"]) == 6 * 2  # z_1 ... z_6, two dimensions each
    ranks = np.asarray(result["ranks"]).reshape(40, 6, 2)
    padded = (torch.arange(6) >= lengths[torch.arange(40) % len(lengths), None]).numpy()
    assert (ranks[padded] == -1).all() and (ranks[~padded] >= 0).all()
