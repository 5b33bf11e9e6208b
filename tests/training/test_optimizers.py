"""Optimizers and per-step hooks: any pyro.optim / torch optimizer steps as Pyro's SVI does,
is recorded and restored on resume, and ``on_step`` runs after each step (Pyro's
``clip_params()``)."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.cli.parser import build_parser
from ppl_vae.data import from_tensors
from ppl_vae.errors import PplVaeError

K, N, SEED = 3, 32, 3


def model(x):
    w = pyro.param("w", torch.full((K, x.shape[1]), 0.3))
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ w, 0.5).to_event(1), obs=x)


def guide(x):
    a = pyro.param("a", torch.full((x.shape[1], K), 0.1))
    s = pyro.param("s", torch.full((K,), 0.8), constraint=dist.constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ a, s).to_event(1))


def clip_params():
    """Pyro's sparse-gamma projection: keep a parameter above a floor after every step."""
    pyro.param("a").data.clamp_(min=0.05)


def _data():
    x = torch.randn(N + 8, 4, generator=torch.Generator().manual_seed(5))
    return from_tensors(x[:N], test=x[N:])


def _fit(data, optim, steps, **settings):
    settings = {"batch_size": N, "seed": SEED, "quiet": True, "report": False, "device": "cpu",
                **settings}
    run = ppl_vae.fit(model, guide, data, elbo=Trace_ELBO(), optim=optim, epochs=steps,
                      **settings)
    with run.pair.scope():
        return run, {k.removeprefix("store."): v.detach().clone()
                     for k, v in run.pair.named_parameters().items()}


def _svi(data, optim, steps, on_step=None):
    """Plain Pyro SVI on the batches ``fit`` draws (the full batch, rows in order)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(SEED)
    svi = SVI(model, guide, optim, Trace_ELBO())
    for _ in range(steps):
        svi.step(data.train)
        if on_step is not None:
            on_step()
    return {k: v.detach().clone() for k, v in pyro.get_param_store().named_parameters()}


OPTIMIZERS = {
    "clipped_adam": lambda: pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.9, "clip_norm": 2.0,
                                                    "betas": (0.8, 0.99)}),
    "adagrad_rmsprop": lambda: pyro.optim.AdagradRMSProp({"eta": 0.5, "t": 0.2}),
    "sgd": lambda: pyro.optim.SGD({"lr": 1e-3, "momentum": 0.9}),
    "per_tensor": lambda: pyro.optim.Adam(lambda name: {"lr": 0.2 if name == "w" else 0.01}),
    "clip_args": lambda: pyro.optim.SGD({"lr": 0.01}, {"clip_norm": 0.5, "clip_value": 0.1}),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_pyro_optimizers_give_the_parameters_pyro_svi_gives(name):
    data = _data()
    _, ours = _fit(data, OPTIMIZERS[name](), steps=3)
    theirs = _svi(data, OPTIMIZERS[name](), steps=3)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], rtol=1e-6, atol=1e-7), (name, key)
    assert not torch.allclose(ours["a"], torch.full_like(ours["a"], 0.1))  # it moved


def test_one_clipped_adam_step_is_bit_identical_to_svi():
    data = _data()
    make = OPTIMIZERS["clipped_adam"]
    run, ours = _fit(data, make(), steps=1)
    theirs = _svi(data, make(), steps=1)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert run.config.training.optim == "clippedadam"
    assert run.config.training.optim_args == {"lrd": 0.9, "clip_norm": 2.0}
    assert run.config.training.lr == 0.05 and run.config.training.betas == (0.8, 0.99)
    assert run.metrics[0]["lr"] == pytest.approx(0.05 * 0.9)  # decayed once, as in Pyro


def test_on_step_runs_after_every_step_like_pyros_clip_params():
    data = _data()
    make = lambda: pyro.optim.SGD({"lr": 0.01})  # noqa: E731  (drives a below the floor)
    _, free = _fit(data, make(), steps=3)
    assert free["a"].min() < 0.05  # without the projection the floor is crossed
    calls = []

    def hook():
        calls.append(1)
        clip_params()

    _, ours = _fit(data, make(), steps=3, on_step=hook)
    theirs = _svi(data, make(), steps=3, on_step=clip_params)
    assert len(calls) == 3 and ours["a"].min() >= 0.05
    assert all(torch.allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-7) for k in ours)


def test_named_optimizer_is_recorded_and_restored_on_resume(tmp_path):
    data = _data()
    settings = {"optim": "clipped_adam", "optim_args": {"lrd": 0.95}, "batch_size": 8}
    whole, ours = _fit(data, steps=3, out=tmp_path / "whole", **settings)
    _fit(data, steps=2, out=tmp_path / "part", **settings)
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["optimizer"]["optim"] == "clippedadam"
    assert config["optimizer"]["optim_args"] == {"lrd": 0.95}
    resumed, again = _fit(data, steps=3, out=tmp_path / "part", resume=True, **settings)
    assert all(torch.equal(ours[k], again[k]) for k in ours)  # optimizer state restored
    assert resumed.metrics[-1]["lr"] == whole.metrics[-1]["lr"] == pytest.approx(
        1e-3 * 0.95 ** 12)
    with pytest.raises(PplVaeError) as error:
        _fit(data, steps=4, out=tmp_path / "part", resume=True,
             **{**settings, "optim_args": {"lrd": 0.9}})
    assert "optimizer.optim_args.lrd: 0.95 → 0.9" in str(error.value)
    assert "\n" not in str(error.value)


def test_the_default_stays_fused_adam_on_the_per_example_loss(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, binary_data, pair=pair, epochs=1, batch_size=20,
                      quiet=True, report=False, device="cpu")
    assert run.config.training.optim == "adam" and run.config.training.optim_args is None
    from ppl_vae.training import optimizers
    params = {"model.w": torch.nn.Parameter(torch.zeros(2))}
    assert optimizers.build(params, run.config.training).defaults["fused"]
    assert optimizers.loss_scale(run.config.training, 20) == 1.0


SCHEDULERS = {  # Pyro's scheduler, and what the refusal says to give instead
    "ExponentialLR": ({"gamma": 0.7}, {"lr_schedule": "step", "lr_step_epochs": 1,
                                       "lr_gamma": 0.7}),
    "StepLR": ({"step_size": 2, "gamma": 0.5}, {"lr_schedule": "step", "lr_step_epochs": 2,
                                                 "lr_gamma": 0.5}),
    "MultiStepLR": ({"milestones": [1, 3], "gamma": 0.3},
                    {"lr_schedule": "multistep", "lr_milestones": (1, 3), "lr_gamma": 0.3}),
}


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_a_pyro_scheduler_is_refused_with_settings_that_give_its_parameters(kind):
    """Pyro's SVI stepping the scheduler once an epoch (one full batch an epoch here) and
    ``fit`` with the settings the one-line refusal names reach the same parameters."""
    def scheduler():
        return getattr(pyro.optim, kind)({"optimizer": torch.optim.SGD,
                                          "optim_args": {"lr": 0.002}, **SCHEDULERS[kind][0]})

    data = _data()
    with pytest.raises(PplVaeError) as error:
        _fit(data, scheduler(), steps=1)
    settings = SCHEDULERS[kind][1]
    told = str(error.value)
    assert "optim=pyro.optim.SGD({'lr': 0.002})" in told and "\n" not in told
    assert all(f"{k}={v!r}".replace("(1, 3)", "[1, 3]") in told for k, v in settings.items())
    _, ours = _fit(data, pyro.optim.SGD({"lr": 0.002}), steps=4, **settings)
    epochs = scheduler()
    theirs = _svi(data, epochs, steps=4, on_step=epochs.step)
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], rtol=1e-6, atol=1e-7), (kind, key)


@pytest.mark.parametrize("optim, settings, message", [
    ("nope", {}, "unknown --optim 'nope'"),
    ("lbfgs", {}, "needs a closure"),
    (pyro.optim.ExponentialLR({"optimizer": torch.optim.SGD, "optim_args": {"lr": 0.1},
                               "gamma": 0.9}), {}, "fit steps the learning rate itself"),
    ("sgd", {"optim_args": {"lr": 0.1}}, "give those as --lr"),
    ("clipped_adam", {"optim_args": {"lrdd": 0.9}}, "cannot build the optimizer clippedadam"),
    ("sgd", {"optim_args": {"momentum": -1}}, "cannot build the optimizer sgd"),
    (pyro.optim.SGD(lambda name: {"lrdd": 0.1}), {}, "sgd takes no option lrdd"),
    (pyro.optim.ClippedAdam({"lr": 0.1}), {"lr": 0.01}, "contradict"),
    ("adagrad_rmsprop", {"lr_schedule": "cosine"}, "needs an optimizer with a learning rate"),
    (object(), {}, "optim= takes a name"),
])
def test_optimizer_mistakes_are_one_line(optim, settings, message):
    with pytest.raises(PplVaeError, match=message) as error:
        _fit(_data(), optim, steps=1, **settings)
    assert "\n" not in str(error.value)


def test_cli_flags_choose_the_optimizer_and_resume_keeps_it(tmp_path, capsys):
    args = build_parser().parse_args(["train", "--out", "r", "--optim", "clipped_adam",
                                      "--optim-args", "lrd=0.999,clip_norm=10"])
    assert args.optim == "clipped_adam" and args.optim_args == {"lrd": 0.999, "clip_norm": 10}
    out = tmp_path / "run"
    tiny = ["--data", "shapes", "--size", "32", "--n", "60", "--model", "vae", "--latent-dim",
            "2", "--batch-size", "20", "--quiet", "--device", "cpu", "--iw-samples", "2"]
    assert main(["train", *tiny, "--epochs", "1", "--optim", "clipped_adam", "--optim-args",
                 "lrd=0.99", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["optimizer"]["optim"] == "clippedadam"
    assert main(["train", *tiny, "--epochs", "2", "--resume", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["lr"] == pytest.approx(1e-3 * 0.99 ** 4)  # 2 epochs x 2 steps, decayed
    capsys.readouterr()
    assert main(["train", *tiny, "--epochs", "3", "--resume", "--out", str(out), "--optim",
                 "sgd"]) == 2
    assert "optimizer.optim: 'clippedadam' → 'sgd'" in capsys.readouterr().err


class PlainSGD(torch.optim.SGD):
    """A user's own optimizer class, importable by its path."""


def test_a_users_optimizer_class_is_recorded_by_its_path_and_rebuilt_from_it():
    from ppl_vae.config import TrainConfig
    from ppl_vae.training import optimizers

    run, ours = _fit(_data(), PlainSGD, steps=2, optim_args={"momentum": 0.5}, lr=1e-3)
    theirs = _svi(_data(), pyro.optim.PyroOptim(PlainSGD, {"lr": 1e-3, "momentum": 0.5}), 2)
    assert all(torch.allclose(ours[k], theirs[k], rtol=1e-6, atol=1e-7) for k in ours)
    config = run.config.training
    assert config.optim == "tests.training.test_optimizers:PlainSGD"
    rebuilt = optimizers.build({"store.w": torch.nn.Parameter(torch.zeros(2))},
                               TrainConfig(optim=config.optim, optim_args=config.optim_args))
    assert type(rebuilt) is PlainSGD and rebuilt.defaults["momentum"] == 0.5
    with pytest.raises(PplVaeError, match="cannot import the optimizer"):
        optimizers.build({}, TrainConfig(optim="tests.training.nowhere:Gone"))
