"""Lower-variance gradients of the Rényi/IWAE bound: sticking the landing and DReG.

For a reparameterized guide, ``z_k = g_φ(ε_k, x)``, and per example::

    log w_k = log p_θ(x, z_k) - log q_φ(z_k | x),    k = 1..K
    L_α = 1/(1-α) · log (1/K) Σ_k w_k^(1-α)          (α ∈ [0, 1); α = 0 is IWAE)
    L_1 = (1/K) Σ_k log w_k                          (the K-sample ELBO, the limit α → 1)

With self-normalized weights ``v_k = w_k^(1-α) / Σ_j w_j^(1-α)`` (``1/K`` at α = 1)::

    ∇L_α = Σ_k v_k ∇ log w_k,    ∇_θ log w_k = ∂_θ log p_θ(x, z_k),    ∇_φ log w_k = D_k - S_k
    D_k = ∂_z [log p_θ(x, z) - log q_φ(z | x)]|_(z_k) · ∂_φ z_k     (pathwise, φ in q held fixed)
    S_k = ∂_φ log q_φ(z_k | x)|_(z_k fixed)                        (score; E_q S_k = 0)

- **STL** (sticking the landing, Roeder et al. 2017) drops the score: the guide
  gets ``Σ_k v_k D_k``. At ``q = p(z | x)``, ``log w`` is constant in ``z``, so
  ``D_k = 0``: the guide's gradient is exactly zero on every draw. For α = 1
  (``trace-stl``) ``v_k = 1/K`` and STL is unbiased; for α < 1 (``iwae-stl``)
  ``v_k`` depends on ``z_k`` and ``E[Σ v_k S_k] ≠ 0``: STL is then *biased*
  (Tucker et al. 2019), which the tests measure.
- **DReG** (doubly reparameterized, Tucker et al. 2019), for every α ∈ [0, 1].
  For ``f`` not depending on φ, ``E_q[f(z) S] = ∇_φ E_q[f(z)] = E_ε[∂_z f(z) ∂_φ z]``.
  Take ``f = v_k`` as a function of ``z_k`` (other draws and φ held fixed);
  ``∂v_k / ∂log w_k = (1-α) v_k (1 - v_k)``, so
  ``E[Σ_k v_k S_k] = E[Σ_k (1-α) v_k (1 - v_k) D_k]`` and::

      E[∇_φ L_α] = E[Σ_k c_k D_k],    c_k = α v_k + (1-α) v_k²

  unbiased, with no score term left: ``c_k = v_k²`` at α = 0 (Tucker et al.'s
  IWAE-DReG), ``c_k = 1/K`` at α = 1 (the ELBO's STL). Both estimators give the
  model's parameters the plain gradient ``Σ_k v_k ∂_θ log p_θ(x, z_k)``.

How it is computed, with bars for stop-gradient, the surrogate per example is::

    s = Σ_k v̄_k log p_θ(x, ẑ_k) + c̄_k [log q_φ(z̄_k | x) - log q_φ(z_k | x)]
    loss = -(L_α + s - s̄)          (its value is exactly -L_α)

``log q_φ(z̄_k | x)`` comes from running the guide again on the *detached* draws
(``poutine.condition``); its gradient is ``S_k``, so the bracket's gradient is
minus the pathwise part of ``log q`` alone. In a guide with several sites the
re-run also evaluates later sites' parameters at the detached earlier draws, as
``S_k`` requires. ``ẑ_k`` are the draws the model replays, through a backward
hook multiplying the gradient reaching them by ``r_k = c_k / v_k`` (1 for STL:
no hook): the pathwise part of ``log p`` gets ``c_k``, θ keeps ``v_k``.

Why detach the draws rather than the guide's parameters: a guide's parameters
may live anywhere — ``PyroModule`` attributes, plain ``nn.Module``\\ s,
``pyro.param``, closures, tensors shared with the model — and the engine need
know none of them to detach a value. The price is a second guide run (the
encoder on the batch, not on ``K`` times it). Where the guide shares parameters
with the model, their ``S`` is dropped too.

Not valid (refused with an error): a guide whose ``log_prob`` cannot be
evaluated away from its own draws (a ``TransformedDistribution`` whose
transform has no inverse: planar, radial), and a guide that draws random
numbers besides its sample sites (dropout in training mode), found on the first
call because the re-run's ``log q`` differs from the trace's. The estimators
refuse what ``renyi``/``iwae`` refuse (:class:`ppl_vae.estimators.renyi.RenyiBound`).

Registered as ``trace-stl`` (α = 1), ``iwae-stl`` (α = 0), ``iwae-dreg`` (α = 0)
and ``renyi-dreg`` (α an option).
"""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING

import pyro
import torch
from pyro import poutine

from ppl_vae.chunks import log_mean_exp
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import ALPHA, PARTICLES, Batch
from ppl_vae.estimators.renyi import RenyiBound
from ppl_vae.registry import ESTIMATORS
from ppl_vae.traces import (
    DATA_PLATE,
    PARTICLE_PLATE,
    Plan,
    particle_traces,
    sample_sites,
    site_log_prob,
)

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair


def _per_example(trace, sites: tuple) -> torch.Tensor:
    """``Σ_sites log_prob`` per particle and example, ``(K, batch)``."""
    return functools.reduce(torch.add, [site_log_prob(trace.nodes[name], dims)
                                        for name, dims in sites])


class GradientScale:
    """The guide trace with each draw behind a hook multiplying its gradient by ``r_k``.

    Passed as ``through`` to :func:`ppl_vae.traces.particle_traces`: only the
    model sees the hooked draws. ``factor`` (``(K, batch)``) is set after the
    forward pass, before the backward pass reads it.
    """

    def __init__(self, nesting: int):
        self.nesting = nesting
        self.factor: torch.Tensor | None = None

    def __call__(self, guide_trace):
        trace = guide_trace.copy()
        for site in sample_sites(guide_trace):  # the sites present (they may follow the batch)
            name = site["name"]
            if not site["is_observed"] and site["value"].requires_grad:
                value = site["value"].view_as(site["value"])
                value.register_hook(functools.partial(self._scale, site))
                trace.nodes[name] = {**site, "value": value}
        return trace

    def _scale(self, site: dict, grad: torch.Tensor) -> torch.Tensor:
        """``grad · r`` with ``r`` broadcast on the site's particle and data dims."""
        if self.factor is None:
            raise RuntimeError("internal: the pathwise gradient factor is set before backward")
        shape = [1] * grad.dim()
        batch_end = grad.dim() - site["fn"].event_dim
        shape[batch_end - self.nesting - 1] = self.factor.shape[0]
        data_dim = next(f.dim for f in site["cond_indep_stack"] if f.name == DATA_PLATE)
        shape[batch_end + data_dim] = self.factor.shape[1]
        return grad * self.factor.reshape(shape)


def rescored_log_q(guide, guide_trace, x: torch.Tensor, num_particles: int, nesting: int,
                   plan: Plan, inputs: dict) -> torch.Tensor:
    """``log q_φ(z̄ | x)`` per particle and example: the guide re-run on the detached draws."""
    draws = {name: guide_trace.nodes[name]["value"].detach() for name, _ in plan.guide}
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=-(nesting + 1)):
        trace = poutine.trace(poutine.condition(guide, data=draws)).get_trace(x, **inputs)
    try:
        return _per_example(trace, plan.guide)
    except (KeyError, NotImplementedError) as error:
        raise PplVaeError(
            f"a guide site's log q cannot be evaluated away from its own draw ({error!r}: "
            "a transform without an inverse?); STL/DReG need it; use --elbo iwae or renyi"
        ) from None


def check_rescoring(log_q: torch.Tensor, rescored: torch.Tensor) -> None:
    """The re-run must reproduce the trace's ``log q`` (a deterministic guide given its draws)."""
    if not torch.allclose(log_q.detach(), rescored.detach(), rtol=1e-4, atol=1e-4):
        raise PplVaeError(
            "the guide gives another log q(z | x) when run again on its own draws (dropout or "
            "other random numbers besides its sample sites?); STL/DReG need a guide that is "
            "deterministic given x and z: put it in eval mode, or use --elbo iwae")


def bound_and_surrogate(model, guide, x: torch.Tensor, alpha: float, doubly: bool,
                        num_particles: int, nesting: int, plan: Plan, inputs: dict,
                        check: bool = False) -> torch.Tensor:
    """``L_α + s - s̄`` per example (module docstring); ``L_α`` alone without gradients.

    ``check``: compare the guide's re-run with its trace (:func:`check_rescoring`).
    """
    reweigh = doubly and alpha < 1 and torch.is_grad_enabled()
    scale = GradientScale(nesting) if reweigh else None
    model_trace, guide_trace = particle_traces(model, guide, x, num_particles, nesting,
                                               inputs=inputs, through=scale)
    plan = plan.for_traces(model_trace, guide_trace)
    log_p = _per_example(model_trace, plan.joint)
    log_q = _per_example(guide_trace, plan.guide)
    log_w = log_p - log_q
    power = 1.0 - alpha
    bound = log_w.mean(0) if power == 0 else log_mean_exp(power * log_w) / power
    if not torch.is_grad_enabled():
        return bound
    rescored = rescored_log_q(guide, guide_trace, x, num_particles, nesting, plan, inputs)
    if check:
        check_rescoring(log_q, rescored)
    v = torch.softmax(power * log_w.detach(), 0)
    c = alpha * v + power * v * v if doubly else v
    if scale is not None:
        scale.factor = alpha + power * v
    surrogate = (v * log_p + c * (rescored - log_q)).sum(0)
    return bound.detach() + surrogate - surrogate.detach()


class PathwiseBound(RenyiBound):
    """``L_α`` with the guide's gradient by STL or DReG (:mod:`ppl_vae.estimators.pathwise`).

    α ∈ [0, 1), or 1 for the K-sample ELBO ``(1/K) Σ_k log w_k``. The value is
    the plain bound's on the same draws; the model's gradient is the plain one;
    the refusals are :class:`RenyiBound`'s.
    """

    def __init__(self, name: str, alpha: float, num_particles: int, doubly: bool):
        super().__init__(0.0 if alpha == 1 else alpha, num_particles)  # 1 allowed here
        self.name, self.alpha, self.doubly = name, float(alpha), doubly
        self._checked: weakref.WeakSet = weakref.WeakSet()  # pairs whose draws were checked

    def check(self, plan: Plan) -> None:
        """:class:`RenyiBound`'s refusals; for the ELBO (α = 1) global sites say what STL needs."""
        if self.alpha == 1 and plan.global_sites:
            raise PplVaeError(
                f"{self.name} weighs each example's own log q(z | x) with its draws, so it needs "
                f"every latent inside pyro.plate('data'); site(s) {sorted(plan.global_sites)} are "
                "global (outside it): use elbo='trace' or 'meanfield', which count them once "
                "per data set")
        if plan.auxiliary:
            raise PplVaeError(
                f"{self.name} scores the guide's draws of {[n for n, _ in plan.guide]} again, "
                f"but their density comes through the auxiliary site(s) "
                f"{[n for n, _ in plan.auxiliary]} (an AutoGuide's): use elbo='trace', "
                "'meanfield' or 'iwae'")
        super().check(plan)

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        nesting, plan = self.prepare(pair, batch.x, batch.inputs)
        bound = bound_and_surrogate(pair.model, pair.guide, batch.x, self.alpha, self.doubly,
                                    self.num_particles, nesting, plan, batch.inputs,
                                    check=pair not in self._checked)
        if torch.is_grad_enabled():
            self._checked.add(pair)
        return -bound.mean()


@ESTIMATORS.register("trace-stl", "K-sample ELBO, sticking-the-landing guide gradient "
                                  "(Roeder et al. 2017)", particles=PARTICLES)
def trace_stl(particles: int = 1) -> PathwiseBound:
    return PathwiseBound("trace-stl", 1.0, particles, doubly=False)


@ESTIMATORS.register("iwae-stl", "IWAE bound, sticking-the-landing guide gradient (biased for "
                                 "K > 1)", particles=PARTICLES)
def iwae_stl(particles: int = 5) -> PathwiseBound:
    return PathwiseBound("iwae-stl", 0.0, particles, doubly=False)


@ESTIMATORS.register("iwae-dreg", "IWAE bound, doubly reparameterized guide gradient "
                                  "(Tucker et al. 2019)", particles=PARTICLES)
def iwae_dreg(particles: int = 5) -> PathwiseBound:
    return PathwiseBound("iwae-dreg", 0.0, particles, doubly=True)


@ESTIMATORS.register("renyi-dreg", "Rényi bound of order α, doubly reparameterized guide "
                                   "gradient", particles=PARTICLES, alpha=ALPHA)
def renyi_dreg(particles: int = 5, alpha: float = 0.5) -> PathwiseBound:
    return PathwiseBound("renyi-dreg", alpha, particles, doubly=True)
