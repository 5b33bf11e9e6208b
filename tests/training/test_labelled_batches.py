"""``labelled_batches="spaced"`` and ``auxiliary=``: Pyro's ss-vae schedule through ``fit``.

Known answers: the schedule's steps for small and Pyro-sized sets, worked by hand; and
``fit`` step for step against two ``SVI`` objects sharing one ``pyro.optim.Adam``, stepped
by hand on the same batches from the same initial values, as Pyro's example steps them.
"""

from __future__ import annotations

import copy

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from torch import nn

import ppl_vae
from ppl_vae.errors import PplVaeError
from ppl_vae.training.labelled import SpacedBatches

CLASSES, DIM = 3, 4


def schedule(n: int, labelled: int, batch: int) -> SpacedBatches:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.arange(labelled) * (n // labelled)] = True
    return SpacedBatches.of({"y": mask}, batch)


def test_steps_by_hand():
    """N=20, L=4, B=2: k = 5, S = 2, U = 8; labelled batches at steps 1 and 6."""
    steps = schedule(20, 4, 2).steps()
    assert [kind for _, _, kind in steps] == [False, True, False, False, False, False,
                                              True, False, False, False]
    assert [(a, b) for a, b, _ in steps] == [(i, i + 2) for i in range(0, 20, 2)]


def test_pyro_sized_steps():
    """3,000 of 50,000 at 200: every 16th batch from step 1 (Pyro's comment), 250 steps;
    100 at 100: one labelled batch at step 1 of 500; short last batches are kept."""
    steps = schedule(50_000, 3_000, 200).steps()
    assert len(steps) == 250
    assert [i for i, (_, _, kind) in enumerate(steps) if kind] == list(range(1, 226, 16))
    steps = schedule(50_000, 100, 100).steps()
    assert len(steps) == 500 and [i for i, s in enumerate(steps) if s[2]] == [1]
    steps = schedule(25, 5, 2).steps()  # S = 3 (2, 2, 1), U = 10
    assert [b - a for a, b, kind in steps if kind] == [2, 2, 1] and steps[-1][1] == 25


def test_order_puts_labelled_rows_in_labelled_steps():
    plan = schedule(30, 6, 4)
    order = plan.order(torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(30))
    labelled = set(plan.labelled.tolist())
    for start, stop, kind in plan.steps():
        assert all((row in labelled) == kind for row in order[start:stop].tolist())


@pytest.mark.parametrize("labelled", [0, 11, 20])
def test_refused_counts(labelled):
    mask = torch.zeros(20, dtype=torch.bool)
    mask[:labelled] = True
    with pytest.raises(PplVaeError, match="between 1 and half"):
        SpacedBatches.of({"y": mask}, 2)


class Tiny(nn.Module):
    """y ~ Cat(1/3), x | y ~ N(means[y], I); q(y | x) = softmax(classifier(x)), enumerated;
    the classification pair scaled by 5, as Pyro's ``model_classify``/``guide_classify``."""

    def __init__(self):
        super().__init__()
        self.means = nn.Parameter(torch.randn(CLASSES, DIM))
        self.classifier = nn.Linear(DIM, CLASSES)

    def model(self, x, y=None):
        pyro.module("tiny", self)
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=x.new_zeros(CLASSES)), obs=y)
            pyro.sample("x", dist.Normal(self.means[y], 1.0).to_event(1), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", x.shape[0]):
            if y is None:
                pyro.sample("y", dist.Categorical(logits=self.classifier(x)),
                            infer={"enumerate": "parallel"})

    def model_classify(self, x, y=None):
        pyro.module("tiny", self)
        with pyro.plate("data", x.shape[0]):
            if y is not None:
                with poutine.scale(scale=5.0):
                    pyro.sample("y_aux", dist.Categorical(logits=self.classifier(x)), obs=y)

    def guide_classify(self, x, y=None):
        pass


def tiny_data(n: int = 40, labelled: int = 8, scale: float = 1.0):
    generator = torch.Generator().manual_seed(1)
    y = torch.arange(n) % CLASSES
    x = scale * (torch.randn(n, DIM, generator=generator) + 2.0 * nn.functional.one_hot(y, DIM))
    return ppl_vae.data.from_tensors(x, x[:9], labels=y, test_labels=y[:9], labelled=labelled,
                                     seed=0)


def by_hand(tiny: Tiny, data, epochs: int, batch: int, seed: int, lr: float,
            auxiliary: bool) -> Tiny:
    """Pyro's example's loop: one Adam shared by two SVIs, each batch as the schedule says."""
    pyro.clear_param_store()
    optimizer = pyro.optim.Adam({"lr": lr})
    svi = SVI(tiny.model, tiny.guide, optimizer, TraceEnum_ELBO(max_plate_nesting=1))
    classify = SVI(tiny.model_classify, tiny.guide_classify, optimizer, Trace_ELBO())
    plan = SpacedBatches.of(data.known, batch)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = plan.order(generator)
        for start, stop, labelled in plan.steps():
            rows = order[start:stop]
            if labelled:
                svi.step(data.train[rows], data.train_labels[rows])
                if auxiliary:
                    classify.step(data.train[rows], data.train_labels[rows])
            else:
                svi.step(data.train[rows])
    pyro.clear_param_store()
    return tiny


@pytest.mark.parametrize("auxiliary, scale", [(True, 1.0), (False, 1.0), (True, 1e-8)])
def test_fit_steps_as_two_hand_stepped_svis(auxiliary, scale):
    """Same initial values, seed and batches: the weights agree after two epochs. With data
    of scale 1e-8 (and means from 0) the gradients are of Adam's ε: the steps agree only
    when taken, as SVI takes them, on the batch's summed loss (M2's tiny initial weights)."""
    data = tiny_data(scale=scale)
    torch.manual_seed(0)
    ours = Tiny()
    if scale != 1.0:
        with torch.no_grad():
            ours.means.zero_()
    theirs = by_hand(copy.deepcopy(ours), data, epochs=2, batch=4, seed=3, lr=0.05,
                     auxiliary=auxiliary)
    start = copy.deepcopy(ours)
    ppl_vae.fit(ours.model, ours.guide, data, elbo=TraceEnum_ELBO(max_plate_nesting=1),
                inputs=["y"], epochs=2, batch_size=4, seed=3, lr=0.05, quiet=True,
                report=False, labelled_batches="spaced",
                auxiliary=(ours.model_classify, ours.guide_classify) if auxiliary else None)
    for (name, mine), other, first in zip(ours.named_parameters(), theirs.parameters(),
                                          start.parameters()):
        assert not torch.allclose(mine, first), name  # training moved it
        torch.testing.assert_close(mine, other, rtol=1e-5, atol=1e-6, msg=name)


def test_auxiliary_as_a_callable_loss():
    """``auxiliary=loss(x, y=...)``: registering the module (``pyro.module``), it reaches every
    parameter as the classification pair does and gives the same steps; without, only the
    classifier moves on its steps (the means keep still: SVI's rule)."""
    data = tiny_data()
    torch.manual_seed(0)
    start = Tiny()
    theirs = by_hand(copy.deepcopy(start), data, epochs=1, batch=4, seed=3, lr=0.05,
                     auxiliary=True)
    trained = {}
    for registered in (True, False):
        ours = copy.deepcopy(start)

        def loss(x, y, ours=ours, registered=registered):
            if registered:
                pyro.module("tiny", ours)
            return 5.0 * nn.functional.cross_entropy(ours.classifier(x), y, reduction="sum")

        ppl_vae.fit(ours.model, ours.guide, data, elbo=TraceEnum_ELBO(max_plate_nesting=1),
                    inputs=["y"], epochs=1, batch_size=4, seed=3, lr=0.05, quiet=True,
                    report=False, labelled_batches="spaced", auxiliary=loss)
        trained[registered] = ours
    for mine, other in zip(trained[True].parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, other, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(trained[False].means, theirs.means, atol=1e-4)


def test_mixed_batches_differ():
    """The control: the default mixed batches do not give Pyro's steps."""
    data = tiny_data()
    torch.manual_seed(0)
    ours = Tiny()
    theirs = by_hand(copy.deepcopy(ours), data, epochs=1, batch=4, seed=3, lr=0.05,
                     auxiliary=False)
    ppl_vae.fit(ours.model, ours.guide, data, elbo=TraceEnum_ELBO(max_plate_nesting=1),
                inputs=["y"], epochs=1, batch_size=4, seed=3, lr=0.05, quiet=True,
                report=False)
    assert not torch.allclose(ours.means, theirs.means, atol=1e-3)


def test_spaced_run_resumes_bit_for_bit(tmp_path):
    data = tiny_data()
    settings = dict(elbo=TraceEnum_ELBO(max_plate_nesting=1), inputs=["y"], batch_size=4,
                    seed=3, lr=0.05, quiet=True, report=False, labelled_batches="spaced")
    torch.manual_seed(0)
    whole = Tiny()
    split = copy.deepcopy(whole)
    ppl_vae.fit(whole.model, whole.guide, data, epochs=2,
                auxiliary=(whole.model_classify, whole.guide_classify), **settings)
    ppl_vae.fit(split.model, split.guide, data, epochs=1, out=tmp_path / "r",
                auxiliary=(split.model_classify, split.guide_classify), **settings)
    ppl_vae.fit(split.model, split.guide, data, epochs=2, out=tmp_path / "r", resume=True,
                auxiliary=(split.model_classify, split.guide_classify), **settings)
    for mine, other in zip(whole.parameters(), split.parameters()):
        torch.testing.assert_close(mine, other, rtol=0, atol=0)


def test_bad_settings_are_one_line_errors():
    data = tiny_data()
    tiny = Tiny()
    common = dict(elbo=TraceEnum_ELBO(max_plate_nesting=1), epochs=1, batch_size=4,
                  quiet=True, report=False)
    with pytest.raises(PplVaeError, match="labelled_batches='spaced' as well"):
        ppl_vae.fit(tiny.model, tiny.guide, data, inputs=["y"],
                    auxiliary=(tiny.model_classify, tiny.guide_classify), **common)
    with pytest.raises(PplVaeError, match="needs an input known for some examples"):
        full = ppl_vae.data.from_tensors(data.train, data.test, labels=data.train_labels,
                                         test_labels=data.test_labels)
        ppl_vae.fit(tiny.model, tiny.guide, full, inputs=["y"], labelled_batches="spaced",
                    **common)
    with pytest.raises(PplVaeError, match="labelled-batches must be one of"):
        ppl_vae.fit(tiny.model, tiny.guide, data, inputs=["y"], labelled_batches="pyro",
                    **common)
    with pytest.raises(PplVaeError, match="cannot import the auxiliary objective"):
        ppl_vae.fit(tiny.model, tiny.guide, data, inputs=["y"], labelled_batches="spaced",
                    auxiliary="no_such_module:loss", **common)
    with pytest.raises(PplVaeError, match="auxiliary= takes"):
        ppl_vae.fit(tiny.model, tiny.guide, data, inputs=["y"], labelled_batches="spaced",
                    auxiliary=3, **common)
