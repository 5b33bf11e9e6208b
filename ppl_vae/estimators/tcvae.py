"""``tcvae``: β-TCVAE (Chen et al. 2018), the ELBO with the latent code's total correlation weighted.

Averaged over the data set, the ELBO's KL term splits in three (Chen et al., eq. 2)::

    E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || Π_d q(z_d)) + Σ_d KL(q(z_d) || p(z_d))
                             index-code MI   total correlation TC     dimension-wise KL

with ``q(z) = (1/N) Σ_n q(z | x_n)`` the aggregate posterior. β-TCVAE keeps the MI and
dimension-wise KL and weights the TC by β (``tc_weight``)::

    objective = E_q log p(x|z) - MI - β·TC - dimKL = ELBO - (β - 1)·TC

``q(z)`` and its marginals are estimated on the batch with the data set's size
``N``: for draw ``z_i ~ q(z | x_i)`` of a batch of ``B`` examples drawn from the ``N``,
the draw's own example counts with its share ``1/N`` of the mixture and the
``B - 1`` others stand for the remaining ``N - 1`` (stratified weights, Chen et
al.'s appendix; unbiased for ``q(z_i)``, exact when the batch is the data set)::

    q(z_i)  ≈ (1/N) q(z_i | x_i) + (N - 1)/(N (B - 1)) Σ_{j≠i} q(z_i | x_j)
    q(z_id) ≈ the same with the marginal densities q(z_id | x_j)
    MI_i = log q(z_i | x_i) - log q(z_i),   TC_i = log q(z_i) - Σ_d log q(z_id),
    dimKL_i = Σ_d log q(z_id) - log p(z_i)

so that ``MI_i + TC_i + dimKL_i = log q(z_i | x_i) - log p(z_i)``, the KL term's own draw.
``N`` is the :class:`~ppl_vae.estimators.base.Batch`'s data-set size (the batch itself
when called as ``estimator(model, guide, x)``). The estimator needs one latent site
per example whose guide factorizes over its dimensions (``Normal(loc, scale).to_event(1)``,
the ``diagonal`` guide), reparameterized; global and enumerated sites are refused.

The weights are Chen et al.'s minibatch-stratified ones in a symmetric form (their
code gives one of the others ``(N - B + 1)/(N (B - 1))`` and the rest ``1/(B - 1)``;
the same expectation). Their minibatch-weighted form, ``q(z_i) ≈ (1/(N B)) Σ_j
q(z_i | x_j)``, is not a constant shift of this one: it weights the draw's own example
``1/(N B)``, not ``1/N``, so its expectation is not ``q(z_i)`` and its MI, TC and dimKL
and their gradients differ (most where posteriors are narrow and the own example
dominates). The reference implementation's stratified weight matrix
(``log_importance_weight_matrix``, a stride of ``B`` where ``B + 1`` is meant) puts the
``1/N`` in column 0, not on the diagonal: right for the batch's first draw only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.distributions import Independent

from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import NOT_VECTORIZED, PARTICLES, Batch, Estimator
from ppl_vae.registry import ESTIMATORS
from ppl_vae.traces import Plan, check_local, particle_traces, site_log_prob, times_scale

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair

WHAT = "the tcvae objective"


@dataclass
class Decomposition:
    """Per-draw pieces, each ``(K, B)``: ``log p(x | z)`` and ``log p(z) - log q(z | x)`` with
    the sites' scales (β, a KL warm-up), and the three unscaled parts of the KL term."""

    log_likelihood: torch.Tensor
    latent_term: torch.Tensor
    mutual_information: torch.Tensor
    total_correlation: torch.Tensor
    dimension_kl: torch.Tensor


def pairwise_log_density(site: dict) -> torch.Tensor:
    """``log q(z_id | x_j)`` for every draw ``i``, example ``j`` and dimension ``d``: ``(K, B, B, D)``."""
    fn = site["fn"]
    if not (isinstance(fn, Independent) and fn.reinterpreted_batch_ndims == 1
            and fn.base_dist.event_shape == ()):
        raise PplVaeError(f"{WHAT} needs a guide site '{site['name']}' that factorizes over its "
                          f"dimensions (Normal(loc, scale).to_event(1), the diagonal guide), not "
                          f"{type(fn).__name__}; use --elbo trace with this guide")
    rows = site["value"].movedim(-2, 0).unsqueeze(-2)  # (B_i, K, 1, D) against (K, B_j, D)
    return fn.base_dist.log_prob(rows).movedim(0, -3)


def mixture_weights(batch_size: int, dataset_size: int, like: torch.Tensor) -> torch.Tensor:
    """``log`` of the module docstring's weights, ``(B, B)``: ``1/N`` on the diagonal,
    ``(N - 1)/(N (B - 1))`` elsewhere."""
    others = math.log(dataset_size - 1) - math.log(dataset_size * max(batch_size - 1, 1))
    weights = like.new_full((batch_size, batch_size), others)
    return weights.fill_diagonal_(-math.log(dataset_size))


def decompose(model, guide, batch: Batch, num_particles: int, nesting: int,
              plan: Plan) -> Decomposition:
    """The module docstring's estimates on ``num_particles`` draws per example of ``batch``."""
    model_trace, guide_trace = particle_traces(model, guide, batch.x, num_particles, nesting,
                                               inputs=batch.inputs)
    (name, dims), = plan.guide
    q_site, p_site = guide_trace.nodes[name], model_trace.nodes[name]
    log_likelihood = functools.reduce(torch.add, [
        site_log_prob(model_trace.nodes[obs], obs_dims, scaled=True)
        for obs, obs_dims in plan.observed + plan.factors])  # factors: joint terms
    log_q, log_p = site_log_prob(q_site, dims), site_log_prob(p_site, dict(plan.latent)[name])
    latent_term = times_scale(log_p, p_site) - times_scale(log_q, q_site)
    pairwise = pairwise_log_density(q_site)
    log_w = mixture_weights(batch.size, batch.examples_total, pairwise)
    log_qz = torch.logsumexp(pairwise.sum(-1) + log_w, -1)
    log_qz_dims = torch.logsumexp(pairwise + log_w.unsqueeze(-1), -2).sum(-1)
    return Decomposition(log_likelihood, latent_term, log_q - log_qz, log_qz - log_qz_dims,
                         log_qz_dims - log_p)


class TotalCorrelationBound(Estimator):
    """``-(ELBO - (β - 1)·TC)`` per example; the ELBO's latent terms carry the sites' scales
    (a KL warm-up), the TC does not."""

    name = "tcvae"

    def __init__(self, tc_weight: float, num_particles: int = 1):
        super().__init__(num_particles)
        if not tc_weight >= 0:
            raise PplVaeError(f"--tc-weight must be ≥ 0 (1 is the ELBO), got {tc_weight}")
        self.tc_weight = float(tc_weight)

    def check(self, plan: Plan) -> None:
        check_local(plan, WHAT)
        if plan.enumerated or not plan.reparameterized or len(plan.guide) != 1 \
                or dict(plan.guide)[plan.guide[0][0]] or plan.auxiliary:
            raise PplVaeError(f"{WHAT} needs exactly one reparameterized latent site per example "
                              f"in pyro.plate('data') alone; the guide samples "
                              f"{[name for name, _ in plan.guide]}: use --elbo trace")
        if not plan.vectorized and self.num_particles > 1:
            raise PplVaeError(NOT_VECTORIZED)

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        nesting, plan = self.prepare(pair, batch.x, batch.inputs)
        parts = decompose(pair.model, pair.guide, batch, self.num_particles, nesting, plan)
        elbo = parts.log_likelihood + parts.latent_term
        return -(elbo - (self.tc_weight - 1.0) * parts.total_correlation).mean()


@ESTIMATORS.register("tcvae", "β-TCVAE: ELBO - (β-1)·total correlation, q(z) by minibatch-"
                              "stratified sampling (Chen et al. 2018)", particles=PARTICLES,
                     tc_weight="tcvae: weight β of the total correlation (1: the ELBO)")
def tcvae(particles: int = 1, tc_weight: float = 6.0) -> Estimator:
    return TotalCorrelationBound(tc_weight, particles)
