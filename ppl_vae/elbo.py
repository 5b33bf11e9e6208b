"""The ELBO registry: ``trace``, ``meanfield``, ``renyi`` and ``iwae``.

Every estimator is called as ``estimator(model, guide, x)`` and returns the
**negative** objective in nats per example (a loss to minimise), differentiable
with respect to the pair's parameters. Particles are vectorized.

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
  refuses any scaled site, any latent outside the ``"data"`` plate and any
  non-reparameterized guide site with an error instead.
"""

from __future__ import annotations

import functools
import math

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from ppl_vae.errors import PplVaeError
from ppl_vae.registry import ELBOS
from ppl_vae.traces import (
    Plan,
    log_weights,
    particle_traces,
    per_example,
    prepare,
    site_log_prob,
    times_scale,
)


class Estimator:
    """Base class: the first call on a pair finds its plate nesting and checks its traces."""

    name = "?"

    def __init__(self, num_particles: int = 1):
        if num_particles < 1:
            raise PplVaeError(f"--particles must be at least 1, got {num_particles}")
        self.num_particles = num_particles
        self._prepared: dict[tuple[int, int], tuple[int, Plan]] = {}

    def prepare(self, model, guide, x: torch.Tensor) -> tuple[int, Plan]:
        """``(nesting, plan)`` of the pair, found and checked once, then cached."""
        key = (id(model), id(guide))
        if key not in self._prepared:
            nesting, plan = prepare(model, guide, x)
            self.check(plan)
            self._prepared[key] = nesting, plan
        return self._prepared[key]

    def check(self, plan: Plan) -> None:
        """Refuse pairs for which this estimator would be wrong (none by default)."""

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
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
        self._pyro_class = TraceMeanField_ELBO if analytic_kl else Trace_ELBO
        self._pyro: dict[int, object] = {}

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
        nesting, plan = self.prepare(model, guide, x)
        if not plan.reparameterized:
            return self._score_function_loss(model, guide, x, nesting)
        model_trace, guide_trace = particle_traces(model, guide, x, self.num_particles, nesting,
                                                   plate_one=False)
        terms = [site_log_prob(model_trace.nodes[name], dims, scaled=True)
                 for name, dims in plan.observed]
        guide_dims = dict(plan.guide)
        for name, dims in plan.latent:
            p_site, q_site = model_trace.nodes[name], guide_trace.nodes[name]
            if self.analytic_kl and name in plan.analytic_kl:
                kl = kl_divergence(q_site["fn"], p_site["fn"])
                terms.append(-times_scale(per_example(kl, q_site, guide_dims[name]), q_site))
            else:
                terms += [site_log_prob(p_site, dims, scaled=True),
                          -site_log_prob(q_site, guide_dims[name], scaled=True)]
        total = functools.reduce(torch.add, terms)
        return -total.mean()

    def _score_function_loss(self, model, guide, x, nesting) -> torch.Tensor:
        """Pyro's estimator, for guides with non-reparameterizable sites."""
        if nesting not in self._pyro:
            self._pyro[nesting] = self._pyro_class(
                num_particles=self.num_particles, vectorize_particles=True,
                max_plate_nesting=nesting)
        return self._pyro[nesting].differentiable_loss(model, guide, x) / x.shape[0]


class RenyiBound(Estimator):
    """The Rényi bound ``L_α`` of the module docstring, one log-mean-exp per example."""

    name = "renyi"

    def __init__(self, alpha: float = 0.0, num_particles: int = 5):
        super().__init__(num_particles)
        if alpha == 1:
            raise PplVaeError("--alpha 1 makes the Rényi bound the ELBO; use --elbo trace instead")
        self.alpha = float(alpha)

    def check(self, plan: Plan) -> None:
        """Refuse the combinations for which the Rényi bound would be silently wrong."""
        if plan.scaled_sites:
            scales = ", ".join(f"'{k}' × {float(torch.as_tensor(v).mean()):g}"
                               for k, v in plan.scaled_sites.items())
            raise PplVaeError(
                f"the Rényi/IWAE bound is defined only for unscaled sites, but {scales} "
                "(β-VAE or poutine.scale); use --elbo trace or meanfield, or β = 1")
        if not plan.reparameterized:
            raise PplVaeError(
                "the Rényi/IWAE estimator needs reparameterizable guide sites (rsample); "
                "use --elbo trace, which adds score-function terms")

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
        nesting, plan = self.prepare(model, guide, x)
        weights = log_weights(model, guide, x, self.num_particles, nesting, plan)
        power = 1.0 - self.alpha
        bound = (torch.logsumexp(power * weights.total, 0) - math.log(self.num_particles)) / power
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


def make_elbo(name: str, num_particles: int | None = None, alpha: float | None = None) -> Estimator:
    """The estimator registered as ``name`` (``None`` particles: the estimator's default)."""
    factory = ELBOS.get(name).factory
    return factory(alpha=alpha) if num_particles is None else factory(num_particles, alpha)
