"""The bad-input catalogue beyond the CLI flags (see test_cli.py): Python API mistakes,
broken run folders and pairs that break the contract. Each is one PplVaeError line."""

import json

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppl_vae
from ppl_vae.cli import main
from ppl_vae.errors import PplVaeError


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    return message


def _trained_run(data, folder):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp")
    ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=20, out=folder, quiet=True,
                device="cpu", pair=pair)


def test_no_data_plate(binary_data):
    def model(x):
        z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(2))
        pyro.sample("x", dist.Bernoulli(logits=z.sum() + x * 0).to_event(4), obs=x)

    def guide(x):
        pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(2))

    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, guide, binary_data, epochs=1, quiet=True, device="cpu")
    assert "is in no plate" in _one_line(error) and "pyro.plate('data'" in _one_line(error)


def test_mismatched_site_names(binary_data):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=x * 0).to_event(3), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("code", dist.Normal(x.new_zeros(2), 1.0).to_event(1))

    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, guide, binary_data, epochs=1, quiet=True, device="cpu")
    assert "['z'] and guide sites ['code'] differ" in _one_line(error)


def test_observation_not_named_x(binary_data):
    def model(x):  # observed, but outside the data plate: nothing is "the data"
        pyro.sample("image", dist.Bernoulli(logits=x * 0).to_event(4), obs=x)

    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, lambda x: None, binary_data, epochs=1, quiet=True, device="cpu")
    assert "no observed site named 'x' nor any inside pyro.plate('data')" in _one_line(error)


def test_a_pair_without_parameters_is_told_so(binary_data):
    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("image", dist.Bernoulli(logits=x * 0).to_event(3), obs=x)

    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(model, lambda x: None, binary_data, epochs=1, quiet=True, device="cpu")
    assert "no parameters to train" in _one_line(error)


@pytest.mark.parametrize("options, message", [
    ({"likelihood": "poisson"}, "unknown likelihood 'poisson'"),
    ({"net": "transformer"}, "unknown net 'transformer'"),
    ({"net": "conv", "event_shape": (5,)}, "--net conv needs"),
    ({"sigma": -1.0, "likelihood": "gaussian"}, "--sigma must be positive"),
    ({"corruption": 1.5}, "--corruption must be in [0, 1)"),
    ({"latent_dim": -3}, "--latent-dim must be at least 1"),
    ({"dropout": 0.1}, "unknown option(s) ['dropout']"),
])
def test_bad_build_options(options, message):
    model = "autoencoder" if "corruption" in options else "vae"
    guide = "denoising" if "corruption" in options else None
    options = {"event_shape": (1, 8, 8), **options}
    with pytest.raises(PplVaeError) as error:
        ppl_vae.build(model, guide, **options)
    assert message in _one_line(error)


def test_diagonal_guide_for_a_model_without_one_latent():
    with pytest.raises(PplVaeError) as error:
        ppl_vae.registry.GUIDES.get("diagonal").factory(object(), (1, 8, 8))
    assert "needs a model with one vector latent site" in _one_line(error)


def test_nan_in_training_data(binary_data):
    binary_data.train[3, 0, 0, 0] = float("nan")
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, quiet=True, device="cpu")
    assert "NaN" in _one_line(error)


def test_grey_levels_for_bernoulli(binary_data):
    binary_data.train = binary_data.train * 0.5
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data, net="mlp")
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, quiet=True, device="cpu")
    assert "--binarize" in _one_line(error)


def test_corrupt_config(binary_data, tmp_path, capsys):
    _trained_run(binary_data, tmp_path / "r")
    (tmp_path / "r" / "config.json").write_text("{ not json")
    assert main(["evaluate", str(tmp_path / "r")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_config_from_a_newer_version(binary_data, tmp_path, capsys):
    _trained_run(binary_data, tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    (tmp_path / "r" / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    assert main(["evaluate", str(tmp_path / "r")]) == 2
    assert "format version 99" in capsys.readouterr().err


def test_folder_without_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a ppl-vae run folder" in capsys.readouterr().err


def test_checkpoint_of_another_pair(binary_data, tmp_path):
    _trained_run(binary_data, tmp_path / "r")
    with pytest.raises(PplVaeError) as error:
        ppl_vae.load_run(tmp_path / "r", model=ppl_vae.build("vae", latent_dim=3,
                                                             data=binary_data).model,
                         guide=ppl_vae.build("vae", latent_dim=3, data=binary_data).guide)
    assert "checkpoint" in _one_line(error)


def test_user_data_array_with_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.zeros(10, dtype=np.float32))
    assert main(["train", "--data", "array", "--data-path", str(tmp_path / "flat.npy"),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl-vae: error:") and err.count("\n") == 1


def test_resume_without_checkpoint(binary_data, tmp_path):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data)
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, out=tmp_path / "r",
                    resume=True, quiet=True)
    assert "cannot resume" in _one_line(error)


def test_resume_without_a_folder(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data)
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, binary_data, epochs=1, resume=True, quiet=True)
    assert "give out=" in _one_line(error)


def test_batch_size_zero(binary_data):
    pair = ppl_vae.build("vae", latent_dim=2, data=binary_data)
    with pytest.raises(PplVaeError) as error:
        ppl_vae.fit(pair.model, pair.guide, binary_data, batch_size=0, quiet=True)
    assert "--batch-size must be at least 1" in _one_line(error)
