"""The InferenceData of guide draws: layout, netCDF round trip, PSIS from the file alone.

The pair is written here: a global-per-example latent ``g`` (2 dims) and a
local latent ``parts`` inside a nested plate of 3 (2 dims each), so the
export must find both sites and lay out a site with an extra plate.
"""

import warnings

import arviz as az
import matplotlib
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

from ppl_vae.diagnostics import (
    collect_draws,
    pareto_k,
    pareto_k_from_netcdf,
    posterior_summary,
    to_inference_data,
    write_netcdf,
)

matplotlib.use("Agg")
N, S, DIM = 6, 120, 4


class PartsModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.decode_g, self.decode_parts = nn.Linear(2, DIM), nn.Linear(2, DIM)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            g = pyro.sample("g", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            with pyro.plate("pieces", 3, dim=-2):
                p = pyro.sample("parts", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            loc = self.decode_g(g) + self.decode_parts(p).sum(-3, keepdim=True)
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


class PartsGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(DIM, 2 + 6)

    def forward(self, x):
        h = self.encode(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("g", dist.Normal(h[..., :2], 0.5).to_event(1))
            with pyro.plate("pieces", 3, dim=-2):
                loc = h[..., 2:].reshape(x.shape[0], 3, 2).transpose(0, 1)  # (3, batch, 2)
                pyro.sample("parts", dist.Normal(loc, 0.5).to_event(1))


@pytest.fixture
def written(tmp_path):
    model, guide = PartsModel(), PartsGuide()
    x = torch.randn(N, DIM)
    draws = collect_draws(model, guide, x, S, budget=250)  # several chunks
    idata = to_inference_data(draws, x.numpy(), np.arange(10, 10 + N), primary="g",
                              factors=np.zeros((N, 2), dtype=np.int64), labels=np.arange(N))
    return draws, write_netcdf(idata, tmp_path / "posterior.nc"), guide, x


def test_layout_of_every_guide_site(written):
    draws, path, _, _ = written
    assert draws.sites["g"].shape == (S, N, 2)
    assert draws.sites["parts"].shape == (S, N, 3, 2)
    idata = az.from_netcdf(str(path))
    assert idata.posterior["g"].dims == ("chain", "draw", "example", "latent")
    assert idata.posterior["parts"].dims == ("chain", "draw", "example", "parts_dim_0",
                                             "parts_dim_1")
    assert list(idata.posterior["example"].values) == list(range(10, 10 + N))
    assert idata.sample_stats["log_weight"].shape == (1, S, N)
    assert idata.sample_stats["log_p_x_given_z"].shape == (1, S, N)
    assert idata.constant_data["factors"].shape == (N, 2)


def test_loo_refuses_the_file_since_the_draws_are_not_one_posterior(written):
    """Amortized draws are a different q(z | x_n) per example: no pointwise log-likelihood
    of one posterior exists, so there is no log_likelihood group for az.loo to misuse."""
    _, path, _, _ = written
    idata = az.from_netcdf(str(path))
    assert "log_likelihood" not in idata.groups()
    assert "log_likelihood" not in idata.sample_stats  # ArviZ's old fallback location
    with pytest.raises(TypeError, match="log likelihood not found"):
        az.loo(idata)


def test_draws_follow_each_example_guide(written):
    """The layout keeps example n's draws with example n: their means match the guide."""
    draws, _, guide, x = written
    h = guide.encode(x).detach().numpy()
    assert draws.sites["g"].mean(0) == pytest.approx(h[:, :2], abs=0.15)
    assert draws.sites["parts"].mean(0) == pytest.approx(h[:, 2:].reshape(N, 3, 2), abs=0.15)


def test_psis_recomputed_from_the_file_equals_the_reported(written):
    draws, path, _, _ = written
    reported = pareto_k(draws.log_weight)
    assert pareto_k_from_netcdf(path) == pytest.approx(reported)
    idata = az.from_netcdf(str(path))
    stacked = idata.sample_stats["log_weight"].stack(__sample__=("chain", "draw"))
    _, khat = az.psislw(stacked)
    assert np.asarray(khat) == pytest.approx(reported)


def test_log_weight_parts_add_up(written):
    draws, _, _, _ = written
    assert draws.log_weight == pytest.approx(
        draws.log_likelihood + draws.log_prior - draws.log_guide, abs=1e-4)
    # both sites are Independent Normals: per-dimension KL is available and sums right
    total = sum(kl.sum() for kl in draws.kl_per_dim.values())
    assert total == pytest.approx((draws.log_guide - draws.log_prior).mean(), rel=1e-4)


@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")  # arviz 0.23
def test_arviz_plots_and_summary_work_on_the_file(written):
    _, path, _, _ = written
    idata = az.from_netcdf(str(path))
    summary = az.summary(idata, var_names=["g"], coords={"example": [10, 11]}, kind="stats")
    assert len(summary) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own summary does not warn about one chain
        rows = posterior_summary(idata, "g", [10, 11])
    assert [row["mean"] for row in rows] == pytest.approx(list(summary["mean"]))
    khat = az.psislw(idata.sample_stats["log_weight"].stack(__sample__=("chain", "draw")))[1]
    assert np.size(az.plot_khat(khat)) >= 1
    axes = az.plot_posterior(idata, var_names=["g"], coords={"example": [10]})
    assert np.size(axes) == 2
    matplotlib.pyplot.close("all")
