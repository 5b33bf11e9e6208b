"""What every estimator shares: the :class:`Batch` it is called with and the :class:`Estimator` base.

An estimator is called two ways. ``estimator(model, guide, x, **inputs)`` (Pyro's
loss signature) is the negative objective, nats per example, of a batch whose
examples all have their inputs (or all ``None``), sites as the programs scale
them. The engine calls ``estimator.loss(pair, batch)`` instead, with the
:class:`~ppl_vae.pair.Pair` (whose plan is found once) and a :class:`Batch` that
also carries the known-input masks, the data set's size and the KL warm-up's
scale. For a batch of ``B`` of the training set's ``N`` examples the loss
estimates the whole set's negative objective per example: where some
examples' inputs are unknown (partially labelled data) the batch is split by
which inputs are known, each part of ``m`` examples run as
``model(x_part, y=y_part)`` or ``model(x_part, y=None)``::

    loss = Σ_parts (m / B) · estimate(part)

so labelled and unlabelled examples count once each, as in the ELBO of the
whole data set ``Σ_labelled log p(x, y) + Σ_unlabelled log p(x)`` (Kingma et
al. 2014, M2). Sites outside the ``"data"`` plate are scaled by ``m / N``
(:class:`ppl_vae.traces.ScaleGlobal`): once per data set, not once per batch; a
program that subsamples its own plate (``pyro.plate("data", N, subsample=index)``,
Pyro's idiom for per-example parameters) has Pyro's ``N / m`` undone
(:class:`ppl_vae.traces.PerExample`), so its examples count once each too.
During a KL warm-up every latent site is scaled by ``latent_scale``
(:class:`ppl_vae.traces.ScaleLatent`). An estimator that needs more of the
batch than ``x`` and its inputs (β-TCVAE needs ``N``) reads it from the :class:`Batch`
in :meth:`Estimator.estimate`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch

from ppl_vae.config import EstimatorSpec
from ppl_vae.errors import PplVaeError
from ppl_vae.traces import PerExample, Plan, ScaleGlobal, ScaleLatent

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair

# help of the options several estimators take
PARTICLES = "samples of z per example"
ALPHA = "order α of the Rényi bound, in [0, 1) (0 is IWAE)"
NOT_VECTORIZED = (
    "the pair runs with one particle but not with several at once (a reshape to x.shape?); "
    "write the decoder output as logits.reshape(*z.shape[:-1], *x.shape[1:]) so a leading "
    "particle dimension passes through, or train with one particle")


@dataclass(frozen=True)
class Batch:
    """One training batch and what an estimator may need to know about it.

    Attributes:
        x: the examples, ``(B, *event_shape)``.
        inputs: keyword -> per-example values (``None``: unknown for the whole batch).
        known: input name -> bool mask of the examples whose value is known.
        dataset_size: ``N``, the training set's size (None: the batch is the data set).
        latent_scale: the KL warm-up's scale of every latent site (1: none).
    """

    x: torch.Tensor
    inputs: dict = field(default_factory=dict)
    known: dict = field(default_factory=dict)
    dataset_size: int | None = None
    latent_scale: float = 1.0

    @property
    def size(self) -> int:
        return self.x.shape[0]

    @property
    def examples_total(self) -> int:
        """``N``, or ``B`` when the batch is the whole data set."""
        return self.dataset_size or self.size

    def parts(self) -> list[tuple[float, Batch]]:
        """``[(m / B, part), ...]``: the batch split by which inputs are known."""
        if not self.known:
            return [(1.0, self)]
        names = sorted(self.known)
        code = sum(self.known[name].long() << i for i, name in enumerate(names))
        parts = []
        for pattern in code.unique().tolist():
            index = (code == pattern).nonzero().squeeze(1)
            given = {name: bool(pattern >> i & 1) for i, name in enumerate(names)}
            inputs = {name: value[index] if given.get(name, True) else None
                      for name, value in self.inputs.items()}
            parts.append((index.numel() / self.size,
                          replace(self, x=self.x[index], inputs=inputs, known={})))
        return parts


class Estimator:
    """Base class: each call asks the pair's plan (found once) and checks it for this estimator.

    A subclass implements :meth:`estimate` (and :meth:`check` for its refusals).
    """

    name = "?"
    spec: EstimatorSpec | None = None  # what it was built from (set by estimators.create)
    scales_latents = True  # a KL warm-up may scale its latent sites (``Batch.latent_scale``)
    _last_pair: Pair | None = None

    def __init__(self, num_particles: int = 1):
        if num_particles < 1:
            raise PplVaeError(f"--particles must be at least 1, got {num_particles}")
        self.num_particles = num_particles

    def prepare(self, pair: Pair, x: torch.Tensor, inputs: dict | None = None
                ) -> tuple[int, Plan]:
        """``(nesting, plan)`` of the pair (:meth:`ppl_vae.Pair.plan`: found once), checked
        against this estimator."""
        nesting, plan = pair.plan(x, inputs)
        self.check(plan)
        return nesting, plan

    def check(self, plan: Plan) -> None:
        """Refuse pairs for which this estimator would be wrong (none by default)."""

    def check_warmup(self, warmup_steps: int) -> None:
        """Refuse a KL warm-up where scaling the latent sites does not give this objective."""
        if warmup_steps and not self.scales_latents:
            raise PplVaeError(f"KL warm-up scales the latent sites, which the {self.name} bound "
                              "does not allow; use --elbo trace or meanfield for a warm-up")

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        """Pyro's loss signature (``SVI(model, guide, optim, loss=estimator)``)."""
        return self.estimate(self.pair_of(model, guide), Batch(x, inputs))

    def pair_of(self, model, guide) -> Pair:
        """The :class:`~ppl_vae.Pair` of a call with bare programs: the last one this estimator
        made while the programs stay the same (a bound method compares equal to its twin), so
        a loop of calls finds the plan once."""
        from ppl_vae.pair import Pair  # the one place an estimator makes a pair

        last = self._last_pair
        if last is None or last.model != model or last.guide != guide:
            last = self._last_pair = Pair(model, guide)
        return last

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        """The negative objective of a batch whose inputs are all given or all ``None``;
        a subclass that overrides only Pyro's call (``__call__``) is asked through it."""
        if type(self).__call__ is Estimator.__call__:
            raise NotImplementedError(f"{type(self).__name__} implements neither "
                                      "estimate(pair, batch) nor __call__(model, guide, x)")
        return self(pair.model, pair.guide, batch.x, **batch.inputs)

    def loss(self, pair: Pair, batch: Batch) -> torch.Tensor:
        """The training loss of the module docstring: parts by known inputs, scales applied."""
        total = batch.x.new_zeros(())
        for weight, part in batch.parts():
            _, plan = pair.plan(part.x, part.inputs)  # (checked by the estimate)
            warmup = ScaleLatent(part.latent_scale) if part.latent_scale != 1.0 \
                else contextlib.nullcontext()
            shared = ScaleGlobal(part.size / part.examples_total) if plan.global_sites \
                else contextlib.nullcontext()
            per_example = PerExample() if plan.subsampled else contextlib.nullcontext()
            with shared, warmup, per_example:
                value = self.estimate(pair, part)
            total = value if weight == 1.0 else total + value * weight
        return total

    def describe(self) -> dict:
        """Settings recorded in a run's config (:class:`ppl_vae.config.EstimatorSpec`)."""
        return (self.spec or EstimatorSpec(self.name, {"particles": self.num_particles})).to_json()
