"""examples/semi_supervised_m2.py: the M2 pair trains through fit on partially labelled data."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

import ppl_vae

_PATH = Path(__file__).resolve().parents[1] / "examples" / "semi_supervised_m2.py"


@pytest.fixture(scope="module")
def m2():
    spec = importlib.util.spec_from_file_location("semi_supervised_m2", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits():
    return ppl_vae.data.load("digits", labelled=0.2, seed=0, binarize="static")


def _pair(m2, latent_dim=4, hidden=32):
    pyro.set_rng_seed(0)
    return m2.M2Model(64, latent_dim, hidden), m2.M2Guide(64, latent_dim, hidden)


def test_fit_sees_both_parts_and_the_objective_improves(m2, digits):
    model, guide = _pair(m2)
    calls = []
    guide.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs.get("y")), with_kwargs=True)
    run = ppl_vae.fit(model, guide, digits, elbo=m2.m2_loss(alpha=5.0), inputs=["y"],
                      epochs=4, batch_size=64, lr=3e-3, seed=0, device="cpu", quiet=True)
    given = [y for y in calls if y is not None]
    assert any(y is None for y in calls) and given
    # training batches of 64 are split: the labelled part (~20 %) is called on its own
    assert any(0 < len(y) < 32 for y in given)
    objective = [m["train_objective"] for m in run.metrics]
    assert objective[-1] > objective[0] + 1.0, objective
    test_elbo = [m["test_elbo"] for m in run.metrics]
    assert test_elbo[-1] > test_elbo[0], test_elbo
    assert m2.accuracy(run.guide.classifier, digits.test, digits.test_labels) > 0.3


def test_unlabelled_loss_is_the_enumerated_bound(m2, digits):
    """U(x) = sum_y q(y|x) [L(x, y) - log q(y|x)], the sum over y written out by hand."""
    model, guide = _pair(m2, latent_dim=3, hidden=16)
    x = digits.train[:5]
    pyro.set_rng_seed(1)
    loss = m2.m2_loss(alpha=1.0)
    # per-y L(x, y) by Monte Carlo with many draws, through the labelled form
    log_q = torch.log_softmax(guide.classifier(x), -1).detach()
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=4000, vectorize_particles=True,
                          strict_enumeration_warning=False)
    per_y = torch.tensor([[-elbo.loss(model, guide, x[i:i + 1], y=torch.tensor([c]))
                           for c in range(10)] for i in range(5)])
    expected = -(log_q.exp() * (per_y - log_q)).sum()
    draws = torch.stack([loss(model, guide, x).detach() for _ in range(400)])
    assert draws.mean().item() == pytest.approx(expected.item(), abs=4 * draws.std().item()
                                                / math.sqrt(400) + 0.05)


def test_labelled_loss_adds_alpha_cross_entropy(m2, digits):
    model, guide = _pair(m2)
    x, y = digits.train[:8], digits.train_labels[:8]
    pyro.set_rng_seed(3)
    plain = m2.m2_loss(alpha=0.0)(model, guide, x, y=y).detach()
    pyro.set_rng_seed(3)
    weighted = m2.m2_loss(alpha=2.0)(model, guide, x, y=y).detach()
    ce = torch.nn.functional.cross_entropy(guide.classifier(x), y, reduction="sum").detach()
    assert (weighted - plain).item() == pytest.approx(2.0 * ce.item(), rel=1e-5)


def test_enumerated_guide_broadcasts_y_against_the_batch(m2, digits):
    model, guide = _pair(m2)
    x = digits.train[:7]
    enum_guide = poutine.enum(guide, first_available_dim=-2)
    trace = poutine.trace(enum_guide).get_trace(x)
    assert trace.nodes["y"]["value"].shape == (10, 1)
    assert trace.nodes["z"]["value"].shape == (10, 7, 4)
    model_trace = poutine.trace(poutine.replay(model, trace=trace)).get_trace(x)
    assert model_trace.nodes["x"]["fn"].batch_shape == (10, 7)


@pytest.mark.slow
def test_quick_cli_writes_results(m2, tmp_path, capsys):
    rows = m2.main(["--quick", "--seeds", "0", "--out", str(tmp_path)])
    assert "M2 acc" in capsys.readouterr().out
    saved = (tmp_path / "m2_results.json").read_text()
    assert rows[0]["seed"] == 0 and "m2_accuracy" in saved
    assert 0.0 <= rows[0]["m2_accuracy"] <= 1.0 and rows[0]["m2_test_elbo"] < 0
