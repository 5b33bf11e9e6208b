"""The estimators: one a file, each registered with its options in :data:`ppl_vae.registry.ESTIMATORS`.

Every estimator is called as ``estimator(model, guide, x, **inputs)`` and
returns the **negative** objective in nats per example (a loss to minimise),
differentiable with respect to the pair's parameters; the trainer calls
``estimator.loss(pair, batch)`` with the :class:`~ppl_vae.Pair` and a :class:`Batch`
(:mod:`ppl_vae.estimators.base`). Particles are vectorized.

- :mod:`~ppl_vae.estimators.trace`: ``trace``, ``meanfield`` (Pyro's ELBOs, fast path)
- :mod:`~ppl_vae.estimators.renyi`: ``renyi``, ``iwae`` (our own, per example)
- :mod:`~ppl_vae.estimators.pathwise`: ``trace-stl``, ``iwae-stl``, ``iwae-dreg``,
  ``renyi-dreg`` (the same bounds, STL/DReG guide gradients)
- :mod:`~ppl_vae.estimators.tcvae`: ``tcvae`` (β-TCVAE, Chen et al. 2018)
- :mod:`~ppl_vae.estimators.pyro_elbo`: any ``pyro.infer.ELBO`` object
- :mod:`~ppl_vae.estimators.user_loss`: a callable ``loss(model, guide, x, **inputs)``
  returning, as Pyro's ``differentiable_loss`` does, the loss summed over the batch

A new estimator is one file here: a subclass of :class:`Estimator` (its
``estimate(pair, batch)``, and ``check(plan)`` for its refusals) and a factory
registered with ``@ESTIMATORS.register(name, description, option=help)``; its
options become ``ppl-vae train`` flags by themselves.
"""

from __future__ import annotations

import pyro.infer

from ppl_vae.config import EstimatorSpec
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import pathwise, renyi, tcvae, trace  # noqa: F401  (registrations)
from ppl_vae.estimators.base import Batch, Estimator
from ppl_vae.estimators.pyro_elbo import PYRO_PREFIX, PyroELBO
from ppl_vae.estimators.user_loss import CALLABLE_PREFIX, CallableLoss
from ppl_vae.registry import ESTIMATORS

__all__ = ["ESTIMATORS", "Batch", "Estimator", "as_estimator", "create", "from_spec", "make_elbo"]


def create(name: str, **options) -> Estimator:
    """The estimator registered as ``name`` with ``options`` (the rest at their defaults),
    carrying the :class:`~ppl_vae.config.EstimatorSpec` it was built from."""
    estimator = ESTIMATORS.create(name, **options)
    estimator.spec = EstimatorSpec(name, ESTIMATORS.effective(name, **options))
    return estimator


def from_spec(spec: EstimatorSpec) -> Estimator:
    """Rebuild a recorded estimator: a registry name, or a Pyro ELBO ``pyro.infer.<Class>``."""
    if spec.name.startswith(PYRO_PREFIX):
        return PyroELBO.rebuild(spec)
    if spec.name.startswith(CALLABLE_PREFIX):
        raise PplVaeError(f"this run was trained with the user loss function "
                          f"'{spec.name[len(CALLABLE_PREFIX):]}', which a run folder cannot "
                          "rebuild; pass it again as fit(..., elbo=your_loss)")
    return create(spec.name, **spec.options)


def make_elbo(name: str, num_particles: int | None = None, alpha: float | None = None
              ) -> Estimator:
    """``create(name, particles=..., alpha=...)`` with only the settings given (None: default)."""
    options = {k: v for k, v in (("particles", num_particles), ("alpha", alpha))
               if v is not None}
    return from_spec(EstimatorSpec(name, options))


def as_estimator(elbo, num_particles: int | None = None, alpha: float | None = None,
                 **options) -> Estimator:
    """An :class:`Estimator` from a registry name (with its options), an
    :class:`~ppl_vae.config.EstimatorSpec`, a ``pyro.infer.ELBO`` or a loss callable."""
    if isinstance(elbo, Estimator):
        return elbo
    given = {k: v for k, v in (("particles", num_particles), ("alpha", alpha), *options.items())
             if v is not None}
    if isinstance(elbo, EstimatorSpec):
        return from_spec(EstimatorSpec(elbo.name, {**elbo.options, **given},
                                       elbo.pyro_settings))
    if isinstance(elbo, str):
        return from_spec(EstimatorSpec(elbo, given))
    if given:
        raise PplVaeError(f"particles=, alpha= and estimator options go with a registry name; "
                          f"set them on {type(elbo).__name__} itself")
    if isinstance(elbo, pyro.infer.ELBO):
        return PyroELBO(elbo)
    if callable(elbo):
        return CallableLoss(elbo)
    names = ", ".join(e.name for e in ESTIMATORS.entries())
    raise PplVaeError(f"elbo must be a registry name ({names}), a pyro.infer.ELBO or a callable "
                      f"loss(model, guide, x, **inputs); got {type(elbo).__name__}")
