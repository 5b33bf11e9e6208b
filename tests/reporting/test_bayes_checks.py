"""The Bayesian checks against known answers: probabilistic PCA with its exact posterior.

``tests/ppca.py``: ``z ~ N(0, I_2)``, ``x | z ~ N(W z + b, 0.5² I_6)``, and a guide
that *is* the posterior (optionally with its covariance scaled, or shifted). SBC of
the exact guide must be uniform and that of a narrow, wide or shifted one must fail;
NUTS must find the exact posterior; the replicated data must follow ``p(x | z)`` at the
guide's draws.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_vae import Pair
from ppl_vae.diagnostics import (
    check_statistics,
    compare_to_guide,
    nuts_reference,
    pair_draws,
    posterior_predictive,
    simulation_based_calibration,
    to_inference_data,
)
from ppl_vae.diagnostics.predictive import p_values
from ppl_vae.diagnostics.sbc import ranks
from ppl_vae.errors import PplVaeError
from tests.ppca import SIGMA, PosteriorGuide, ppca_data


@pytest.fixture(scope="module")
def ppca():
    model, x = ppca_data(40)
    return model, x


def _sbc(model, x, **guide):
    return simulation_based_calibration(Pair(model, PosteriorGuide(model, **guide)), x,
                                        simulations=200, draws=99, seed=0)


def test_sbc_of_the_exact_posterior_is_uniform(ppca):
    result = _sbc(*ppca)
    assert result["verdict"].startswith("calibrated"), result["verdict"]
    assert min(result["ks_p_value"]) > 1e-3
    for level, covered in result["coverage_median"].items():
        assert covered == pytest.approx(float(level), abs=0.08)
    assert np.asarray(result["ranks"]).shape == (200, 2)
    assert set(np.unique(result["ranks"])) <= set(range(100))


@pytest.mark.parametrize("guide,shape", [({"inflate": 0.3}, "too narrow"),
                                         ({"inflate": 3.0}, "too wide"),
                                         ({"shift": 0.6}, "biased")])
def test_sbc_fails_a_wrong_guide_and_says_how(ppca, guide, shape):
    result = _sbc(*ppca, **guide)
    assert result["verdict"].startswith("miscalibrated") and shape in result["verdict"]
    assert max(result["ks_p_value"]) < 1e-3
    if "inflate" in guide:  # interval coverage moves the way the width does
        covered = result["coverage_median"]["0.9"]
        assert covered < 0.8 if guide["inflate"] < 1 else covered > 0.97


def test_ranks_by_hand():
    rng = np.random.default_rng(0)
    truth = np.array([[0.5, 2.0]])
    draws = np.array([[[0.0, 2.0]], [[1.0, 2.0]], [[0.2, 1.0]]])  # (L=3, M=1, D=2)
    assert ranks(truth, draws, rng)[0, 0] == 2  # 0.0 and 0.2 are below 0.5
    tied = [ranks(truth, draws, rng)[0, 1] for _ in range(200)]  # 1 below, 2 ties: 1, 2 or 3
    assert set(tied) == {1, 2, 3}


def test_sbc_refuses_global_sites_and_bad_sizes():
    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0).expand([x.shape[1]]).to_event(1), obs=x)

    def guide(x):
        pyro.sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(PplVaeError, match="global"):
        simulation_based_calibration(Pair(model, guide), torch.zeros(4, 3), 10, 9)
    model_, x = ppca_data(5)
    with pytest.raises(PplVaeError, match="simulations"):
        simulation_based_calibration(Pair(model_, PosteriorGuide(model_)), x, 1, 9)


def test_p_values_by_hand():
    replicated = np.array([1.0, 2.0, 2.0, 4.0])[:, None]
    assert p_values(replicated, np.array([2.0]))[0] == pytest.approx(0.25 + 0.5 * 0.5)
    assert p_values(replicated, np.array([5.0]))[0] == 0.0


def test_replicated_data_follow_the_likelihood_at_the_guide_draws(ppca):
    model, x = ppca
    pair = Pair(model, PosteriorGuide(model))
    pp = posterior_predictive(pair, x[:5], draws=400)
    assert pp.replicated["x"].shape == (400, 5, 6)
    assert np.array_equal(pp.observed["x"], x[:5].numpy())
    z, rep = torch.from_numpy(pp.sites["z"]), torch.from_numpy(pp.replicated["x"])
    by_hand = dist.Normal(z @ model.W.T + model.b, SIGMA).log_prob(rep).sum(-1)
    assert pp.replicated_log_likelihood == pytest.approx(by_hand.double().numpy(), abs=1e-4)
    # E[x_rep] = W E_q[z] + b: the posterior predictive mean, not the prior's (b)
    loc, _ = model.posterior(x[:5])
    expected = (loc @ model.W.T + model.b).numpy()
    assert rep.mean(0).numpy() == pytest.approx(expected, abs=0.3)
    assert np.abs(expected - model.b.numpy()).max() > 1.0
    checks = check_statistics(pp, labels=np.array([0, 1, 0, 1, 1]))
    for entry in (checks["mean"]["x"], checks["log_lik"], checks["class_means"]["x"]):
        assert all(0.0 <= p <= 1.0 for p in entry["p_values"])
    assert checks["class_means"]["x"]["classes"] == [0, 1]


class TooSure(torch.nn.Module):
    """PPCA's decoder with a noise scale five times too small: replicates are too clean."""

    def __init__(self, ppca):
        super().__init__()
        self.ppca = ppca

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            loc = z @ self.ppca.W.T + self.ppca.b
            pyro.sample("x", dist.Normal(loc, SIGMA / 5).to_event(1), obs=x)


def test_the_reconstruction_discrepancy_flags_a_model_that_is_too_sure(ppca):
    model, x = ppca
    right = check_statistics(posterior_predictive(Pair(model, PosteriorGuide(model)), x, 200))
    wrong = check_statistics(posterior_predictive(Pair(TooSure(model), PosteriorGuide(model)),
                                                  x, 200))
    assert right["log_lik"]["share_extreme"] < 0.15
    assert wrong["log_lik"]["share_extreme"] > 0.8


@pytest.fixture(scope="module")
def nuts_and_guides(ppca):
    model, x = ppca
    nuts = nuts_reference(Pair(model, PosteriorGuide(model)), x[:1], test_index=[7],
                          draws=150, warmup=150, chains=2, seed=0)
    exports = {}
    for inflate in (1.0, 0.3):
        pair = Pair(model, PosteriorGuide(model, inflate=inflate))
        with pair.evaluation():
            drawn = pair_draws(pair, x[:1], 2000)
        exports[inflate] = to_inference_data(drawn, x[:1].numpy(), np.array([7]), "z")
    return nuts, exports


def test_nuts_finds_the_exact_posterior_with_the_exports_layout(ppca, nuts_and_guides):
    model, x = ppca
    nuts, exports = nuts_and_guides
    guide = exports[1.0]
    assert nuts.posterior["z"].dims == guide.posterior["z"].dims == ("chain", "draw", "example",
                                                                     "latent")
    assert list(nuts.posterior["example"].values) == list(guide.posterior["example"].values)
    assert nuts.posterior["z"].shape == (2, 150, 1, 2)
    loc, cov = model.posterior(x[:1])
    sd = cov.diagonal().sqrt().numpy()
    draws = nuts.posterior["z"].values.reshape(-1, 2)
    assert draws.mean(0) == pytest.approx(loc[0].numpy(), abs=0.35 * float(sd.min()))
    assert draws.std(0) == pytest.approx(sd, rel=0.25)


def test_compare_to_guide_measures_a_narrow_guide(nuts_and_guides):
    nuts, exports = nuts_and_guides
    exact = compare_to_guide(exports[1.0], nuts)["z"]
    narrow = compare_to_guide(exports[0.3], nuts)
    assert exact["sd_ratio_median"] == pytest.approx(1.0, abs=0.2)
    assert narrow["z"]["sd_ratio_median"] == pytest.approx(math.sqrt(0.3), abs=0.12)
    assert exact["mean_gap_max_abs"] < 0.4 and exact["rhat_max"] < 1.1
    assert narrow["chains"] == 2 and narrow["examples"] == [7]


def test_nuts_refuses_one_chain(ppca):
    model, x = ppca
    with pytest.raises(PplVaeError, match="R-hat"):
        nuts_reference(Pair(model, PosteriorGuide(model)), x[:1], chains=1)


def test_sbc_hands_the_guide_every_simulated_observation():
    """y is an input the model observes: SBC must simulate it and give the guide the
    simulated y (keeping the template's y would shift the exact posterior of z)."""
    def model(x, y=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Bernoulli(0.5), obs=y)
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal((z + 2 * y)[..., None], 0.5).to_event(1), obs=x)

    def guide(x, y=None):  # z | x, y ~ N(0.8 (x - 2y), 1/5): the exact posterior
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(0.8 * (x[..., 0] - 2 * y), 5 ** -0.5))

    template = {"y": torch.zeros(50)}  # simulated ys are half ones: kept zeros would fail
    result = simulation_based_calibration(Pair(model, guide), torch.zeros(50, 1), 300, 49,
                                          inputs=template)
    assert result["verdict"].startswith("calibrated"), result["verdict"]
    assert result["coverage_median"]["0.9"] == pytest.approx(0.9, abs=0.06)


def test_compiled_nuts_finds_the_same_posterior(ppca, nuts_and_guides):
    model, x = ppca
    compiled = nuts_reference(Pair(model, PosteriorGuide(model)), x[:1], test_index=[7],
                              draws=150, warmup=150, chains=2, seed=0, jit=True)
    _, exports = nuts_and_guides
    assert compare_to_guide(exports[1.0], compiled)["z"]["sd_ratio_median"] == pytest.approx(
        1.0, abs=0.2)
