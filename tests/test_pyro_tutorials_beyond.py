"""Pyro's sparse gamma DEF and Deep Markov Model (examples/pyro_tutorials) through ``fit``
and through Pyro's own ``SVI`` with the same seed: the same ELBO step by step; then the
run folder reloads, evaluates, samples and is diagnosed."""

import json
import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO

import ppl_vae
from examples.pyro_tutorials import dmm, sparse_gamma_def
from ppl_vae.cli import main

STEPS = 4


def _pyro_svi(model, guide, x, elbo, optim, seed, steps=STEPS, after=None, initial=None,
              **kwargs):
    """Pyro's loop as its examples write it (from ``initial`` param-store values if given);
    the loss per example of each step."""
    pyro.clear_param_store()
    for name, value in (initial or {}).items():
        pyro.param(name, value.clone())
    pyro.set_rng_seed(seed)
    svi = SVI(model, guide, optim, elbo)
    losses = []
    for _ in range(steps):
        losses.append(svi.step(x, **kwargs) / x.shape[0])
        if after is not None:
            after()
    return losses


def _objectives(run) -> list[float]:
    return [-m["train_objective"] for m in run.metrics]


def _small_def():
    return sparse_gamma_def.SparseGammaDEF(top=6, mid=4, bottom=3, image_size=64)


def test_sparse_gamma_def_as_pyro_runs_it(tmp_path):
    data = sparse_gamma_def.synthetic_faces(n=30, def_=_small_def())
    def_ = _small_def()
    pair = ppl_vae.Pair(def_.model, def_.guide)
    with pair.scope():  # the guide's initial values, created once for both loops
        pair.check(data.train)
    initial = {k: v.detach().clone() for k, v in pair.store["params"].items()}
    run = sparse_gamma_def.train(data, def_, epochs=STEPS, out=tmp_path, quiet=True,
                                 iw_samples=2, pair=pair)
    assert run.params()["alpha_z_q_top"].shape == (30, 6)  # one row per face
    reference = _pyro_svi(def_.model, def_.guide, data.train, TraceMeanField_ELBO(),
                          pyro.optim.AdagradRMSProp({"eta": 4.5, "t": 0.1}), seed=0,
                          after=sparse_gamma_def.clip_params, initial=initial)
    np.testing.assert_allclose(_objectives(run), reference, rtol=2e-3)
    assert run.report["evaluation"]["split"] == "train" and run.report["figure_errors"] == []
    assert math.isfinite(run.report["evaluation"]["elbo"])
    reloaded = ppl_vae.load_run(tmp_path, model=def_.model, guide=def_.guide)
    x, inputs = reloaded.evaluation_examples(data)
    pyro.set_rng_seed(1)
    first = reloaded.evaluate(x, inputs=inputs, iw_samples=2)
    pyro.set_rng_seed(1)
    assert run.evaluate(x, inputs=inputs, iw_samples=2)["elbo"] == pytest.approx(first["elbo"])
    assert reloaded.sample(3).shape == (3, 64)


def test_sparse_gamma_def_in_minibatches_is_refused_in_one_line():
    data = sparse_gamma_def.synthetic_faces(n=30, def_=_small_def())
    def_ = _small_def()
    with pytest.raises(ppl_vae.PplVaeError, match="sized by the batch"):
        ppl_vae.fit(def_.model, def_.guide, data, observe="obs", batch_size=10, epochs=1,
                    quiet=True, report=False)


def _small_dmm():
    return dmm.DMM(input_dim=88, z_dim=4, emission_dim=8, transition_dim=8, rnn_dim=8)


def test_deep_markov_model_as_pyro_runs_it(tmp_path):
    data = dmm.synthetic_chorales(n=24, steps=8)
    torch.manual_seed(0)
    sequences = dmm.Sequences(_small_dmm())
    state = {k: v.clone() for k, v in sequences.dmm.state_dict().items()}
    n = data.train.shape[0]
    run = ppl_vae.fit(sequences.model, sequences.guide, data, inputs=["lengths"],
                      plate="z_minibatch", epochs=STEPS, batch_size=n, out=tmp_path,
                      quiet=True, iw_samples=2, seed=0,
                      optim=pyro.optim.ClippedAdam({"lr": 3e-3, "clip_norm": 10.0,
                                                    "lrd": 0.999}))
    reference = dmm.Sequences(_small_dmm())
    reference.dmm.load_state_dict(state)
    losses = _pyro_svi(reference.model, reference.guide, data.train, Trace_ELBO(),
                       pyro.optim.ClippedAdam({"lr": 3e-3, "clip_norm": 10.0, "lrd": 0.999}),
                       seed=0, lengths=data.inputs("train")["lengths"])
    np.testing.assert_allclose(_objectives(run), losses, rtol=2e-3)
    evaluation = run.report["evaluation"]
    assert math.isfinite(evaluation["log_likelihood"]) and run.report["figure_errors"] == []
    fresh = dmm.Sequences(_small_dmm())
    reloaded = ppl_vae.load_run(tmp_path, model=fresh.model, guide=fresh.guide)  # no probe
    x, inputs = reloaded.evaluation_examples(data)
    pyro.set_rng_seed(2)
    again = reloaded.evaluate(x, inputs=inputs, iw_samples=2)
    pyro.set_rng_seed(2)
    assert run.evaluate(x, inputs=inputs, iw_samples=2)["elbo"] == pytest.approx(again["elbo"])
    lengths = torch.tensor([3, 5])
    draws = reloaded.sample(2, inputs={"lengths": lengths}, x=torch.zeros(2, 8, 88))
    assert list(draws) == [f"obs_x_{t}" for t in range(1, 6)]
    report = ppl_vae.diagnose(tmp_path, model=fresh.model, guide=fresh.guide, data=data,
                              n_examples=4, draws=16, quiet=True, metrics="none")
    assert report["figure_errors"] == []


def test_cli_trains_reopens_and_samples_a_sequence_run(tmp_path):
    """Pyro's DMM from the command line: sequences and their lengths from one .npz, the run
    folder reopened by ``evaluate`` and ``sample`` (no invented inputs), non-image draws
    written as .npz, one array per observed site."""
    data = dmm.synthetic_chorales(n=24, steps=8)
    x = torch.cat([data.train, data.test]).numpy()
    lengths = torch.cat([data.inputs("train")["lengths"], data.inputs("test")["lengths"]])
    np.savez(tmp_path / "chorales.npz", x=x, lengths=lengths.numpy())
    run = str(tmp_path / "run")
    main(["train", "--model", "examples.pyro_tutorials.dmm:make_pair", "--data", "array",
          "--data-path", str(tmp_path / "chorales.npz"), "--key", "x", "--keep-shape",
          "--fields", "lengths", "--inputs", "lengths", "--plate", "z_minibatch",
          "--epochs", "1", "--batch-size", "10", "--iw-samples", "2", "--out", run, "--quiet"])
    main(["evaluate", run, "--trust-run-code", "--iw-samples", "2", "--quiet"])
    assert math.isfinite(json.loads((tmp_path / "run" / "evaluation.json").read_text())["elbo"])
    main(["sample", run, "--trust-run-code", "-n", "2", "--out", str(tmp_path / "s.png")])
    draws = np.load(tmp_path / "s.npz")
    assert draws.files[0] == "obs_x_1" and draws["obs_x_1"].shape == (2, 88)
