"""What Pyro users write every day (issue 26): bound methods of an nn.Module with dropout
and BatchNorm, renamed sites/plates/keywords, unsized plates, masks, global latents."""

import json
import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from torch import nn

import ppl_vae
from ppl_vae.diagnostics.inference_data import ENGINE
from ppl_vae.errors import PplVaeError
from ppl_vae.naming import Names
from ppl_vae.pair import importable_path, with_names
from ppl_vae.training.session import GLOBAL_EPOCH_PARTICLES, epoch_particles


class NormedVAE(nn.Module):
    """Pyro's style: bound methods, ``"obs"``, BatchNorm1d and dropout in the encoder."""

    def __init__(self, pixels=64, z_dim=3, hidden=16):
        super().__init__()
        self.pixels, self.z_dim = pixels, z_dim
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.BatchNorm1d(hidden),
                                     nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Linear(z_dim, pixels)

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.0)
                            .to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=self.decoder(z)).to_event(1),
                        obs=x.reshape(-1, self.pixels))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, raw = self.encoder(x.reshape(-1, self.pixels)).chunk(2, -1)
            pyro.sample("latent", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3)
                        .to_event(1))


@pytest.fixture(scope="module")
def digits():
    return ppl_vae.data.load("digits", binarize="static", n=300)


def _bn(vae):
    return vae.encoder[1]


def test_evaluation_in_eval_mode_state_untouched_and_reloaded_with_buffers(tmp_path, digits):
    vae = NormedVAE()
    run = ppl_vae.fit(vae.model, vae.guide, digits, observe="obs", epochs=2, batch_size=50,
                      out=tmp_path, quiet=True, iw_samples=3)
    bn = _bn(vae)
    stats = [t.clone() for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]
    assert vae.training and bn.training  # the user's mode, before and after
    pyro.set_rng_seed(1)
    first = run.evaluate(digits.test, iw_samples=5)
    pyro.set_rng_seed(1)
    assert run.evaluate(digits.test, iw_samples=5) == first  # dropout off: reproducible
    assert vae.training and bn.training
    for before, after in zip(stats, (bn.running_mean, bn.running_var, bn.num_batches_tracked)):
        assert torch.equal(before, after)  # evaluating never moves the running statistics
    assert int(bn.num_batches_tracked) == 2 * (len(digits.train) // 50)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert torch.equal(saved["buffers"]["owner.encoder.1.running_mean"], bn.running_mean)
    other = NormedVAE()
    reloaded = ppl_vae.load_run(tmp_path, model=other.model, guide=other.guide)
    assert torch.equal(_bn(other).running_var, bn.running_var)
    pyro.set_rng_seed(1)
    assert reloaded.evaluate(digits.test, iw_samples=5)["elbo"] == first["elbo"]


def test_resume_restores_buffers_exactly(tmp_path, digits):
    def train(folder, epochs, resume=False):
        torch.manual_seed(0)
        vae = NormedVAE()
        ppl_vae.fit(vae.model, vae.guide, digits, observe="obs", epochs=epochs, batch_size=50,
                    out=folder, resume=resume, quiet=True, report=False, seed=3)
        return vae

    straight = train(tmp_path / "a", 2)
    train(tmp_path / "b", 1)
    resumed = train(tmp_path / "b", 2, resume=True)
    assert torch.equal(_bn(resumed).running_mean, _bn(straight).running_mean)
    assert torch.equal(_bn(resumed).num_batches_tracked, _bn(straight).num_batches_tracked)
    assert torch.equal(resumed.decoder.weight, straight.decoder.weight)


def test_check_runs_in_eval_mode_without_touching_state(digits):
    vae = NormedVAE()
    pair = with_names(ppl_vae.Pair(vae.model, vae.guide), Names(observe="obs"))
    with pair.scope():  # one example: BatchNorm1d in training mode would refuse it
        pair.check(digits.train[:1])
    assert int(_bn(vae).num_batches_tracked) == 0 and vae.training
    assert set(pair.named_buffers()) == {"owner.encoder.1.running_mean",
                                         "owner.encoder.1.running_var",
                                         "owner.encoder.1.num_batches_tracked"}


def test_modules_in_closures_and_pyro_module_calls_are_found(digits):
    decoder, encoder = nn.Linear(2, 64), nn.Sequential(nn.Linear(64, 4), nn.Dropout(0.9))
    held = {"encoder": encoder}  # reached only by running the guide

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z).reshape(x.shape)).to_event(3),
                        obs=x)

    def guide(x):
        net = held["encoder"]
        pyro.module("encoder", net)
        with pyro.plate("data", x.shape[0]):
            loc, raw = net(x.reshape(-1, 64)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))

    pair = ppl_vae.Pair(model, guide)
    with pair.scope():
        pair.check(digits.train[:4])
    found = list(pair.reached_modules().values())
    assert decoder in found and encoder in found  # a closure cell, and a call
    pyro.set_rng_seed(0)
    a = ppl_vae.evaluate(model, guide, digits.test, iw_samples=2)
    pyro.set_rng_seed(0)
    assert ppl_vae.evaluate(model, guide, digits.test, iw_samples=2) == a
    assert encoder.training


def test_unsized_plate_and_masked_indexing_train_and_evaluate(digits):
    decoder, encoder = nn.Linear(2, 64), nn.Linear(64, 4)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data"):  # Pyro's M2 and CVAE: no size
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            probs = torch.sigmoid(decoder(z))
            seen = (x.reshape(-1, 64) >= 0)  # a data-shaped mask, indexing (Pyro's CVAE)
            pyro.sample("x", dist.Bernoulli(probs[seen].view(x.shape[0], -1)).to_event(1),
                        obs=x.reshape(-1, 64)[seen].view(x.shape[0], -1))

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data"):
            loc, raw = encoder(x.reshape(-1, 64)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))

    run = ppl_vae.fit(model, guide, digits, epochs=1, batch_size=50, quiet=True)
    assert torch.isfinite(torch.tensor(run.metrics[-1]["test_elbo"]))
    with pytest.warns(ppl_vae.errors.PplVaeWarning):  # one particle at a time, said once
        result = run.evaluate(digits.test, iw_samples=3)
    assert result["log_likelihood"] >= result["elbo"] - 1e-3


def test_diagnose_a_site_called_latent(tmp_path, digits):
    import arviz as az

    vae = NormedVAE()
    ppl_vae.fit(vae.model, vae.guide, digits, observe="obs", epochs=1, out=tmp_path, quiet=True,
                iw_samples=2)
    ppl_vae.diagnose(tmp_path, model=vae.model, guide=vae.guide, n_examples=6, draws=10,
                     quiet=True, metrics="none")
    idata = az.from_netcdf(str(tmp_path / "diagnostics" / "posterior.nc"), engine=ENGINE)
    assert idata.posterior["latent"].dims == ("chain", "draw", "example", "latent_dim")


def test_renaming_is_explained_in_one_line(digits):
    vae = NormedVAE()  # observes 'obs', not 'x': the one observed site in the plate is the data
    run = ppl_vae.fit(vae.model, vae.guide, digits, epochs=1, quiet=True, report=False)
    assert run.evaluate(digits.test[:20], iw_samples=2)["log_likelihood_of"] == "log p(obs)"

    def needs_ys(x, ys=None):
        vae.model(x)

    labelled = ppl_vae.data.load("digits", binarize="static", n=300)
    with pytest.raises(PplVaeError, match=r"inputs=\{'ys': 'y'\}"):
        ppl_vae.fit(needs_ys, vae.guide, labelled, inputs=["y"], observe="obs", epochs=1,
                    quiet=True)
    flat = nn.Linear(64, 4)

    def flat_guide(x):
        pyro.module("flat", flat)
        with pyro.plate("data", x.shape[0]):
            loc, raw = flat(x).chunk(2, -1)  # a net written for flat vectors, fed images
            pyro.sample("latent", dist.Normal(loc, raw.exp()).to_event(1))

    with pytest.raises(PplVaeError, match=r"x.reshape\(x.shape\[0\], -1\)"):
        ppl_vae.fit(vae.model, flat_guide, digits, observe="obs", epochs=1, quiet=True)


def test_renamed_plate_and_mask_following_a_renamed_input():
    """``plate=`` renames frames; the partly-known mask reaches ``ys=None``."""
    data = ppl_vae.data.load("digits", binarize="static", n=300, labelled=30)
    seen = []
    net = nn.Linear(64 + 10, 4)
    decoder = nn.Linear(2 + 10, 64)

    def model(x, ys=None):
        pyro.module("decoder", decoder)
        with pyro.plate("documents", x.shape[0]):
            ys = pyro.sample("y", dist.OneHotCategorical(logits=x.new_zeros(10)), obs=ys)
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            hidden = torch.cat([z, ys.expand(*z.shape[:-1], 10)], -1)
            pyro.sample("obs", dist.Bernoulli(logits=decoder(hidden)).to_event(1),
                        obs=x.reshape(-1, 64))

    def guide(x, ys=None):
        pyro.module("net", net)
        seen.append(ys is None)
        with pyro.plate("documents", x.shape[0]):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(logits=x.new_zeros(x.shape[0], 10)))
            loc, raw = net(torch.cat([x.reshape(-1, 64), ys], -1)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))

    run = ppl_vae.fit(model, guide, data, elbo="trace", inputs={"ys": "y:onehot"},
                      observe="obs", plate="documents", epochs=1, batch_size=100, quiet=True)
    assert True in seen and False in seen  # unknown labels reach the guide as ys=None
    assert run.evaluate(data.test, inputs={"y": data.test_labels}, iw_samples=2)[
        "log_likelihood_of"] == "log p(x, y)"


def test_pyro_elbos_refuse_enumerated_sites():
    from examples.pyro_tutorials.ss_vae_m2 import SSVAE

    data = ppl_vae.data.load("digits", binarize="static", n=200, labelled=50)
    m2 = SSVAE(input_size=64, z_dim=2, hidden=8)
    for elbo in (Trace_ELBO(), pyro.infer.TraceMeanField_ELBO()):
        with pytest.raises(PplVaeError, match="TraceEnum_ELBO"):
            ppl_vae.fit(m2.model, m2.guide, data, elbo=elbo, inputs={"ys": "y:onehot"},
                        epochs=1, quiet=True)


def test_bound_methods_are_recorded_and_rebuilt(tmp_path):
    from examples.pyro_tutorials.vae import VAE

    vae = VAE()
    assert importable_path(vae.model) == ("examples.pyro_tutorials.vae:VAE.model", "")
    data = ppl_vae.data.load("mnist5k", n=300)
    ppl_vae.fit(vae.model, vae.guide, data, observe="obs", epochs=1, out=tmp_path, quiet=True,
                iw_samples=2)
    run = ppl_vae.load_run(tmp_path, trust_code=True)
    assert run.model.__self__ is run.guide.__self__  # one owner, rebuilt once
    assert torch.equal(run.model.__self__.decoder.fc1.weight, vae.decoder.fc1.weight)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ppl_vae", *args], capture_output=True,
                          text=True, env={"PYTHONPATH": ".", "PATH": ""})


def test_cli_model_class_and_what_it_takes(tmp_path):
    result = _cli("train", "--model", "torch.nn:Linear", "--data", "digits", "--out",
                  str(tmp_path / "bad"))
    assert result.returncode == 2 and "--model takes a factory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    folder = tmp_path / "vae"
    result = _cli("train", "--model", "examples.pyro_tutorials.vae:VAE", "--observe", "obs",
                  "--data", "mnist5k", "--n", "300", "--epochs", "1", "--out", str(folder),
                  "--quiet", "--iw-samples", "2")
    assert result.returncode == 0, result.stderr
    one, two, other = (json.loads(_cli("evaluate", str(folder), "--trust-run-code", "--quiet",
                                       "--iw-samples", "3", "--seed", seed).stdout)
                       for seed in ("1", "1", "2"))
    assert one == two and one["log_likelihood"] != other["log_likelihood"]
    result = _cli("sample", str(folder), "--trust-run-code", "-n", "4", "--out",
                  str(tmp_path / "s.png"))
    assert result.returncode == 0, result.stderr


def test_from_tensors_runs_say_how_to_use_the_cli(tmp_path):
    data = ppl_vae.data.from_tensors(torch.rand(60, 1, 8, 8).round())
    pair = ppl_vae.build("vae", latent_dim=2, data=data)
    ppl_vae.fit(pair.model, pair.guide, data, epochs=1, out=tmp_path, quiet=True, iw_samples=2)
    result = _cli("evaluate", str(tmp_path))
    assert result.returncode == 2 and "--data array" in result.stderr


def test_params_constrained_by_name_and_the_pyro_idiom(digits):
    net = nn.Linear(64, 4)

    def model(x):
        sigma = pyro.param("sigma_scale", torch.tensor(0.5),
                           constraint=dist.constraints.positive)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), sigma).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True).expand(-1, 64), 1.0)
                        .to_event(1), obs=x.reshape(-1, 64))

    def guide(x):
        pyro.module("net", net)
        with pyro.plate("data", x.shape[0]):
            loc, raw = net(x.reshape(-1, 64)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))

    run = ppl_vae.fit(model, guide, digits, epochs=1, quiet=True)
    params = run.params()
    assert params["sigma_scale"] > 0  # constrained, as pyro.param returns it
    assert torch.equal(params["sigma_scale"], run.pair.store["params"]["sigma_scale"].exp())
    with run.pair.scope():
        assert torch.equal(pyro.param("sigma_scale").detach(), params["sigma_scale"])
    assert "net$$$weight" in params


class GlobalNoise(nn.Module):
    """A global latent as Pyro users write it: outside the plate, used inside."""

    def __init__(self):
        super().__init__()
        self.decoder, self.encoder = nn.Linear(2, 64), nn.Linear(64, 4)

    def model(self, x):
        pyro.module("decoder", self.decoder)
        s = pyro.sample("noise", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decoder(z), s).to_event(1), obs=x.reshape(-1, 64))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        loc = pyro.param("noise_loc", torch.tensor(0.0))
        pyro.sample("noise", dist.LogNormal(loc, 0.1))
        with pyro.plate("data", x.shape[0]):
            m, raw = self.encoder(x.reshape(-1, 64)).chunk(2, -1)
            pyro.sample("z", dist.Normal(m, raw.exp()).to_event(1))


def test_global_latent_trains_evaluates_and_reports(tmp_path, digits):
    pair = GlobalNoise()
    run = ppl_vae.fit(pair.model, pair.guide, digits, epochs=1, out=tmp_path, quiet=True,
                      iw_samples=8)
    assert (tmp_path / "report.md").exists()
    assert run.report["evaluation"]["log_likelihood"] is None  # global: no per-example IS
    assert torch.isfinite(torch.tensor(run.report["evaluation"]["elbo"]))
    with run.pair.scope():
        assert epoch_particles(run.pair, digits.test, {}) == GLOBAL_EPOCH_PARTICLES


def test_flattened_data_feed_flat_networks_and_figures_still_draw_images(tmp_path):
    data = ppl_vae.data.load("digits", binarize="static", n=300, flatten=True)
    assert data.event_shape == (64,) and data.image_shape == (1, 8, 8)
    assert torch.equal(ppl_vae.data.load(**data.spec).train, data.train)  # spec rebuilds it
    decoder, encoder = nn.Linear(2, 64), nn.Linear(64, 4)  # flat in, flat out: no reshape

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            loc, raw = encoder(x).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))

    run = ppl_vae.fit(model, guide, data, epochs=1, out=tmp_path / "py", quiet=True,
                      iw_samples=2)
    assert "figures/reconstructions.png" in run.report["figures"]
    result = _cli("train", "--model", "vae", "--data", "digits", "--flatten", "--binarize",
                  "static", "--epochs", "1", "--latent-dim", "2", "--out", str(tmp_path / "cli"),
                  "--quiet", "--iw-samples", "2")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["data"]["flatten"] is True and config["event_shape"] == [64]
