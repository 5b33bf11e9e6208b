"""A ``pyro.infer.ELBO`` object used as an estimator, recorded as ``pyro.infer.<Class>``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyro.infer
import torch
from pyro.infer import TraceEnum_ELBO

from ppl_vae.config import EstimatorSpec
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import Batch, Estimator
from ppl_vae.traces import Plan

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair

PYRO_PREFIX = "pyro.infer."
# ELBO constructor arguments Pyro keeps as attributes of the same name.
_PYRO_SETTINGS = ("num_particles", "max_plate_nesting", "vectorize_particles", "retain_graph",
                  "strict_enumeration_warning", "ignore_jit_warnings", "alpha")


class PyroELBO(Estimator):
    """A ``pyro.infer.ELBO`` object, used through its ``differentiable_loss``.

    The loss is Pyro's, divided by the batch size: nats per example, like ours.
    ``TraceGraph_ELBO`` has no ``differentiable_loss``; its value is Pyro's loss
    and its gradient that of Pyro's surrogate (``-elbo + surrogate - surrogate.detach()``).
    ``RenyiELBO`` has neither and scales sites inside its log-sum-exp: refused.
    The JIT variants read parameters from Pyro's param store by name, so they
    run with Pyro's default (global-store) parameters — the pair's own store,
    inside its ``scope()`` — rather than module-local ones.
    """

    def __init__(self, elbo: pyro.infer.ELBO):
        super().__init__(getattr(elbo, "num_particles", 1))
        if isinstance(elbo, pyro.infer.RenyiELBO):
            raise PplVaeError(
                f"pyro.infer.RenyiELBO has no differentiable_loss (and applies plate and β "
                f"scales inside its log-sum-exp); use elbo='renyi', alpha={elbo.alpha:g}, "
                f"particles={elbo.num_particles} (ours, per example), or 'iwae' for α = 0")
        self.elbo, self.name = elbo, PYRO_PREFIX + type(elbo).__name__
        if not hasattr(elbo, "differentiable_loss") and not hasattr(elbo,
                                                                     "_loss_and_surrogate_loss"):
            raise PplVaeError(f"{type(elbo).__name__} has no differentiable_loss; use one of "
                              "Trace_ELBO, TraceMeanField_ELBO, TraceGraph_ELBO, TraceEnum_ELBO")

    def check(self, plan: Plan) -> None:
        """Only Pyro's TraceEnum ELBOs sum enumerated sites; the others would sample them."""
        if plan.enumerated and not isinstance(self.elbo, TraceEnum_ELBO):
            raise PplVaeError(
                f"site(s) {sorted(plan.enumerated)} are marked for enumeration, which "
                f"{type(self.elbo).__name__} would silently sample; pass "
                "pyro.infer.TraceEnum_ELBO(max_plate_nesting=...) or use elbo='trace'")

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        self.prepare(pair, batch.x, batch.inputs)
        if type(self.elbo).__name__.startswith("Jit"):
            with pyro.settings.context(module_local_params=False):
                return self._loss(pair.model, pair.guide, batch.x, batch.inputs)
        return self._loss(pair.model, pair.guide, batch.x, batch.inputs)

    def _loss(self, model, guide, x: torch.Tensor, inputs: dict) -> torch.Tensor:
        if hasattr(self.elbo, "differentiable_loss"):
            loss = self.elbo.differentiable_loss(model, guide, x, **inputs)
        else:
            # Pyro 1.9 returns (ELBO, surrogate loss) here: the value of -ELBO, the
            # surrogate's gradient
            elbo, surrogate = self.elbo._loss_and_surrogate_loss(  # type: ignore[attr-defined]
                model, guide, (x,), inputs)  # (on the ELBOs that lack differentiable_loss)
            loss = -torch.as_tensor(elbo).detach() + surrogate - surrogate.detach()
        return loss / x.shape[0]

    def describe(self) -> dict:
        settings = {k: getattr(self.elbo, k) for k in _PYRO_SETTINGS if hasattr(self.elbo, k)}
        settings = {k: v for k, v in settings.items() if isinstance(v, (bool, int, float))
                    and math.isfinite(v)}
        return EstimatorSpec(self.name, {"particles": self.num_particles}, settings).to_json()

    @classmethod
    def rebuild(cls, spec: EstimatorSpec) -> PyroELBO:
        """The object :meth:`describe` recorded (only classes of ``pyro.infer``); a
        ``particles`` option overrides the recorded ``num_particles``."""
        kind = getattr(pyro.infer, spec.name[len(PYRO_PREFIX):], None)
        if not (isinstance(kind, type) and issubclass(kind, pyro.infer.ELBO)):
            raise PplVaeError(f"'{spec.name}' is not an ELBO class of pyro.infer; check "
                              "config.json")
        settings = dict(spec.pyro_settings or {})
        if spec.options.get("particles") is not None:
            settings["num_particles"] = spec.options["particles"]
        return cls(kind(**settings))
