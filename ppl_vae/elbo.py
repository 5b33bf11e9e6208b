"""The ELBO registry: ``trace``, ``meanfield``, ``renyi``, ``iwae`` and their STL/DReG forms.

Every estimator is called as ``estimator(model, guide, x, **inputs)`` and
returns the **negative** objective in nats per example (a loss to minimise),
differentiable with respect to the pair's parameters. Particles are vectorized.
:func:`as_estimator` also takes a ``pyro.infer.ELBO`` object (used through its
``differentiable_loss``) or a callable ``loss(model, guide, x, **inputs)``
returning, as Pyro's ``differentiable_loss`` does, the loss summed over the batch.

- ``trace``: Pyro's ``Trace_ELBO``, ``-E_q[log p(x, z) - log q(z | x)]`` by Monte
  Carlo, with score-function terms for non-reparameterizable sites.
- ``meanfield``: Pyro's ``TraceMeanField_ELBO``; uses ``KL(q || p)`` analytically
  wherever ``kl_divergence(guide_site, model_site)`` is registered and falls
  back to Monte Carlo otherwise. Valid when model and guide share the same
  dependency structure between latent sites.
- ``renyi`` (Li & Turner 2016) and ``iwae`` (Burda et al. 2016, α = 0): our own
  estimator, per example::

      L_α(x) = 1/(1-α) · log (1/K) Σ_k w_k^(1-α),   log w_k = log p(x, z_k) - log q(z_k | x)

  This is a lower bound on ``log p(x)`` for α ∈ [0, 1) that tightens as K grows
  (α = 0). Pyro's ``RenyiELBO`` applies site scales inside the log-sum-exp, so
  with β ≠ 1 or a scaled plate it silently optimises another objective; ours
  refuses any scaled site, any latent outside the ``"data"`` plate, any
  enumerated site and any non-reparameterized guide site with an error instead.
- ``trace-stl``, ``iwae-stl``, ``iwae-dreg``, ``renyi-dreg``: the same bounds (the
  K-sample ELBO, IWAE, Rényi α) with the guide's gradient by sticking the landing
  (Roeder et al. 2017) or doubly reparameterized (Tucker et al. 2019); value and
  model gradient as the plain bound's (:mod:`ppl_vae.gradient_estimators`).
"""

from __future__ import annotations

import functools
import math

import pyro.infer
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from ppl_vae.chunks import log_mean_exp
from ppl_vae.errors import PplVaeError
from ppl_vae.gradient_estimators import bound_and_surrogate
from ppl_vae.naming import program_inputs
from ppl_vae.registry import ELBOS
from ppl_vae.traces import (
    Plan,
    check_local,
    log_weights,
    particle_traces,
    per_example,
    plan_of,
    site_log_prob,
    times_scale,
)


class Estimator:
    """Base class: each call asks the pair's plan (found once) and checks it for this estimator."""

    name = "?"

    def __init__(self, num_particles: int = 1):
        if num_particles < 1:
            raise PplVaeError(f"--particles must be at least 1, got {num_particles}")
        self.num_particles = num_particles

    def prepare(self, model, guide, x: torch.Tensor, inputs: dict | None = None
                ) -> tuple[int, Plan]:
        """``(nesting, plan)`` of the pair (:func:`ppl_vae.traces.plan_of`: found once),
        checked against this estimator."""
        nesting, plan = plan_of(model, guide, x, inputs)
        self.check(plan)
        return nesting, plan

    def check(self, plan: Plan) -> None:
        """Refuse pairs for which this estimator would be wrong (none by default)."""

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings recorded in a run's config."""
        return {"elbo": self.name, "particles": self.num_particles}


class TraceBound(Estimator):
    """``-E_q[log p(x, z) - log q(z | x)]`` per example, ``meanfield`` with analytic KLs.

    For reparameterized guides the loss is computed straight from the traces::

        loss = -(1/KB) Σ_{k,b} [ Σ_obs s·log p(x|z) + Σ_latent s·(log p(z) - log q(z|x)) ]

    where each latent term becomes ``-s_q · KL(q || p)`` under ``meanfield`` when
    the KL is registered (``s`` the site scales, e.g. β). This equals Pyro's
    ``Trace_ELBO`` / ``TraceMeanField_ELBO`` exactly (tested) without their
    per-site bookkeeping. Guides with non-reparameterizable sites go to Pyro's
    estimators, which add the score-function terms.
    """

    def __init__(self, name: str, analytic_kl: bool, num_particles: int = 1):
        super().__init__(num_particles)
        self.name, self.analytic_kl = name, analytic_kl
        self._pyro: dict[tuple, object] = {}

    def check(self, plan: Plan) -> None:
        """``meanfield`` would sample an enumerated site: refuse, naming the estimator that sums."""
        if self.analytic_kl and plan.enumerated:
            raise PplVaeError(
                f"site(s) {sorted(plan.enumerated)} are marked for enumeration, which "
                "meanfield does not do; use elbo='trace' (sums them out with Pyro's "
                "TraceEnum_ELBO) or pass pyro.infer.TraceEnum_ELBO(...)")
        if not plan.vectorized and self.num_particles > 1:
            raise PplVaeError(_NOT_VECTORIZED)

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        nesting, plan = self.prepare(model, guide, x, inputs)
        if plan.enumerated or not plan.reparameterized:
            return self._pyro_loss(model, guide, x, nesting, plan, inputs)
        model_trace, guide_trace = particle_traces(model, guide, x, self.num_particles, nesting,
                                                   plate_one=False, inputs=inputs)
        local, shared = [], []  # per-example terms; sums of global sites' terms
        for name, dims in plan.observed:
            site = model_trace.nodes[name]
            if name in plan.global_sites:
                shared.append(_scaled_sum(site, site["fn"].log_prob(site["value"])))
            else:
                local.append(site_log_prob(site, dims, scaled=True))
        guide_dims = dict(plan.guide)
        for name, dims in plan.latent:
            p_site, q_site = model_trace.nodes[name], guide_trace.nodes[name]
            analytic = self.analytic_kl and name in plan.analytic_kl
            if name in plan.global_sites:
                shared.append(-_scaled_sum(q_site, kl_divergence(q_site["fn"], p_site["fn"]))
                              if analytic else
                              _scaled_sum(p_site, p_site["fn"].log_prob(p_site["value"]))
                              - _scaled_sum(q_site, q_site["fn"].log_prob(q_site["value"])))
            elif analytic:
                kl = kl_divergence(q_site["fn"], p_site["fn"])
                local.append(-times_scale(per_example(kl, q_site, guide_dims[name]), q_site))
            else:
                local += [site_log_prob(p_site, dims, scaled=True),
                          -site_log_prob(q_site, guide_dims[name], scaled=True)]
        total = functools.reduce(torch.add, local)
        if not shared:
            return -total.mean()
        return -(total.sum() + functools.reduce(torch.add, shared)) / total.numel()

    def _pyro_loss(self, model, guide, x, nesting, plan, inputs) -> torch.Tensor:
        """Pyro's estimator: TraceEnum for enumerated sites, score functions otherwise."""
        key = (nesting, bool(plan.enumerated))
        if key not in self._pyro:
            kind = TraceEnum_ELBO if plan.enumerated else \
                TraceMeanField_ELBO if self.analytic_kl else Trace_ELBO
            self._pyro[key] = kind(num_particles=self.num_particles,
                                   vectorize_particles=self.num_particles > 1,
                                   max_plate_nesting=nesting)
        return self._pyro[key].differentiable_loss(model, guide, x, **inputs) / x.shape[0]


class RenyiBound(Estimator):
    """The Rényi bound ``L_α`` of the module docstring, one log-mean-exp per example."""

    name = "renyi"

    def __init__(self, alpha: float = 0.0, num_particles: int = 5):
        super().__init__(num_particles)
        if alpha == 1:
            raise PplVaeError("--alpha 1 makes the Rényi bound the ELBO; use --elbo trace instead")
        if not 0 <= alpha < 1:
            raise PplVaeError(f"--alpha {alpha:g} is outside [0, 1): for α < 0 the Rényi "
                              "objective is an upper bound on log p(x), for α > 1 not this "
                              "bound; use α in [0, 1) (0 is IWAE)")
        self.alpha = float(alpha)

    def check(self, plan: Plan) -> None:
        """Refuse the combinations for which the Rényi bound would be silently wrong."""
        check_local(plan, f"the {self.name} bound")
        if plan.enumerated:
            raise PplVaeError(
                f"site(s) {sorted(plan.enumerated)} are marked for enumeration; the {self.name} "
                "estimator samples every site: use elbo='trace' or pyro.infer.TraceEnum_ELBO(...)")
        if not plan.vectorized:
            raise PplVaeError(_NOT_VECTORIZED)
        if plan.scaled_sites:
            scales = ", ".join(f"'{k}' × {float(torch.as_tensor(v).mean()):g}"
                               for k, v in plan.scaled_sites.items())
            raise PplVaeError(
                f"the {self.name} bound is defined only for unscaled sites, but {scales} "
                "(β-VAE or poutine.scale); use --elbo trace or meanfield, or β = 1")
        if not plan.reparameterized:
            raise PplVaeError(
                f"the {self.name} estimator needs reparameterizable guide sites (rsample); "
                "use --elbo trace, which adds score-function terms")

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        nesting, plan = self.prepare(model, guide, x, inputs)
        weights = log_weights(model, guide, x, self.num_particles, nesting, plan, inputs)
        power = 1.0 - self.alpha
        bound = log_mean_exp(power * weights.total) / power
        return -bound.mean()

    def describe(self) -> dict:
        return {**super().describe(), "alpha": self.alpha}


def _no_alpha(name: str, alpha: float | None) -> None:
    """``--alpha`` belongs to the Rényi bound only."""
    if alpha is not None:
        raise PplVaeError(f"--alpha applies to --elbo renyi only, not to {name}; drop it")


@ELBOS.register("trace", "Monte Carlo ELBO E_q[log p(x,z) - log q(z|x)] (Pyro Trace_ELBO)")
def trace_elbo(num_particles: int = 1, alpha: float | None = None) -> Estimator:
    _no_alpha("trace", alpha)
    return TraceBound("trace", False, num_particles)


@ELBOS.register("meanfield", "ELBO with analytic KL where registered (TraceMeanField_ELBO)")
def meanfield_elbo(num_particles: int = 1, alpha: float | None = None) -> Estimator:
    _no_alpha("meanfield", alpha)
    return TraceBound("meanfield", True, num_particles)


@ELBOS.register("renyi", "Rényi bound of order α, per example (Li & Turner 2016)")
def renyi_bound(num_particles: int = 5, alpha: float | None = 0.5) -> Estimator:
    return RenyiBound(0.5 if alpha is None else alpha, num_particles)


@ELBOS.register("iwae", "importance-weighted bound = Rényi α=0 (Burda et al. 2016)")
def iwae_bound(num_particles: int = 5, alpha: float | None = None) -> Estimator:
    if alpha not in (None, 0, 0.0):
        raise PplVaeError(f"iwae is the Rényi bound with α = 0; drop --alpha {alpha} or use renyi")
    bound = RenyiBound(0.0, num_particles)
    bound.name = "iwae"
    return bound


class PathwiseBound(RenyiBound):
    """``L_α`` with the guide's gradient by STL or DReG (:mod:`ppl_vae.gradient_estimators`).

    α ∈ [0, 1), or 1 for the K-sample ELBO ``(1/K) Σ_k log w_k``. The value is
    the plain bound's on the same draws; the model's gradient is the plain one;
    the refusals are :class:`RenyiBound`'s.
    """

    def __init__(self, name: str, alpha: float, num_particles: int, doubly: bool):
        super().__init__(0.0 if alpha == 1 else alpha, num_particles)  # 1 allowed here
        self.name, self.alpha, self.doubly = name, float(alpha), doubly
        self._checked: set[tuple] = set()

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        nesting, plan = self.prepare(model, guide, x, inputs)
        key = (id(model), id(guide))
        bound = bound_and_surrogate(model, guide, x, self.alpha, self.doubly, self.num_particles,
                                    nesting, plan, inputs, check=key not in self._checked)
        if torch.is_grad_enabled():
            self._checked.add(key)
        return -bound.mean()


def _fixed_alpha(name: str, alpha: float | None, fixed: float) -> None:
    """``--alpha`` may only repeat the order the estimator has."""
    if alpha is not None and alpha != fixed:
        raise PplVaeError(f"{name} has α = {fixed:g}; drop --alpha {alpha:g} (or use renyi-dreg)")


@ELBOS.register("trace-stl", "K-sample ELBO, sticking-the-landing guide gradient "
                             "(Roeder et al. 2017)")
def trace_stl(num_particles: int = 1, alpha: float | None = None) -> Estimator:
    _fixed_alpha("trace-stl", alpha, 1.0)
    return PathwiseBound("trace-stl", 1.0, num_particles, doubly=False)


@ELBOS.register("iwae-stl", "IWAE bound, sticking-the-landing guide gradient (biased for K > 1)")
def iwae_stl(num_particles: int = 5, alpha: float | None = None) -> Estimator:
    _fixed_alpha("iwae-stl", alpha, 0.0)
    return PathwiseBound("iwae-stl", 0.0, num_particles, doubly=False)


@ELBOS.register("iwae-dreg", "IWAE bound, doubly reparameterized guide gradient "
                             "(Tucker et al. 2019)")
def iwae_dreg(num_particles: int = 5, alpha: float | None = None) -> Estimator:
    _fixed_alpha("iwae-dreg", alpha, 0.0)
    return PathwiseBound("iwae-dreg", 0.0, num_particles, doubly=True)


@ELBOS.register("renyi-dreg", "Rényi bound of order α, doubly reparameterized guide gradient")
def renyi_dreg(num_particles: int = 5, alpha: float | None = 0.5) -> Estimator:
    return PathwiseBound("renyi-dreg", 0.5 if alpha is None else alpha, num_particles,
                         doubly=True)


def make_elbo(name: str, num_particles: int | None = None, alpha: float | None = None,
              pyro_settings: dict | None = None) -> Estimator:
    """The estimator registered as ``name``, or a Pyro ELBO recorded as ``pyro.infer.<Class>``.

    ``None`` particles: the estimator's default; ``pyro_settings``: the recorded
    constructor arguments of a Pyro ELBO (:meth:`PyroELBO.describe`).
    """
    if name.startswith(PYRO_PREFIX):
        return PyroELBO.rebuild(name, num_particles, pyro_settings)
    if name.startswith(CALLABLE_PREFIX):
        raise PplVaeError(f"this run was trained with the user loss function "
                          f"'{name[len(CALLABLE_PREFIX):]}', which a run folder cannot rebuild; "
                          "pass it again as fit(..., elbo=your_loss)")
    factory = ELBOS.get(name).factory
    return factory(alpha=alpha) if num_particles is None else factory(num_particles, alpha)


def as_estimator(elbo, num_particles: int | None = None, alpha: float | None = None) -> Estimator:
    """An :class:`Estimator` from a registry name, a ``pyro.infer.ELBO`` or a loss callable."""
    if isinstance(elbo, Estimator):
        return elbo
    if isinstance(elbo, str):
        return make_elbo(elbo, num_particles, alpha)
    if num_particles is not None or alpha is not None:
        raise PplVaeError(f"particles= and alpha= go with a registry name; set them on "
                          f"{type(elbo).__name__} itself")
    if isinstance(elbo, pyro.infer.ELBO):
        return PyroELBO(elbo)
    if callable(elbo):
        return CallableLoss(elbo)
    raise PplVaeError(f"elbo must be a registry name ({', '.join(e.name for e in ELBOS.entries())}),"
                      f" a pyro.infer.ELBO or a callable loss(model, guide, x, **inputs); got "
                      f"{type(elbo).__name__}")


_NOT_VECTORIZED = (
    "the pair runs with one particle but not with several at once (a reshape to x.shape?); "
    "write the decoder output as logits.reshape(*z.shape[:-1], *x.shape[1:]) so a leading "
    "particle dimension passes through, or train with one particle")
PYRO_PREFIX, CALLABLE_PREFIX = "pyro.infer.", "callable:"
# ELBO constructor arguments Pyro keeps as attributes of the same name.
_PYRO_SETTINGS = ("num_particles", "max_plate_nesting", "vectorize_particles", "retain_graph",
                  "strict_enumeration_warning", "ignore_jit_warnings", "alpha")


def _scaled_sum(site: dict, value: torch.Tensor) -> torch.Tensor:
    """A global site's term summed over everything, mask and scale applied."""
    if site["mask"] is not None:
        value = value * site["mask"]
    return times_scale(value.sum(), site)


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

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        self.prepare(model, guide, x, inputs)
        if type(self.elbo).__name__.startswith("Jit"):
            with pyro.settings.context(module_local_params=False):
                return self._loss(model, guide, x, inputs)
        return self._loss(model, guide, x, inputs)

    def _loss(self, model, guide, x: torch.Tensor, inputs: dict) -> torch.Tensor:
        if hasattr(self.elbo, "differentiable_loss"):
            loss = self.elbo.differentiable_loss(model, guide, x, **inputs)
        else:
            # Pyro 1.9 returns (ELBO, surrogate loss) here: the value of -ELBO, the
            # surrogate's gradient
            elbo, surrogate = self.elbo._loss_and_surrogate_loss(model, guide, (x,), inputs)
            loss = -torch.as_tensor(elbo).detach() + surrogate - surrogate.detach()
        return loss / x.shape[0]

    def describe(self) -> dict:
        settings = {k: getattr(self.elbo, k) for k in _PYRO_SETTINGS if hasattr(self.elbo, k)}
        settings = {k: v for k, v in settings.items() if isinstance(v, (bool, int, float))
                    and math.isfinite(v)}
        return {"elbo": self.name, "particles": self.num_particles, "pyro_settings": settings}

    @classmethod
    def rebuild(cls, name: str, num_particles, settings: dict | None = None) -> PyroELBO:
        """The object :meth:`describe` recorded (only classes of ``pyro.infer``)."""
        kind = getattr(pyro.infer, name[len(PYRO_PREFIX):], None)
        if not (isinstance(kind, type) and issubclass(kind, pyro.infer.ELBO)):
            raise PplVaeError(f"'{name}' is not an ELBO class of pyro.infer; check config.json")
        settings = dict(settings or {})
        if num_particles is not None:
            settings["num_particles"] = num_particles
        return cls(kind(**settings))


class CallableLoss(Estimator):
    """A user's ``loss(model, guide, x, **inputs)``, summed over the batch like Pyro's; the
    inputs come under the programs' own keywords (``fit(inputs={"ys": "y:onehot"})``: ``ys=``)."""

    def __init__(self, loss):
        super().__init__(1)
        self.loss = loss
        self.name = CALLABLE_PREFIX + getattr(loss, "__qualname__", type(loss).__name__)

    def __call__(self, model, guide, x: torch.Tensor, **inputs) -> torch.Tensor:
        self.prepare(model, guide, x, inputs)
        return self.loss(model, guide, x, **program_inputs(model, inputs)) / x.shape[0]
