"""Pyro's four VAE examples as written (examples/pyro_tutorials): train one epoch, evaluate
twice (equal at a fixed seed), reload (equal again: buffers kept), diagnose, sample."""

import pyro
import pytest
import torch

import ppl_vae
from examples.pyro_tutorials import cvae, prodlda, ss_vae_m2, vae

IW = 4


def _cycle(tmp_path, make, data, eval_inputs=None, elbo_of=None, **fit_options):
    """The issue's round trip; returns the reloaded run and the first evaluation."""
    pair = make()
    if elbo_of is not None:
        fit_options["elbo"] = elbo_of(pair)
    run = ppl_vae.fit(pair.model, pair.guide, data, epochs=1, batch_size=50, out=tmp_path,
                      quiet=True, iw_samples=IW, **fit_options)
    assert run.report["figure_errors"] == [] and run.report["hook_errors"] == []
    pyro.set_rng_seed(0)
    first = run.evaluate(data.test, inputs=eval_inputs, iw_samples=IW)
    pyro.set_rng_seed(0)
    assert run.evaluate(data.test, inputs=eval_inputs, iw_samples=IW) == first
    other = make()
    reloaded = ppl_vae.load_run(tmp_path, model=other.model, guide=other.guide)
    pyro.set_rng_seed(0)
    assert reloaded.evaluate(data.test, inputs=eval_inputs, iw_samples=IW)["elbo"] == first["elbo"]
    report = ppl_vae.diagnose(tmp_path, model=other.model, guide=other.guide, data=data,
                              n_examples=8, draws=16, quiet=True, metrics="none")
    assert report["figure_errors"] == []
    return reloaded, first


@pytest.fixture(scope="module")
def digits():
    return ppl_vae.data.load("digits", binarize="static", n=400)


def test_vae_as_written(tmp_path, digits):
    run, result = _cycle(tmp_path, lambda: vae.VAE(z_dim=4, hidden_dim=32, pixels=64), digits,
                         observe="obs")
    assert result["log_likelihood_of"] == "log p(x)"
    assert run.sample(5).shape == (5, 1, 8, 8)  # observed flat, returned as the data's shape
    assert (tmp_path / "figures" / "reconstructions.png").exists()


def test_ss_vae_m2_as_written(tmp_path):
    data = ppl_vae.data.load("digits", binarize="static", n=400, labelled=100)
    run, result = _cycle(tmp_path, lambda: ss_vae_m2.SSVAE(input_size=64, z_dim=4, hidden=32),
                         data, eval_inputs={"y": data.test_labels}, elbo_of=ss_vae_m2.m2_loss,
                         inputs={"ys": "y:onehot"})
    assert result["log_likelihood_of"] == "log p(x, y)"  # y is observed where given
    assert run.config.pair["names"]["keywords"] == {"ys": ["y", "onehot", 10]}
    assert run.sample(10, inputs={"y": torch.arange(10)}).shape == (10, 1, 8, 8)


def test_cvae_as_written(tmp_path, digits):
    data = cvae.quadrant_data(digits)
    run, _ = _cycle(tmp_path, lambda: cvae.CVAE(z_dim=4, hidden_1=32, hidden_2=32, pixels=64),
                    data, eval_inputs={"ys": data.test_fields["ys"]}, inputs=["ys"], observe="y")
    completions = run.sample(3, x=data.test[:3], inputs={"ys": None})
    assert completions.shape == (3, 1, 8, 8)


def test_prodlda_as_written(tmp_path):
    docs, _ = prodlda.planted_corpus(300, vocab_size=30, num_topics=3)
    data = ppl_vae.data.from_tensors(docs)
    _cycle(tmp_path, lambda: prodlda.ProdLDA(vocab_size=30, num_topics=3, hidden=16), data,
           observe="obs", plate="documents")
    assert not (tmp_path / "figures" / "reconstructions.png").exists()  # counts: no images
