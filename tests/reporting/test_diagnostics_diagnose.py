"""``diagnose`` end to end on a tiny run trained here, and ``diagnose_pair`` on a user pair."""

import json

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import ppl_vae
from ppl_vae.diagnostics import pareto_k_from_netcdf
from ppl_vae.errors import PplVaeError
from ppl_vae.reporting.diagnostics import diagnose, diagnose_pair
from tests.conftest import tiny_binary

TINY_METRICS = {  # every recipe, few points (DCI's 113 class-trees per stage are tested apart)
    "beta_vae": {"batch_size": 8, "num_train": 40, "num_eval": 20},
    "factor_vae": {"batch_size": 8, "num_train": 40, "num_eval": 20, "num_variance_estimate": 200},
    "mig": {"num_train": 300},
}
FIGURES = {"reconstructions.png", "prior_samples.png", "traversals_by_kl.png", "correlation.png",
           "posterior_variances.png", "khat.png", "worst_khat.png", "latent_scatter.png",
           "pca_spectrum.png", "posterior_forest.png", "ppc.png"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data = ppl_vae.data.load("shapes", size=32, n=200)
    pair = ppl_vae.build("beta_vae", data=data, latent_dim=3, net="mlp", beta=2.0)
    ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=32, out=folder, quiet=True,
                device="cpu", pair=pair)
    return folder


def test_diagnose_writes_every_file(tiny_run):
    report = diagnose(tiny_run, n_examples=8, draws=100, quiet=True, metrics=TINY_METRICS)
    out = tiny_run / "diagnostics"
    assert {"posterior.nc", "report.json", "report.md"} | FIGURES <= {p.name for p in out.iterdir()}
    assert set(report["figures"]) == FIGURES
    assert json.loads((out / "report.json").read_text())["psis"]["khat"] == report["psis"]["khat"]
    psis = report["psis"]
    assert len(psis["khat"]) == 8 and 0.0 <= psis["share_above_0.7"] <= 1.0
    assert psis["elbo"] <= psis["is_log_likelihood"]
    assert pareto_k_from_netcdf(out / "posterior.nc") == pytest.approx(psis["khat"])
    latents = report["latents"]
    assert latents["site"] == "z" and 0 <= latents["active_units"] <= 3
    assert len(latents["kl_per_dim"]) == 3 and min(latents["kl_per_dim"]) >= -0.05
    assert sum(latents["pca"]["explained"]) == pytest.approx(1.0)
    assert len(report["posterior_summary"]) == 3 * 3  # 3 examples x 3 dims
    scores = report["disentanglement"]
    assert 0.0 <= scores["mig"]["scores"]["discrete_mig"] <= 1.0
    assert 0.0 <= scores["beta_vae"]["scores"]["eval_accuracy"] <= 1.0
    assert scores["dci"] is None
    text = (out / "report.md").read_text()
    assert "Pareto k̂" in text and "MIG" in text and "![khat](khat.png)" in text
    idata = az.from_netcdf(str(out / "posterior.nc"))
    assert idata.posterior["z"].shape == (1, 100, 8, 3)
    assert idata.constant_data["factors"].shape == (8, 5)
    # the posterior predictive check: 100 replicates of each of the 8 examples, binary
    replicated = idata.posterior_predictive["x"]
    assert replicated.shape == (1, 100, 8, 1, 32, 32)
    assert set(np.unique(replicated.values)) <= {0.0, 1.0}
    assert idata.observed_data["x"].shape == (8, 1, 32, 32)
    assert idata.posterior_predictive["x_mean"].values == pytest.approx(
        replicated.values.mean((3, 4, 5)))
    ppc = report["posterior_predictive"]
    assert ppc["draws"] == 100 and len(ppc["mean"]["x"]["p_values"]) == 8
    assert 0.0 <= ppc["log_lik"]["share_extreme"] <= 1.0
    assert "Posterior predictive check" in text


def test_diagnose_errors_are_one_line(tiny_run, tmp_path):
    with pytest.raises(PplVaeError, match="does not exist"):
        diagnose(tmp_path / "nothing")
    with pytest.raises(PplVaeError, match="--draws"):
        diagnose(tiny_run, draws=1)
    with pytest.raises(PplVaeError, match="--n-examples"):
        diagnose(tiny_run, n_examples=0)
    with pytest.raises(PplVaeError, match="preset"):
        diagnose(tiny_run, metrics="bogus")


def test_diagnose_pair_on_a_user_pair_with_param_store_weights(tmp_path):
    """Plain functions with pyro.module nets, data without factors: no metrics, rest works."""
    data = tiny_binary(n=60)
    decoder = nn.Linear(2, 64)
    encoder = nn.Sequential(nn.Flatten(-3), nn.Linear(64, 4))

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("code", dist.Laplace(x.new_zeros(2), 1.0).to_event(1))
            logits = decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        loc, log_scale = encoder(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("code", dist.Normal(loc, log_scale.exp()).to_event(1))

    run = ppl_vae.fit(model, guide, data, epochs=2, batch_size=20, quiet=True, device="cpu")
    report = diagnose_pair(model, guide, data, tmp_path / "diag", n_examples=5, draws=50,
                           quiet=True, pair=run.pair)
    assert report["disentanglement"] is None and report["sites"] == {"code": [2]}
    assert np.isfinite(report["psis"]["is_log_likelihood"])
    # Normal guide against a Laplace prior: still Independent per dimension
    assert len(report["latents"]["kl_per_dim"]) == 2
    assert (tmp_path / "diag" / "posterior.nc").exists()
    assert "latent_scatter.png" in report["figures"]
    with run.pair.scope():
        trained = pyro.get_param_store().get_param("encoder$$$1.weight").detach().clone()
    assert torch.equal(trained, encoder[1].weight.detach())


def test_diagnose_prints_one_line_per_stage_off_a_terminal(tiny_run, capsys):
    diagnose(tiny_run, n_examples=4, draws=20, quiet=False, metrics="none")
    lines = capsys.readouterr().err.splitlines()  # captured: not a terminal, no progress bars
    stages = [line.split(" (")[0] for line in lines if line.startswith("diagnose [")]
    assert stages == ["diagnose [1/5] guide draws and PSIS",
                      "diagnose [2/5] posterior predictive check",
                      "diagnose [3/5] latent statistics and netCDF", "diagnose [4/5] figures",
                      "diagnose [5/5] disentanglement metrics"]
    assert lines[-1].startswith("diagnose: done in") and "report.md" in lines[-1]
