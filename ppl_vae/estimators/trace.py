"""``trace`` and ``meanfield``: the ELBO ``E_q[log p(x, z) - log q(z | x)]``, Pyro's way.

- ``trace``: Pyro's ``Trace_ELBO``, ``-E_q[log p(x, z) - log q(z | x)]`` by Monte
  Carlo, with score-function terms for non-reparameterizable sites.
- ``meanfield``: Pyro's ``TraceMeanField_ELBO``; uses ``KL(q || p)`` analytically
  wherever ``kl_divergence(guide_site, model_site)`` is registered and falls
  back to Monte Carlo otherwise. Valid when model and guide share the same
  dependency structure between latent sites.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import NOT_VECTORIZED, PARTICLES, Batch, Estimator
from ppl_vae.registry import ESTIMATORS
from ppl_vae.traces import Plan, particle_traces, per_example, site_log_prob, times_scale

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair


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
        self._pyro: dict[tuple, Trace_ELBO | TraceEnum_ELBO] = {}

    def check(self, plan: Plan) -> None:
        """``meanfield`` would sample an enumerated site: refuse, naming the estimator that sums."""
        if self.analytic_kl and plan.enumerated:
            raise PplVaeError(
                f"site(s) {sorted(plan.enumerated)} are marked for enumeration, which "
                "meanfield does not do; use elbo='trace' (sums them out with Pyro's "
                "TraceEnum_ELBO) or pass pyro.infer.TraceEnum_ELBO(...)")
        if not plan.vectorized and self.num_particles > 1:
            raise PplVaeError(NOT_VECTORIZED)

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        model, guide, x, inputs = pair.model, pair.guide, batch.x, batch.inputs
        nesting, plan = self.prepare(pair, x, inputs)
        if plan.enumerated or not plan.reparameterized:
            return self._pyro_loss(model, guide, x, nesting, plan, inputs)
        model_trace, guide_trace = particle_traces(model, guide, x, self.num_particles, nesting,
                                                   plate_one=False, inputs=inputs)
        plan = plan.for_traces(model_trace, guide_trace)
        local, shared = [], []  # per-example terms; sums of global sites' terms
        for name, dims in plan.observed + plan.factors:
            site = model_trace.nodes[name]
            if name in plan.global_sites:
                shared.append(scaled_sum(site, site["fn"].log_prob(site["value"])))
            else:
                local.append(site_log_prob(site, dims, scaled=True))
        guide_dims = dict(plan.guide)
        for name, dims in plan.latent:
            p_site, q_site = model_trace.nodes[name], guide_trace.nodes[name]
            analytic = self.analytic_kl and name in plan.analytic_kl
            if name in plan.global_sites:
                shared.append(-scaled_sum(q_site, kl_divergence(q_site["fn"], p_site["fn"]))
                              if analytic else
                              scaled_sum(p_site, p_site["fn"].log_prob(p_site["value"]))
                              - scaled_sum(q_site, q_site["fn"].log_prob(q_site["value"])))
            elif analytic:
                kl = kl_divergence(q_site["fn"], p_site["fn"])
                local.append(-times_scale(per_example(kl, q_site, guide_dims[name]), q_site))
            else:
                local += [site_log_prob(p_site, dims, scaled=True),
                          -site_log_prob(q_site, guide_dims[name], scaled=True)]
        for name, dims in plan.auxiliary:  # the guide's own sites: part of log q
            q_site = guide_trace.nodes[name]
            if name in plan.global_sites:
                shared.append(-scaled_sum(q_site, q_site["fn"].log_prob(q_site["value"])))
            else:
                local.append(-site_log_prob(q_site, dims, scaled=True))
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


def scaled_sum(site: dict, value: torch.Tensor) -> torch.Tensor:
    """A global site's term summed over everything, mask and scale applied."""
    if site["mask"] is not None:
        value = value * site["mask"]
    return times_scale(value.sum(), site)



@ESTIMATORS.register("trace", "Monte Carlo ELBO E_q[log p(x,z) - log q(z|x)] (Pyro Trace_ELBO)",
                     particles=PARTICLES)
def trace_elbo(particles: int = 1) -> Estimator:
    return TraceBound("trace", False, particles)


@ESTIMATORS.register("meanfield", "ELBO with analytic KL where registered (TraceMeanField_ELBO)",
                     particles=PARTICLES)
def meanfield_elbo(particles: int = 1) -> Estimator:
    return TraceBound("meanfield", True, particles)
