"""``diagnose`` of a pair with two observed sites: probabilistic PCA whose six coordinates
are observed as two sites, ``a = x[:, :3]`` and ``b = x[:, 3:]``, with its exact posterior as
the guide. The predictive check and its figure cover both sites (a row each), and SBC
simulates both and hands them back as ``x``: calibrated.
"""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from matplotlib import image

from ppl_vae.data.tensors import from_tensors
from ppl_vae.diagnostics.check_figures import MAX_SITE_ROWS, ppc_figure
from ppl_vae.plots import DPI
from ppl_vae.reporting.diagnostics import Checks, diagnose_pair
from tests.ppca import PPCA, SIGMA, K, PosteriorGuide, ppca_data

ROW_INCHES = 3.8


class TwoSites(PPCA):
    """PPCA with ``x`` observed as two sites."""

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
            loc = z @ self.W.T + self.b
            pyro.sample("a", dist.Normal(loc[:, :3], SIGMA).to_event(1), obs=x[:, :3])
            pyro.sample("b", dist.Normal(loc[:, 3:], SIGMA).to_event(1), obs=x[:, 3:])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_sites")
    _, x = ppca_data(n=80)
    model = TwoSites()
    result = diagnose_pair(model, PosteriorGuide(model), from_tensors(x[:20], x[20:]), folder,
                           n_examples=60, draws=50, metrics="none", quiet=True,
                           checks=Checks(ppc_draws=100, sbc=300, sbc_draws=49))
    return result, folder


def test_the_predictive_check_covers_every_observed_site(report):
    result, folder = report
    ppc = result["posterior_predictive"]
    assert set(ppc["mean"]) == {"a", "b"}
    for site in ("a", "b"):  # the true model with its exact posterior: few extreme p-values
        assert ppc["mean"][site]["share_extreme"] < 0.15
        assert len(ppc["mean"][site]["p_values"]) == 60
    figure = image.imread(folder / "ppc.png")
    assert figure.shape[0] == pytest.approx(2 * ROW_INCHES * DPI, abs=2)  # a row per site


def test_sbc_of_two_observed_sites_is_calibrated(report):
    result, _ = report
    sbc = result["sbc"]
    assert sbc["verdict"].startswith("calibrated"), sbc["verdict"]
    assert sbc["coverage_median"]["0.9"] == pytest.approx(0.9, abs=0.06)


def test_many_sites_share_one_row_and_each_is_named(tmp_path):
    sites = [f"obs_{t}" for t in range(MAX_SITE_ROWS + 3)]
    rng = np.random.default_rng(0)
    replicated = {s: rng.random((20, 15)) for s in sites}
    p = list(rng.random(15))
    checks = {"mean": {s: {"observed": list(rng.random(15)), "p_values": p,
                           "share_extreme": 0.1, "median": 0.5} for s in sites},
              "log_lik": {"p_values": p, "share_extreme": 0.1}, "class_means": None}
    ppc_figure(checks, replicated, tmp_path)
    assert image.imread(tmp_path / "ppc.png").shape[0] == pytest.approx(ROW_INCHES * DPI,
                                                                        abs=2)
