"""``renyi`` (Li & Turner 2016) and ``iwae`` (Burda et al. 2016, α = 0), per example::

    L_α(x) = 1/(1-α) · log (1/K) Σ_k w_k^(1-α),   log w_k = log p(x, z_k) - log q(z_k | x)

This is a lower bound on ``log p(x)`` for α ∈ [0, 1) that tightens as K grows
(α = 0). Pyro's ``RenyiELBO`` applies site scales inside the log-sum-exp, so
with β ≠ 1 or a scaled plate it silently optimises another objective; ours
refuses any scaled site, any latent outside the ``"data"`` plate, any
enumerated site and any non-reparameterized guide site with an error instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ppl_vae.chunks import log_mean_exp
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import ALPHA, NOT_VECTORIZED, PARTICLES, Batch, Estimator
from ppl_vae.registry import ESTIMATORS
from ppl_vae.traces import Plan, check_local, log_weights

if TYPE_CHECKING:  # annotations only: estimators see a pair through its interface
    from ppl_vae.pair import Pair


class RenyiBound(Estimator):
    """The Rényi bound ``L_α`` of the module docstring, one log-mean-exp per example."""

    name = "renyi"
    scales_latents = False  # a scaled log weight inside the log-mean-exp is no bound

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
            raise PplVaeError(NOT_VECTORIZED)
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

    def estimate(self, pair: Pair, batch: Batch) -> torch.Tensor:
        nesting, plan = self.prepare(pair, batch.x, batch.inputs)
        weights = log_weights(pair.model, pair.guide, batch.x, self.num_particles, nesting, plan,
                              batch.inputs)
        power = 1.0 - self.alpha
        bound = log_mean_exp(power * weights.total) / power
        return -bound.mean()


@ESTIMATORS.register("renyi", "Rényi bound of order α, per example (Li & Turner 2016)",
                     particles=PARTICLES, alpha=ALPHA)
def renyi_bound(particles: int = 5, alpha: float = 0.5) -> Estimator:
    return RenyiBound(alpha, particles)


@ESTIMATORS.register("iwae", "importance-weighted bound = Rényi α=0 (Burda et al. 2016)",
                     particles=PARTICLES)
def iwae_bound(particles: int = 5) -> Estimator:
    bound = RenyiBound(0.0, particles)
    bound.name = "iwae"
    return bound
