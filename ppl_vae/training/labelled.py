"""Semi-supervised training as Pyro's ss-vae example runs it: labelled-only batches spaced
through the epoch, steps taken as Pyro's ``SVI`` takes them, an auxiliary objective
stepped on its own.

``fit(..., labelled_batches="spaced")`` (``--labelled-batches spaced``) replaces the
epoch's one shuffled order, in which a batch mixes labelled and unlabelled examples,
by the schedule of Pyro's ``examples/vae/ss_vae_M2.py``. With ``N`` training examples,
``L`` of them labelled (every partly known input known: ``data.known``) and batch ``B``,
an epoch takes

    S = ceil(L / B) labelled batches and U = ceil((N - L) / B) unlabelled ones,

each from its own shuffled order (the last of each may be short), ``S + U`` steps. Step
``i`` (from 0) takes the next labelled batch when ``i mod k = 1``, ``k = floor(N / L)``,
while labelled batches remain, and the next unlabelled batch otherwise; so the labelled
batches sit at steps ``1, 1 + k, 1 + 2k, ...``. That needs ``k >= 2`` (at most half the
examples labelled), and a labelled and an unlabelled example at least.

Each step moves the parameters as one ``SVI.step`` does: on the batch's summed loss
(``B ·`` the per-example loss, whatever the optimizer; Adam is invariant to that scale
only up to its ``ε``, which matters for M2's tiny initial weights, whose first gradients
are small), and with SVI's gradients: they are zeroed between
steps, not freed, so a parameter that the step's trace reaches (a ``pyro.param`` or
``pyro.module`` site) but that gets no gradient from it still moves by Adam's momentum
(the classifier of M2 on a labelled batch of the ELBO, where ``y`` is given), and a
parameter neither reached nor given a gradient does not move.

``fit(..., auxiliary=...)`` adds Pyro's second ``SVI``: after the step on a labelled
batch, a second step of the same optimizer (Pyro's example shares one ``Adam`` between
its two SVIs, so its moment estimates are shared too) on the auxiliary loss of that
batch, either

- a pair ``(model, guide)``, stepped on ``Trace_ELBO`` as ``SVI(model, guide, optim,
  Trace_ELBO())`` would be (Pyro's ``model_classify``/``guide_classify``, whose
  ``poutine.scale`` carries the multiplier), or
- a callable ``loss(x, **inputs)`` returning the batch's summed loss.

Both steps are taken on the batch's summed loss, as SVI takes them.
Not valid under ``torchrun`` (one process only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO

from ppl_vae.errors import PplVaeError
from ppl_vae.pair import import_path

Program = Callable[..., object]
Auxiliary = tuple[Program, Program] | Callable[..., torch.Tensor]  # what fit(auxiliary=) takes


@dataclass(frozen=True)
class SpacedBatches:
    """The schedule of the module docstring for one training set.

    Attributes:
        labelled, unlabelled: the rows of each kind (int64, ascending).
        batch_size: ``B``.
    """

    labelled: torch.Tensor
    unlabelled: torch.Tensor
    batch_size: int

    @classmethod
    def of(cls, known: dict[str, torch.Tensor], batch_size: int) -> SpacedBatches:
        """The schedule for the rows ``known`` marks labelled, or a one-line error."""
        if not known:
            raise PplVaeError("labelled_batches='spaced' needs an input known for some examples "
                              "only (data.known), e.g. fit(..., inputs=['y']) on data loaded "
                              "with labelled=100")
        masks = [mask.cpu() for mask in known.values()]
        if any(not torch.equal(mask, masks[0]) for mask in masks[1:]):
            raise PplVaeError(f"labelled_batches='spaced' needs the same examples known for "
                              f"every input; {sorted(known)} are known for different examples")
        mask = masks[0]
        n, labelled = mask.numel(), int(mask.sum())
        if labelled == 0 or labelled == n or n // labelled < 2:
            raise PplVaeError(f"labelled_batches='spaced' needs between 1 and half of the "
                              f"{n} training examples labelled, got {labelled}; use "
                              "labelled_batches='mixed'")
        return cls(mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1), batch_size)

    @property
    def every(self) -> int:
        """``k = floor(N / L)``: the spacing of the labelled batches."""
        return (len(self.labelled) + len(self.unlabelled)) // len(self.labelled)

    def steps(self) -> list[tuple[int, int, bool]]:
        """``(start, stop, labelled)`` of each step's slice of :meth:`order`."""
        sizes = {True: _sizes(len(self.labelled), self.batch_size),
                 False: _sizes(len(self.unlabelled), self.batch_size)}
        taken = {True: 0, False: 0}
        steps, start = [], 0
        for i in range(len(sizes[True]) + len(sizes[False])):
            kind = i % self.every == 1 and taken[True] < len(sizes[True])
            if taken[False] == len(sizes[False]):  # (k >= 2 keeps this from happening)
                kind = True
            size = sizes[kind][taken[kind]]
            taken[kind] += 1
            steps.append((start, start + size, kind))
            start += size
        return steps

    def order(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch's rows in step order: each kind shuffled, laid out as :meth:`steps`."""
        queues = {True: iter(self.labelled[torch.randperm(len(self.labelled),
                                                          generator=generator)].tolist()),
                  False: iter(self.unlabelled[torch.randperm(len(self.unlabelled),
                                                             generator=generator)].tolist())}
        rows = [next(queues[kind]) for start, stop, kind in self.steps()
                for _ in range(stop - start)]
        return torch.tensor(rows, dtype=torch.long)


def _sizes(count: int, batch_size: int) -> list[int]:
    """Batch sizes covering ``count`` examples, the last one short."""
    return [min(batch_size, count - start) for start in range(0, count, batch_size)]


def auxiliary_loss(auxiliary: Auxiliary | None) -> Callable[..., torch.Tensor] | None:
    """``loss(x, **inputs)`` summed over the batch, from what ``fit(auxiliary=...)`` took."""
    if auxiliary is None:
        return None
    if isinstance(auxiliary, tuple) and len(auxiliary) == 2 and all(map(callable, auxiliary)):
        model, guide = auxiliary
        elbo = Trace_ELBO()
        return lambda x, **inputs: elbo.differentiable_loss(model, guide, x, **inputs)
    if callable(auxiliary):
        return auxiliary
    raise PplVaeError(f"auxiliary= takes a (model, guide) pair or a callable loss(x, **inputs), "
                      f"not {type(auxiliary).__name__}")


def auxiliary_name(auxiliary: Auxiliary | None) -> str | None:
    """What a run records of its auxiliary objective: ``module:name`` (``+`` for a pair)."""
    if auxiliary is None:
        return None
    parts = auxiliary if isinstance(auxiliary, tuple) else (auxiliary,)
    return "+".join(f"{getattr(p, '__module__', '?')}:{getattr(p, '__qualname__', '?')}"
                    for p in parts)


def imported_auxiliary(name: str) -> Callable[..., torch.Tensor]:
    """The callable a recorded ``package.module:function`` names (``--auxiliary``)."""
    try:
        found = import_path(name)
    except PplVaeError as error:
        raise PplVaeError(f"cannot import the auxiliary objective {name} ({error}); give it "
                          "from Python: fit(..., auxiliary=loss or (model, guide))") from None
    if "+" in name or not callable(found):
        raise PplVaeError(f"the auxiliary objective {name} is not an importable loss(x, "
                          "**inputs); give it from Python: fit(..., auxiliary=...)")
    return found


def step_as_svi(optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor],
                backward: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``backward()`` under a parameter trace, then gradients set as ``SVI.step`` leaves
    them: a reached parameter that got none but was stepped before gets zeros."""
    with poutine.trace(param_only=True) as capture:
        loss = backward()
    reached = set()
    for site in capture.trace.nodes.values():
        value = site["value"]
        if value is not None:
            reached.add(id(value.unconstrained() if hasattr(value, "unconstrained") else value))
    for p in params.values():
        if p.grad is None and id(p) in reached and p in optimizer.state:
            p.grad = torch.zeros_like(p)
    return loss


def check_auxiliary(mode: str, auxiliary: Auxiliary | None, world_size: int) -> None:
    """One-line errors for an auxiliary objective without spaced batches, and for DDP."""
    if auxiliary is not None and mode != "spaced":
        raise PplVaeError("auxiliary= is stepped on labelled-only batches: give "
                          "labelled_batches='spaced' as well")
    if mode == "spaced" and world_size > 1:
        raise PplVaeError("labelled_batches='spaced' runs in one process; launch without "
                          "torchrun")

