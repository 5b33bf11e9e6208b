"""Importance weights with discrete sites summed out, for evaluation.

Sites marked ``infer={"enumerate": "parallel"}`` (or ``config_enumerate``)
are summed over their support instead of sampled. For a guide
``q(y | x) q(z | x, y)`` with ``y`` enumerated and ``K`` draws
``z_yk ~ q(z | x, y)`` for every value ``y``::

    log w_yk = log p(x, y, z_yk) - log q(z_yk | x, y)
    log p(x) ≈ log Σ_y (1/K) Σ_k w_yk                       (IS, exact in y)
    ELBO(x)  = Σ_y q(y | x) [ (1/K) Σ_k log w_yk - log q(y | x) ]

and a model-only discrete site ``c`` (a mixture prior the guide does not
sample) enters ``log p(x, y, z)`` through ``log Σ_c p(c) p(z, ... | c)``.
Enumeration dimensions are allocated left of the particle plate, as Pyro's
``TraceEnum_ELBO`` does. Valid for enumerated sites directly inside the
``"data"`` plate (checked by :func:`ppl_vae.traces.make_plan`): each example's
sum is then a sum over its own values, and the cost is the product of the
supports' sizes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from pyro import poutine
from pyro.poutine.enum_messenger import EnumMessenger

from ppl_vae.traces import Plan, check_local, particle_plate, runnable


@dataclass
class EnumeratedWeights:
    """Per-example pieces with the guide's enumerated values on a leading axis.

    Attributes:
        log_weight: ``log p(x, y, z) - log q(z | x, y)``, ``(E, K, batch)``.
        log_likelihood: ``log p(x | ...)`` of the observed sites, ``(E, K, batch)``
            (model-only enumerated sites averaged out under their posterior).
        log_q_enumerated: ``log q(y | x)`` of each enumerated value, ``(E, 1, batch)``
            (zeros when only the model enumerates).
    """

    log_weight: torch.Tensor
    log_likelihood: torch.Tensor
    log_q_enumerated: torch.Tensor

    def elbo(self) -> torch.Tensor:
        """``Σ_y q(y | x) [mean_k log w_yk - log q(y | x)]`` per example."""
        q = self.log_q_enumerated[:, 0].exp()
        return (q * (self.log_weight.mean(1) - self.log_q_enumerated[:, 0])).sum(0)

    def reconstruction(self) -> torch.Tensor:
        """``-Σ_y q(y | x) mean_k log p(x | ...)`` per example."""
        q = self.log_q_enumerated[:, 0].exp()
        return -(q * self.log_likelihood.mean(1)).sum(0)


def _site_term(site: Mapping[str, Any], nesting: int) -> torch.Tensor:
    """``log_prob`` summed over every plate but the particle and data plates (kept as 1s)."""
    value = site["fn"].log_prob(site["value"])
    if site["mask"] is not None:
        value = value * site["mask"]
    frames = {f.name: f.dim for f in site["cond_indep_stack"] if f.dim is not None}
    dims = [d for name, d in frames.items() if name not in ("data", "ppl_vae_particles")]
    return value.sum(dims, keepdim=True) if dims else value


def _layout(term: torch.Tensor, shape: torch.Size, nesting: int, batch: int) -> torch.Tensor:
    """A broadcast term as ``(E, K, batch)``: enumeration axes, particles, examples."""
    term = term.expand(shape)
    return term.reshape(-1, shape[-(nesting + 1)], batch)


def enumerated_log_weights(model, guide, x: torch.Tensor, num_particles: int, nesting: int,
                           plan: Plan, inputs: dict | None = None) -> EnumeratedWeights:
    """Run the pair with its enumerated sites summed; see the module docstring."""
    check_local(plan, "an importance-weighted estimate")
    inputs = inputs or {}
    first_enum_dim = -(nesting + 2)
    with particle_plate(num_particles, -(nesting + 1)):
        guide_trace = poutine.trace(EnumMessenger(first_available_dim=first_enum_dim)(
            runnable(guide))).get_trace(x, **inputs)
        model_trace = poutine.trace(poutine.replay(EnumMessenger()(runnable(model)),
                                                   trace=guide_trace)).get_trace(x, **inputs)
    terms = {name: _site_term(model_trace.nodes[name], nesting)
             for name, _ in plan.joint}
    guide_sampled = [_site_term(guide_trace.nodes[name], nesting)
                     for name, _ in plan.guide if name not in plan.enumerated]
    guide_summed = [_site_term(guide_trace.nodes[name], nesting)
                    for name, _ in plan.guide if name in plan.enumerated]
    zero = x.new_zeros(())
    shape = torch.broadcast_shapes(*(t.shape for t in [*terms.values(), *guide_sampled,
                                                       *guide_summed]), (1,) * (nesting + 1))
    joint = functools.reduce(torch.add, terms.values()).expand(shape)
    observed = functools.reduce(torch.add, [terms[name] for name, _ in plan.observed])
    observed = observed.expand(shape)
    # (EnumMessenger writes _enumerate_dim into an enumerated site's infer dict)
    model_dims = sorted({cast(dict, model_trace.nodes[name]["infer"])["_enumerate_dim"]
                         for name in plan.model_enumerated})
    if model_dims:  # log Σ_c p(c, ...); the observation term averaged under p(c | ...)
        posterior = (joint - joint.logsumexp(model_dims, keepdim=True)).exp()
        observed = (posterior * observed).sum(model_dims, keepdim=True)
        joint = joint.logsumexp(model_dims, keepdim=True)
        shape = joint.shape
    log_q = functools.reduce(torch.add, guide_sampled, zero)
    log_q_summed = functools.reduce(torch.add, guide_summed, zero)
    batch = x.shape[0]
    return EnumeratedWeights(_layout(joint - log_q, shape, nesting, batch),
                             _layout(observed, shape, nesting, batch),
                             _layout(log_q_summed, shape, nesting, batch)[:, :1])
