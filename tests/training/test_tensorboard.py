"""TensorBoard events in the run folder, read back with TensorBoard's own reader."""

import sys

import pytest
import torch

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.errors import PplVaeError
from tests.conftest import tiny_binary

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _events(folder):
    reader = event_accumulator.EventAccumulator(
        str(folder / "tensorboard"), size_guidance={event_accumulator.IMAGES: 0,
                                                    event_accumulator.HISTOGRAMS: 0})
    return reader.Reload()


def _scalars(reader, tag):
    return {e.step: e.value for e in reader.Scalars(tag)}


def test_a_run_writes_curves_kl_and_images_that_tensorboard_reads(tmp_path):
    data = tiny_binary(n=80)
    pair = ppl_vae.build("vae", latent_dim=3, data=data, net="mlp", seed=0)
    run = ppl_vae.fit(pair.model, pair.guide, data, pair=pair, epochs=3, batch_size=20,
                      warmup_steps=4, log_every=1, eval_every=2, quiet=True, report=False,
                      device="cpu", out=tmp_path / "r", tensorboard=True)
    reader = _events(tmp_path / "r")
    tags = reader.Tags()
    for key in ("train_objective", "lr", "warmup_scale"):
        assert _scalars(reader, f"epoch/{key}") == pytest.approx(
            {m["epoch"]: m[key] for m in run.metrics})
    assert _scalars(reader, "epoch/test_elbo") == pytest.approx(
        {m["epoch"]: m["test_elbo"] for m in run.metrics if m["test_elbo"] is not None})
    assert sorted(_scalars(reader, "epoch/test_elbo")) == [2, 3]  # eval_every=2, and the last
    assert len(reader.Scalars("step/train_objective")) == 9  # every step (log_every=1)
    kl = [_scalars(reader, f"kl/z/{d}") for d in range(3)]
    assert all(sorted(k) == [2, 3] for k in kl) and all(v >= -0.05 for k in kl for v in k.values())
    assert "kl/z/3" not in tags["scalars"]
    for name in ("reconstructions", "prior_samples"):
        assert [e.step for e in reader.Images(f"images/{name}")] == [2, 3]
    shown = reader.Images("images/reconstructions")[0]
    assert shown.width * shown.height == 2 * 16 * 8 * 8  # 16 inputs over their means, tiled


def test_per_dimension_kl_is_the_guide_against_the_prior(tmp_path):
    """A posterior of known KL: the guide q = N(1, 0.5) in each dimension, prior N(0, 1)."""
    import pyro
    import pyro.distributions as dist

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), 1.0).to_event(1), obs=x)

    def guide(x):
        shift = pyro.param("shift", torch.tensor([1.0, 0.0]))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(shift, torch.tensor([0.5, 1.0])).to_event(1))

    data = ppl_vae.data.from_tensors(torch.randn(300, 1), test=torch.randn(300, 1))
    ppl_vae.fit(model, guide, data, epochs=1, batch_size=300, lr=1e-9, quiet=True,
                report=False, device="cpu", out=tmp_path / "k", tensorboard=True)
    reader = _events(tmp_path / "k")
    exact = 0.5 * (0.25 + 1.0 - 1.0) - torch.log(torch.tensor(0.5)).item()  # KL(N(1,.5)||N(0,1))
    assert _scalars(reader, "kl/z/0")[1] == pytest.approx(exact, abs=0.15)
    assert _scalars(reader, "kl/z/1")[1] == pytest.approx(0.0, abs=1e-6)  # q = p exactly


def test_ngvae_inferred_variances_arrive_through_its_report_hooks(tmp_path):
    data = tiny_binary(n=60)
    pair = ppl_vae.build("ngvae", latent_dim=3, data=data, net="mlp", seed=0)
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, epochs=1, batch_size=20, quiet=True,
                report=False, device="cpu", out=tmp_path / "n", tensorboard=True,
                elbo="meanfield")
    reader = _events(tmp_path / "n")
    histograms = [tag for tag in reader.Tags()["histograms"]
                  if tag.startswith("ngvae_variances/")]
    assert len(histograms) == 1
    counted = reader.Histograms(histograms[0])[0].histogram_value
    assert counted.num == 20 * 3  # every test example x latent dimension
    assert _scalars(reader, "guide_report/informative_components")[1] in (0, 1, 2, 3)


def test_resume_purges_the_events_after_the_checkpoint(tmp_path):
    data = tiny_binary(n=60)
    settings = {"epochs": 2, "batch_size": 20, "quiet": True, "report": False,
                "device": "cpu", "out": tmp_path / "r", "tensorboard": True}
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, **settings)
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, resume=True, **{**settings,
                                                                          "epochs": 3})
    steps = [e.step for e in _events(tmp_path / "r").Scalars("epoch/train_objective")]
    assert steps == [1, 2, 3]


def test_without_tensorboard_the_flag_is_one_line_naming_the_extra(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.delitem(sys.modules, "ppl_vae.training.board", raising=False)
    data = tiny_binary(n=60)
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp")
    with pytest.raises(PplVaeError, match=r"pip install 'ppl-vae\[tensorboard\]'"):
        ppl_vae.fit(pair.model, pair.guide, data, pair=pair, epochs=1, device="cpu",
                    out=tmp_path / "r", tensorboard=True)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()  # refused before training
    code = main(["train", "--data", "shapes", "--size", "32", "--n", "60", "--epochs", "1",
                 "--quiet", "--device", "cpu", "--out", str(tmp_path / "c"), "--tensorboard"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ppl-vae[tensorboard]" in err
