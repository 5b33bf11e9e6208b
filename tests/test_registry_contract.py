"""Every registered estimator, model and guide, driven by the registries themselves: a new
entry is tested here without a line added. Each trains one epoch on tiny data, evaluates to
finite numbers, and (models and guides) is diagnosed."""

import math

import pytest

import ppl_vae
from ppl_vae.estimators import ESTIMATORS
from ppl_vae.registry import GUIDES, MODELS
from ppl_vae.reporting.diagnostics import diagnose_pair
from tests.conftest import tiny_binary

# the model a guide needs, where not the plain VAE
MODEL_FOR_GUIDE = {"delta": "autoencoder", "denoising": "autoencoder", "ngvae": "ngvae"}


def _train(model: str, guide: str | None, elbo: str = "trace"):
    data = tiny_binary(n=60)
    pair = ppl_vae.build(model, guide, data=data, latent_dim=2, net="mlp")
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo=elbo, epochs=1, batch_size=20,
                      quiet=True, device="cpu", pair=pair, report=False)
    return run, data


def _finite(evaluation: dict) -> bool:
    return all(math.isfinite(v) for k, v in evaluation.items() if isinstance(v, float))


@pytest.mark.parametrize("elbo", [entry.name for entry in ESTIMATORS.entries()])
def test_every_estimator_trains_and_evaluates(elbo):
    run, data = _train("vae", "diagonal", elbo)
    assert run.metrics[0]["step"] == 2 and math.isfinite(run.metrics[0]["train_objective"])
    assert _finite(run.evaluate(data.test, iw_samples=4, quiet=True))


@pytest.mark.parametrize("model, guide", [(entry.name, None) for entry in MODELS.entries()]
                         + [(MODEL_FOR_GUIDE.get(entry.name, "vae"), entry.name)
                            for entry in GUIDES.entries()])
def test_every_model_and_guide_trains_evaluates_and_is_diagnosed(model, guide, tmp_path):
    run, data = _train(model, guide)
    assert _finite(run.evaluate(data.test, iw_samples=4, quiet=True))
    report = diagnose_pair(run.model, run.guide, data, tmp_path / "diagnostics", n_examples=4,
                           draws=16, quiet=True, metrics="none", pair=run.pair)
    assert (tmp_path / "diagnostics" / "report.json").exists() and report["psis"]
