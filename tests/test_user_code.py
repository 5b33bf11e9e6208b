"""User models everywhere: `--model package.module:factory` on the CLI, runs trained from
Python that record their importable pair, and run folders that never import code unasked."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule
from torch import nn

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.errors import PplVaeError

USER_MODULE = '''
import pyro, pyro.distributions as dist, torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn.functional import one_hot, softplus


class ConditionalVAE(PyroModule):
    """z ~ N(0, I), x | y, z ~ Bernoulli(f(z, onehot(y)))."""

    def __init__(self, pixels, latent_dim):
        super().__init__()
        self.latent_dim, self.decoder = latent_dim, nn.Linear(latent_dim + 10, pixels)

    def forward(self, x, y):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            code = one_hot(y, 10).float().expand(*z.shape[:-1], 10)
            logits = self.decoder(torch.cat([z, code], -1)).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class Encoder(PyroModule):
    def __init__(self, pixels, latent_dim):
        super().__init__()
        self.net = nn.Linear(pixels + 10, 2 * latent_dim)

    def forward(self, x, y):
        loc, raw = self.net(torch.cat([x.flatten(1), one_hot(y, 10).float()], -1)).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, softplus(raw) + 1e-3).to_event(1))


def make_pair(data, latent_dim=2):
    pixels = int(torch.tensor(data.event_shape).prod())
    return ConditionalVAE(pixels, latent_dim), Encoder(pixels, latent_dim)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "userpairs.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "userpairs:make_pair"


def _cli(args, capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err.strip()


def test_factory_round_trip_train_evaluate_sample_diagnose(user_module, tmp_path, capsys):
    run = str(tmp_path / "run")
    code, _ = _cli(["train", "--model", user_module, "--data", "digits", "--n", "300",
                    "--binarize", "static", "--inputs", "y", "--latent-dim", "2", "--epochs", "2",
                    "--iw-samples", "5", "--device", "cpu", "--quiet", "--out", run], capsys)
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["pair"]["source"] == "factory" and config["inputs"] == {"y": ["int64", []]}
    assert (tmp_path / "run" / "report.md").exists()
    code, err = _cli(["evaluate", run, "--iw-samples", "5"], capsys)
    assert code == 2 and "names code to import (userpairs:make_pair)" in err
    assert _cli(["evaluate", run, "--iw-samples", "5", "--trust-run-code"], capsys)[0] == 0
    grid = tmp_path / "grid.png"
    assert _cli(["sample", run, "--model", user_module, "-n", "30", "--out", str(grid)],
                capsys)[0] == 0
    assert grid.stat().st_size > 0
    code, err = _cli(["diagnose", run, "--trust-run-code", "--draws", "20", "--n-examples", "5",
                      "--metrics", "none", "--quiet"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "diagnostics" / "report.json").exists()


def test_a_run_folder_never_imports_the_code_it_names_unasked(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "ran.txt"
    (tmp_path / "sideeffect.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\ndef make(data):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "format_version": 1, "event_shape": [1, 8, 8], "train": {},
        "data": {"name": "digits", "n": 50},
        "pair": {"source": "factory", "model": "sideeffect:make", "guide": "from sideeffect:make",
                 "options": {}}}))
    with pytest.raises(PplVaeError, match="a run folder is data, not code"):
        ppl_vae.load_run(folder)
    code, err = _cli(["evaluate", str(folder)], capsys)
    assert code == 2 and "--trust-run-code" in err
    assert not marker.exists()


class ModuleLevelModel(PyroModule):
    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(2, 64)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            logits = self.decoder(z).reshape(*z.shape[:-1], *x.shape[1:])
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=x)


class ModuleLevelGuide(PyroModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(64, 4)

    def forward(self, x):
        loc, raw = self.net(x.flatten(1)).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, raw.exp()).to_event(1))


def test_fit_from_python_records_its_importable_pair_and_writes_the_report(binary_data,
                                                                          tmp_path):
    data = ppl_vae.data.from_tensors(binary_data.train, test=binary_data.test)
    model, guide = ModuleLevelModel(), ModuleLevelGuide()
    ppl_vae.fit(model, guide, data, epochs=1, batch_size=20, quiet=True, device="cpu",
                out=tmp_path / "r", iw_samples=5)
    spec = json.loads((tmp_path / "r" / "config.json").read_text())["pair"]
    assert spec["source"] == "objects" and spec["model"].endswith(":ModuleLevelModel")
    assert (tmp_path / "r" / "report.md").exists()
    assert {p.name for p in (tmp_path / "r" / "figures").iterdir()} >= {
        "reconstructions.png", "prior_samples.png", "loss_curve.png"}
    run = ppl_vae.load_run(tmp_path / "r", trust_code=True)
    for name, value in run.pair.named_parameters().items():
        source = model if name.startswith("model.") else guide
        assert torch.equal(value, dict(source.named_parameters())[name.split(".", 1)[1]])


def test_a_closure_pair_says_why_it_cannot_be_reloaded(binary_data, tmp_path):
    decoder = nn.Linear(2, 64)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z).reshape(*z.shape[:-1], 1, 8, 8))
                        .to_event(3), obs=x)

    ppl_vae.fit(model, ModuleLevelGuide(), binary_data, epochs=1, batch_size=20, quiet=True,
                device="cpu", out=tmp_path / "c", report=False)
    with pytest.raises(PplVaeError, match="lambda or closure.*pass model= and guide="):
        ppl_vae.load_run(tmp_path / "c", trust_code=True)
