"""Global latents, masked sites and the site studied, against hand computations.

The all-global pair is the conjugate normal mean, ``w ~ N(0, 1)``, ``x_nd | w ~ N(w, 1)``
(``D`` entries per example), with its exact posterior as guide: the ``log_likelihood``
group must make ``az.loo`` agree with the exact leave-one-out predictive density.
"""

from types import SimpleNamespace

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_vae import Pair
from ppl_vae.diagnostics import collect_draws, posterior_predictive
from ppl_vae.errors import PplVaeError
from ppl_vae.reporting.diagnostics import Checks, diagnose_pair
from tests.ppca import PosteriorGuide, ppca_data

N_TRAIN, D = 30, 4


def normal_mean_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 0.7 + torch.randn(N_TRAIN + 6, D, generator=g)
    return SimpleNamespace(train=x[:N_TRAIN], test=x[N_TRAIN:], event_shape=(D,), spec=None,
                           dynamic_binarize=False)


def normal_mean_pair(train: torch.Tensor):
    precision = 1.0 + train.numel()
    loc, scale = train.sum() / precision, precision ** -0.5

    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0).expand([D]).to_event(1), obs=x)

    def guide(x):
        pyro.sample("w", dist.Normal(loc, scale))

    return model, guide


def exact_loo(train: torch.Tensor) -> float:
    """Σ_n log p(x_n | x_-n): w | x_-n ~ N(m, s²), so x_n ~ N(m 1, I + s² 1 1ᵀ)."""
    total = 0.0
    for n in range(train.shape[0]):
        rest = torch.cat([train[:n], train[n + 1:]])
        precision = 1.0 + rest.numel()
        m, s2 = rest.sum() / precision, 1.0 / precision
        cov = torch.eye(D) + s2 * torch.ones(D, D)
        total += float(dist.MultivariateNormal(m * torch.ones(D), cov).log_prob(train[n]))
    return total


def test_an_all_global_pair_gets_a_log_likelihood_group_that_loo_reads(tmp_path):
    data = normal_mean_data()
    model, guide = normal_mean_pair(data.train)
    report = diagnose_pair(model, guide, data, tmp_path, n_examples=6, draws=1000,
                           metrics="none", quiet=True, checks=Checks(ppc_draws=20))
    assert "log_likelihood" not in report["missing"]
    idata = az.from_netcdf(str(tmp_path / "posterior.nc"))
    assert idata.posterior["w"].dims == ("chain", "draw")
    assert idata.log_likelihood["x"].shape == (1, 1000, N_TRAIN)
    # the pointwise values are log N(x_n; w_s, I) at each draw, by hand
    w = torch.from_numpy(idata.posterior["w"].values[0])
    by_hand = dist.Normal(w[:, None, None], 1.0).log_prob(data.train).sum(-1)
    assert idata.log_likelihood["x"].values[0] == pytest.approx(by_hand.double().numpy(),
                                                                abs=1e-4)
    loo = az.loo(idata)
    assert loo.elpd_loo == pytest.approx(exact_loo(data.train), abs=0.3)
    assert az.waic(idata).elpd_waic == pytest.approx(exact_loo(data.train), abs=0.5)
    assert idata.posterior_predictive["x"].shape == (1, 20, 6, D)


def test_local_draws_share_each_global_draw():
    """q(z_n | x_n, w) puts z_n at mean(x_n) - w: per draw s, z_sn + w_s = mean(x_n)."""
    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal((w + z)[..., None], 1.0).expand([*z.shape, D])
                        .to_event(1), obs=x)

    def guide(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.mean(-1) - w, 1e-3))

    x = torch.randn(5, D)
    drawn = collect_draws(model, guide, x, draws=30, replicate=True)
    assert drawn.global_sites["w"].shape == (30,) and drawn.sites["z"].shape == (30, 5)
    total = drawn.sites["z"] + drawn.global_sites["w"][:, None]
    assert total == pytest.approx(np.broadcast_to(x.mean(-1).numpy(), (30, 5)), abs=0.01)
    assert drawn.log_weight is None and drawn.log_likelihood.shape == (30, 5)
    assert drawn.replicated["x"].shape == (30, 5, D)


def test_masked_entries_are_nan_in_draws_and_replicates():
    """A sequence-like pair: example n has its first lengths[n] of 3 steps; the rest is
    padding, masked in both programs."""
    lengths = torch.tensor([3, 1, 2])
    mask = torch.arange(3) < lengths[:, None]  # (batch, steps)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            m = mask[:x.shape[0]]  # the batch's own rows (the engine probes with fewer)
            z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).mask(m).to_event(1))
            pyro.sample("x", dist.Normal(z, 0.5).mask(m).to_event(1), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x, 0.3).mask(mask[:x.shape[0]]).to_event(1))

    drawn = collect_draws(model, guide, torch.randn(3, 3), draws=10, replicate=True)
    for values in (drawn.sites["z"], drawn.replicated["x"]):
        assert np.isnan(values).all(0).tolist() == (~mask).tolist()
        assert np.isfinite(values[:, mask.numpy()]).all()
    assert np.isnan(drawn.observed["x"]).tolist() == (~mask).tolist()
    assert np.isfinite(drawn.kl_per_dim["z"]).all() and np.isfinite(drawn.log_weight).all()


def test_the_site_studied_is_the_users_choice(tmp_path):
    model, x = ppca_data(40)
    data = SimpleNamespace(train=x[:30], test=x[30:], event_shape=(6,), spec=None,
                           dynamic_binarize=False)
    report = diagnose_pair(model, PosteriorGuide(model), data, tmp_path, n_examples=4, draws=50,
                           metrics="none", quiet=True, site="z")
    assert report["primary_site"] == "z" and report["latents"]["site"] == "z"
    with pytest.raises(PplVaeError, match="not sampled by the guide"):
        diagnose_pair(model, PosteriorGuide(model), data, tmp_path / "b", n_examples=4,
                      draws=50, metrics="none", quiet=True, site="nothing")
    assert not (tmp_path / "b").exists()


@pytest.mark.filterwarnings("ignore::matplotlib.MatplotlibDeprecationWarning")  # arviz 0.23
@pytest.mark.filterwarnings("ignore::UserWarning")  # plot_ppc on one variable with few draws
def test_arviz_ppc_plots_run_on_the_written_file(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    model, x = ppca_data(40)
    labels = torch.arange(10) % 2
    data = SimpleNamespace(train=x[:30], test=x[30:], event_shape=(6,), spec=None,
                           dynamic_binarize=False, test_labels=labels)
    report = diagnose_pair(model, PosteriorGuide(model), data, tmp_path, n_examples=10,
                           draws=50, metrics="none", quiet=True, checks=Checks(ppc_draws=30))
    assert report["posterior_predictive"]["class_means"]["x"]["classes"] == [0, 1]
    idata = az.from_netcdf(str(tmp_path / "posterior.nc"))
    assert idata.observed_data["x"].values == pytest.approx(x[30:].numpy())
    assert np.size(az.plot_ppc(idata, var_names=["x_mean"], num_pp_samples=20)) >= 1
    assert np.size(az.plot_ppc(idata, var_names=["x"], num_pp_samples=20)) >= 1
    assert np.size(az.plot_bpv(idata, var_names=["x_mean"])) >= 1
    matplotlib.pyplot.close("all")
    # the same draws from Python
    pp = posterior_predictive(Pair(model, PosteriorGuide(model)), x[30:], draws=5)
    assert pp.replicated["x"].shape == (5, 10, 6)


@pytest.mark.slow  # ~25 s on a shared CPU: four NUTS chains
def test_nuts_on_sequences_of_different_lengths_leaves_missing_steps_nan():
    """One site per step, the batch trimmed to its longest sequence (a DMM's layout): the
    shorter example has no z_1 in its own NUTS run, so its z_1 is NaN, as in the guide's
    export; z_t | x_t ~ N(x_t / 2, 1/2) exactly."""
    from ppl_vae.diagnostics import compare_to_guide, nuts_reference, to_inference_data

    def model(x, lengths):
        with pyro.plate("data", x.shape[0]):
            for t in range(int(lengths.max())):
                z = pyro.sample(f"z_{t}", dist.Normal(0.0, 1.0).mask(t < lengths))
                pyro.sample(f"x_{t}", dist.Normal(z, 1.0).mask(t < lengths), obs=x[:, t])

    def guide(x, lengths):
        with pyro.plate("data", x.shape[0]):
            for t in range(int(lengths.max())):
                pyro.sample(f"z_{t}", dist.Normal(x[:, t] / 2, 0.5 ** 0.5).mask(t < lengths))

    x, lengths = torch.tensor([[1.0, -2.0], [3.0, 0.0]]), torch.tensor([2, 1])
    pair = Pair(model, guide)
    nuts = nuts_reference(pair, x, inputs={"lengths": lengths}, draws=200, warmup=150,
                          chains=2)
    z0, z1 = nuts.posterior["z_0"].values, nuts.posterior["z_1"].values
    assert np.isnan(z1[:, :, 1]).all() and np.isfinite(z1[:, :, 0]).all()
    assert z0.reshape(-1, 2).mean(0) == pytest.approx([0.5, 1.5], abs=0.2)
    assert z1[:, :, 0].mean() == pytest.approx(-1.0, abs=0.2)
    drawn = collect_draws(model, guide, x, draws=500, inputs={"lengths": lengths})
    export = to_inference_data(drawn, x.numpy(), np.arange(2), "z_0")
    compared = compare_to_guide(export, nuts)
    assert compared["z_1"]["sd_ratio_median"] == pytest.approx(1.0, abs=0.25)
    assert np.isnan(compared["z_1"]["sd_ratio"][1]).all()
