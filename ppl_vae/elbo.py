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

import math

import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from ppl_vae.errors import PplVaeError
from ppl_vae.registry import ELBOS
from ppl_vae.traces import log_weights, max_plate_nesting


class Estimator:
    """Base class: remembers each pair's plate nesting (found on first use)."""

    name = "?"

    def __init__(self, num_particles: int = 1):
        if num_particles < 1:
            raise PplVaeError(f"--particles must be at least 1, got {num_particles}")
        self.num_particles = num_particles
        self._nesting: dict[tuple[int, int], int] = {}

    def nesting(self, model, guide, x: torch.Tensor) -> int:
        """Plate nesting of the pair, traced once and cached."""
        key = (id(model), id(guide))
        if key not in self._nesting:
            self._nesting[key] = max_plate_nesting(model, guide, x)
        return self._nesting[key]

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings recorded in a run's config."""
        return {"elbo": self.name, "particles": self.num_particles}


class PyroELBO(Estimator):
    """Pyro's ``Trace_ELBO`` or ``TraceMeanField_ELBO``, vectorized, per example."""

    def __init__(self, name: str, elbo_class, num_particles: int = 1):
        super().__init__(num_particles)
        self.name, self.elbo_class = name, elbo_class
        self._elbos: dict[int, object] = {}

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
        nesting = self.nesting(model, guide, x)
        if nesting not in self._elbos:
            self._elbos[nesting] = self.elbo_class(
                num_particles=self.num_particles, vectorize_particles=True,
                max_plate_nesting=nesting)
        return self._elbos[nesting].differentiable_loss(model, guide, x) / x.shape[0]


class RenyiBound(Estimator):
    """The Rényi bound ``L_α`` of the module docstring, one log-mean-exp per example."""

    name = "renyi"

    def __init__(self, alpha: float = 0.0, num_particles: int = 5):
        super().__init__(num_particles)
        if alpha == 1:
            raise PplVaeError("--alpha 1 makes the Rényi bound the ELBO; use --elbo trace instead")
        self.alpha = float(alpha)

    def __call__(self, model, guide, x: torch.Tensor) -> torch.Tensor:
        nesting = self.nesting(model, guide, x)
        weights = log_weights(model, guide, x, self.num_particles, nesting)
        _check_unscaled_reparameterized(weights)
        power = 1.0 - self.alpha
        bound = (torch.logsumexp(power * weights.total, 0) - math.log(self.num_particles)) / power
        return -bound.mean()

    def describe(self) -> dict:
        return {**super().describe(), "alpha": self.alpha}


def _check_unscaled_reparameterized(weights) -> None:
    """Refuse the combinations for which the Rényi bound would be silently wrong."""
    if weights.scaled_sites:
        scales = ", ".join(f"'{k}' × {float(torch.as_tensor(v).mean()):g}"
                           for k, v in weights.scaled_sites.items())
        raise PplVaeError(
            f"the Rényi/IWAE bound is defined only for unscaled sites, but {scales} "
            "(β-VAE or poutine.scale); use --elbo trace or meanfield, or β = 1"
        )
    if not weights.reparameterized:
        raise PplVaeError(
            "the Rényi/IWAE estimator needs reparameterizable guide sites (rsample); "
            "use --elbo trace, which adds score-function terms"
        )


def _no_alpha(name: str, alpha: float | None) -> None:
    """``--alpha`` belongs to the Rényi bound only."""
    if alpha is not None:
        raise PplVaeError(f"--alpha applies to --elbo renyi only, not to {name}; drop it")


@ELBOS.register("trace", "Monte Carlo ELBO E_q[log p(x,z) - log q(z|x)] (Pyro Trace_ELBO)")
def trace_elbo(num_particles: int = 1, alpha: float | None = None) -> Estimator:
    _no_alpha("trace", alpha)
    return PyroELBO("trace", Trace_ELBO, num_particles)


@ELBOS.register("meanfield", "ELBO with analytic KL where registered (TraceMeanField_ELBO)")
def meanfield_elbo(num_particles: int = 1, alpha: float | None = None) -> Estimator:
    _no_alpha("meanfield", alpha)
    return PyroELBO("meanfield", TraceMeanField_ELBO, num_particles)


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
