"""NGVAE: the Normal-Gamma VAE (Jouffroy, Giremus & Berthoumieu, 2022 slides) as a Pyro model.

Per example and latent dimension k = 1..K, with precision λ_k (variance v_k = λ_k⁻¹)::

    λ_k ~ π_k Gamma(α1, β1) + (1 - π_k) Gamma(α2, β2)    i.e. v_k ~ Σ_c π_kc IG(α_c, β_c)
    z_k ~ N(0, 1)               z_prior="normal" (default): λ_k auxiliary, p(x) is the VAE's
    z_k | λ_k ~ N(0, λ_k⁻¹)     z_prior="normal_gamma": the normal-gamma hierarchy of the issue
    x | z ~ p_θ(x | z)

Component 1 is "informative" (mean variance ``β1/(α1-1)`` = 0.01 by default), component 2
"uninformative" (mean 1); ``π_k`` is a learned global weight per dimension (empirical Bayes,
initialised at ``prior_weight``; ``learn_prior_weight=False`` fixes it). With
``learn_rate1=True`` the informative rate β1 is learned per dimension too
(:class:`InformativeRate`, shared by the prior and the guide), so an informative
dimension's posterior variance is no longer pinned near 0.01. The guide
(:mod:`ppl_vae.guides.ngvae`) is ``q(λ_k | x) = Gamma(a(p_k), b(p_k))`` on the relaxation
path of :class:`Relaxation`, then ``q(z_k | λ_k, x) = N(μ_k, λ_k⁻¹)``. The objective::

    ELBO(x) = E_q[log p_θ(x | z)]                                       Monte Carlo
              - Σ_k E_q[log q(λ_k | x) - log p(λ_k)]                     Monte Carlo
              - Σ_k E_q(λ_k) KL(N(μ_k, λ_k⁻¹) ‖ p(z_k | λ_k))            closed form given λ_k

is a correct ELBO of the model above with every estimator (``meanfield`` takes the last
term in closed form averaged over λ_k, :func:`expected_gaussian_kl`, through the KL
registered for :class:`NormalGivenGammaPrecision`).

λ is auxiliary for evaluation: given λ the guide's z is Normal, so its λ-marginal is a
Student-t, ``q(z_k | x) = t_{2a}(μ_k, √(b/a))``, and the model's is ``N(0, 1)`` (normal)
or a two-component Student-t mixture (normal_gamma). The pair declares this collapsed
form (:meth:`NGVAE.collapsed`, :meth:`~ppl_vae.guides.ngvae.NGVAEGuide.collapsed`), and
the engine's IS log-likelihood, reported ELBO, PSIS k̂ and posterior moments use it:
``log p(x)`` then does not depend on π under ``z_prior="normal"``, and the collapsed ELBO
is the uncollapsed one plus ``E_q(z) KL(q(λ | z, x) ‖ p(λ | z)) ≥ 0``. The λ-term has no closed form (a relaxed Gamma against a two-component
mixture): ``meanfield`` falls back to Monte Carlo for that site only. It is ≈ -log π_c when
q sits on component c and higher between the components (a barrier of ≈ 1.1 nats at the
default α = 1.5, 3.6 nats at α = 3), which drives each p_k to 0 or 1.

The project's default NGVAE (what ``--model ngvae`` and :func:`build_ngvae` build):
z_prior ``normal`` (z ~ N(0, 1), λ auxiliary), α1 = α2 = 1.5 with β1 = 0.005 and
β2 = 0.5 (mean variances 0.01 and 1), sharpness r = 10, π_k learned from 0.5, β1 fixed
(``learn_rate1=False``). Why each (pilot runs, one seed, shapes 32×32,
``benchmarks/results/ngvae/NOTES.md``):

- ``normal``, not the slides' ``normal_gamma``: under normal_gamma the guide's z-variance
  is the prior's, so information costs ``½ μ²/v`` nats (linear in the signal-to-noise
  ratio, not logarithmic): it trains to a far lower ELBO and no p_k separates;
- α = 1.5: the λ-term's barrier between the components is ≈ 1.1 nats; with α = 3 or 2
  it kept most informative dimensions on the uninformative side;
- β2/(α2 - 1) = 1 matches the N(0, 1) prior, so an unused dimension costs little;
  β1/(α1 - 1) = 0.01 is where the pilots' informative VAE dimensions sat;
- β1 fixed: the learned rate (``learn_rate1``) is an option, not yet shown better.

These values were chosen on the shapes data the project reports on, so they are not
shown free of dataset-dependent tuning, and the count they give is not the number of
generative factors: 4–5 of 10 at 32×32 and 10 of 10 at 64×64 on the full grid
(``benchmarks/reproduce/ngvae.py``); with 2, 3, 4, 5 factors varying (32×32, K = 15, one
setting, 2,000 steps, seeds 0 and 1, ``benchmarks/reproduce/ngvae_factors.py``) it was
5/6, 4/4, 5/4, 5/4 under ``normal`` (position alone takes 5–6 dimensions; shape and
orientation, when they vary, are not encoded) and 4/4, 1/2, 2/3, 1/1 under
``normal_gamma`` (all 15 dimensions active, mean p_k at most 0.56–0.78).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from ppl_vae.errors import PplVaeError
from ppl_vae.likelihoods import make_likelihood
from ppl_vae.nets import make_decoder
from ppl_vae.registry import MODELS

Z_PRIORS = ("normal", "normal_gamma")


@dataclass(frozen=True)
class Relaxation:
    """``(a(w), b(w)) = (α2, β2) + s_r(w) · (α1 - α2, β1 - β2)`` with a unit sigmoid ``s_r``.

    ``s_r(w) = (σ(r(w - ½)) - σ(-r/2)) / (σ(r/2) - σ(-r/2))`` is the slides' sigmoid
    rescaled so ``s_r(0) = 0`` and ``s_r(1) = 1`` exactly: ``w → 1`` selects
    component 1 ``(α1, β1)``, ``w → 0`` component 2 ``(α2, β2)``.
    """

    concentration1: float = 1.5
    rate1: float = 0.005
    concentration2: float = 1.5
    rate2: float = 0.5
    sharpness: float = 10.0

    def __post_init__(self):
        for name in ("concentration1", "concentration2"):
            if not getattr(self, name) > 1:
                raise PplVaeError(f"--{name} must exceed 1 so the mean variance exists")
        if not (self.rate1 > 0 and self.rate2 > 0 and self.sharpness > 0):
            raise PplVaeError("--rate1, --rate2 and --sharpness must be positive")
        if not self.mean_variance(1.0) < self.mean_variance(0.0):
            raise PplVaeError("component 1 must have the smaller mean variance: lower --rate1 "
                              "or raise --rate2")

    def unit_sigmoid(self, w: torch.Tensor | float) -> torch.Tensor:
        """``s_r(w)``: increasing in w, exactly 0 at w = 0 and 1 at w = 1."""
        low = 1.0 / (1.0 + math.exp(0.5 * self.sharpness))
        return (torch.sigmoid(self.sharpness * (torch.as_tensor(w) - 0.5)) - low) / (1 - 2 * low)

    def __call__(self, w: torch.Tensor | float, rate1: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Concentration and rate of the relaxed Gamma on λ (inverse-gamma on λ⁻¹);
        ``rate1``: a learned β1 per dimension (:class:`InformativeRate`) in place of the
        fixed one."""
        s = self.unit_sigmoid(w)
        beta1 = self.rate1 if rate1 is None else rate1
        return (self.concentration2 + (self.concentration1 - self.concentration2) * s,
                self.rate2 + (beta1 - self.rate2) * s)

    def mean_variance(self, w) -> torch.Tensor:
        """``E[λ⁻¹] = b(w) / (a(w) - 1)``."""
        a, b = self(torch.as_tensor(w, dtype=torch.get_default_dtype()))
        return b / (a - 1)


class InformativeRate(nn.Module):
    """The informative component's rate learned per dimension (``learn_rate1``), by
    maximising the ELBO (empirical Bayes), shared by the prior and the guide's relaxation::

        β1_k = β1_max · σ(u_k),    β1_max = β2 (α1 - 1) / (α2 - 1)

    so component 1's mean variance ``β1_k / (α1 - 1)`` stays below component 2's
    ``β2 / (α2 - 1)`` and "informative" cannot swap sides; ``u_k`` starts where
    ``β1_k`` equals the fixed ``rate1``. With a fixed β1 every informative dimension's
    posterior variance is pulled to ``β1/(α1-1)`` (0.01 by default) whatever the data
    need; learned, each dimension sets its own price of being informative.
    """

    def __init__(self, latent_dim: int, relaxation: Relaxation):
        super().__init__()
        r = relaxation
        self.upper = r.rate2 * (r.concentration1 - 1) / (r.concentration2 - 1)
        start = r.rate1 / self.upper
        self.logit = nn.Parameter(torch.full((latent_dim,), math.log(start / (1 - start))))

    def forward(self) -> torch.Tensor:
        return self.upper * torch.sigmoid(self.logit)


def expected_gaussian_kl(loc, a, b, z_prior: str = "normal") -> torch.Tensor:
    """``E_{λ~Gamma(a,b)} KL(N(loc, λ⁻¹) ‖ p(z | λ))``, elementwise, in closed form."""
    if z_prior == "normal_gamma":
        return 0.5 * loc**2 * a / b
    return 0.5 * (b / (a - 1) + loc**2 - 1 - b.log() + torch.digamma(a))


class NormalGivenGammaPrecision(dist.Normal):
    """``N(loc, λ⁻¹)`` at a drawn ``λ ~ Gamma(a, b)``, remembering ``(a, b)``.

    Sampling and ``log_prob`` are the Normal's given the drawn λ. Its KL to the
    model's ``p(z | λ)`` (registered below, used by ``meanfield``) is the
    λ-average in closed form, :func:`expected_gaussian_kl`, instead of the KL at
    the one drawn λ, whose variance is infinite at uninformative dimensions
    (``E[λ⁻¹]`` exists, ``E[λ⁻²]`` does not for a < 2): the same term of the
    ELBO in expectation, Rao-Blackwellised over λ.
    """

    def __init__(self, loc, precision, concentration, rate, validate_args=None):
        self.precision, self.concentration, self.rate = precision, concentration, rate
        super().__init__(loc, precision.rsqrt(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return NormalGivenGammaPrecision(*(t.expand(shape) for t in (
            self.loc, self.precision, self.concentration, self.rate)))


@torch.distributions.kl.register_kl(NormalGivenGammaPrecision, dist.Normal)
def _expected_kl_to_normal(q: NormalGivenGammaPrecision, p: dist.Normal) -> torch.Tensor:
    """``E_λ KL(N(μ, λ⁻¹) ‖ p)``: closed form for ``p = N(0, 1)`` and for ``p = N(0, λ⁻¹)``
    at the guide's own λ; otherwise the KL at the drawn λ."""
    if bool((p.loc == 0).all()):
        if bool((p.scale == 1).all()):
            return expected_gaussian_kl(q.loc, q.concentration, q.rate, "normal")
        if torch.equal(p.scale, q.scale.expand_as(p.scale)):
            return expected_gaussian_kl(q.loc, q.concentration, q.rate, "normal_gamma")
    return torch.distributions.kl._kl_normal_normal(q, p)


def student_t_marginal(loc, a, b) -> dist.TorchDistribution:
    """``∫ N(z; loc, λ⁻¹) Gamma(λ; a, b) dλ = t_{2a}(z; loc, √(b / a))`` per dimension."""
    return dist.StudentT(2 * a, loc, (b / a).sqrt())


class NGVAE(PyroModule):
    """The model of the module docstring; sites ``precision`` (λ), then ``z``, then ``x``.

    Args:
        event_shape, latent_dim, likelihood, net, sigma: as for :class:`~ppl_vae.models.vae.VAE`.
        relaxation: the two components and the sharpness r (:class:`Relaxation`).
        prior_weight: initial (or fixed) π_k, the prior weight of the informative component.
        learn_prior_weight: learn π_k per dimension by maximising the ELBO.
        z_prior: ``normal`` or ``normal_gamma`` (module docstring).
        learn_rate1: learn β1 per dimension (:class:`InformativeRate`).
    """

    latent_site = "z"
    precision_site = "precision"
    default_guide = "ngvae"

    def __init__(self, event_shape, latent_dim: int, likelihood: str = "bernoulli",
                 net: str = "auto", sigma: float | None = None,
                 relaxation: Relaxation | None = None, prior_weight: float = 0.5,
                 learn_prior_weight: bool = True, z_prior: str = "normal",
                 learn_rate1: bool = False):
        super().__init__()
        if latent_dim < 1:
            raise PplVaeError(f"--latent-dim must be at least 1, got {latent_dim}")
        if not 0 < prior_weight < 1:
            raise PplVaeError(f"--prior-weight must lie in (0, 1), got {prior_weight}")
        if z_prior not in Z_PRIORS:
            raise PplVaeError(f"--z-prior must be one of {', '.join(Z_PRIORS)}, got {z_prior!r}")
        self.event_shape, self.latent_dim, self.latent_scale = tuple(event_shape), latent_dim, 1.0
        self.relaxation, self.z_prior = relaxation or Relaxation(), z_prior
        logit = torch.full((latent_dim,), math.log(prior_weight / (1 - prior_weight)))
        if learn_prior_weight:
            self.prior_logit = nn.Parameter(logit)
        else:
            self.register_buffer("prior_logit", logit)
        self.informative_rate = InformativeRate(latent_dim, self.relaxation) \
            if learn_rate1 else None
        self.decoder = make_decoder(latent_dim, self.event_shape, net)
        self.likelihood = make_likelihood(likelihood, len(self.event_shape), sigma)

    def rate1(self) -> torch.Tensor:
        """``β1_k`` per dimension: learned (:class:`InformativeRate`) or the fixed one."""
        if self.informative_rate is not None:
            return self.informative_rate()
        return self.prior_logit.new_full((self.latent_dim,), self.relaxation.rate1)

    def _components(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Shapes and rates ``(K, 2)`` of the two components per dimension."""
        r, rate1 = self.relaxation, self.rate1()
        a = rate1.new_tensor([r.concentration1, r.concentration2]).expand(self.latent_dim, 2)
        return a, torch.stack([rate1, torch.full_like(rate1, r.rate2)], -1)

    def check_data(self, x: torch.Tensor, name: str = "data") -> None:
        """Refuse data outside the likelihood's support before training starts."""
        self.likelihood.check_data(x, name)

    def prior_weight(self) -> torch.Tensor:
        """``π_k``, the per-dimension prior weight of the informative component."""
        return torch.sigmoid(self.prior_logit)

    def precision_prior(self) -> dist.Independent:
        """``Π_k [π_k Gamma(λ_k; α1, β1) + (1 - π_k) Gamma(λ_k; α2, β2)]``."""
        weight = self.prior_weight()
        mixing = dist.Categorical(probs=torch.stack([weight, 1 - weight], -1))
        return dist.MixtureSameFamily(mixing, dist.Gamma(*self._components())).to_event(1)

    def z_given_precision(self, precision: torch.Tensor) -> dist.TorchDistribution:
        """``N(0, λ⁻¹)`` (normal_gamma) or ``N(0, 1)`` (normal), per dimension."""
        scale = precision.rsqrt() if self.z_prior == "normal_gamma" else torch.ones_like(precision)
        return dist.Normal(torch.zeros_like(precision), scale).to_event(1)

    def kl_per_dimension(self, loc, a, b, draws: int = 64) -> torch.Tensor:
        """``KL(q(λ_k, z_k | x) ‖ p(λ_k, z_k))`` for a guide's ``μ``, ``(a, b)``: the λ-term
        by ``draws`` Monte Carlo draws, the Gaussian term in closed form."""
        q = dist.Gamma(a, b)
        precision = q.sample((draws,))
        log_ratio = q.log_prob(precision) - self.precision_prior().base_dist.log_prob(precision)
        return log_ratio.mean(0) + expected_gaussian_kl(loc, a, b, self.z_prior)

    def z_marginal(self) -> dist.TorchDistribution:
        """``p(z_k) = ∫ p(z_k | λ_k) p(λ_k) dλ_k``: ``N(0, 1)`` (normal), or (normal_gamma)
        ``π_k t_{2α1}(0, √(β1/α1)) + (1 - π_k) t_{2α2}(0, √(β2/α2))``."""
        weight = self.prior_weight()
        if self.z_prior == "normal":
            zeros = weight.new_zeros(self.latent_dim)
            return dist.Normal(zeros, zeros + 1).to_event(1)
        a, b = self._components()
        mixing = dist.Categorical(probs=torch.stack([weight, 1 - weight], -1))
        return dist.MixtureSameFamily(mixing, student_t_marginal(torch.zeros_like(a), a, b)
                                      ).to_event(1)

    def collapsed(self, x: torch.Tensor) -> None:
        """The model with λ integrated out: ``z ~ p(z)`` (:meth:`z_marginal`), ``x | z``."""
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample(self.latent_site, self.z_marginal())
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def forward(self, x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            precision = pyro.sample(self.precision_site, self.precision_prior())
            z = pyro.sample(self.latent_site, self.z_given_precision(precision))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)


@MODELS.register("ngvae", "Normal-Gamma VAE: two-component prior on each latent variance, "
                          "selects informative latents (Jouffroy et al. 2022)",
                 concentration1="ngvae: Gamma shape α1 of the informative component",
                 rate1="ngvae: Gamma rate β1 of the informative component",
                 concentration2="ngvae: Gamma shape α2 of the uninformative component",
                 rate2="ngvae: Gamma rate β2 of the uninformative component",
                 sharpness="ngvae: sharpness r of the relaxation",
                 prior_weight="ngvae: initial weight π_k of the informative component",
                 learn_prior_weight="ngvae: learn π_k (--no-learn-prior-weight keeps it at "
                                    "--prior-weight)",
                 z_prior="ngvae: normal or normal_gamma",
                 learn_rate1="ngvae: learn the informative rate β1 per dimension (empirical "
                             "Bayes; --rate1 is its start)")
def build_ngvae(event_shape, latent_dim: int = 10, likelihood: str = "bernoulli",
                net: str = "auto", sigma: float | None = None, concentration1: float = 1.5,
                rate1: float = 0.005, concentration2: float = 1.5, rate2: float = 0.5,
                sharpness: float = 10.0, prior_weight: float = 0.5,
                learn_prior_weight: bool = True, z_prior: str = "normal",
                learn_rate1: bool = False) -> NGVAE:
    relaxation = Relaxation(concentration1, rate1, concentration2, rate2, sharpness)
    return NGVAE(event_shape, latent_dim, likelihood, net, sigma, relaxation, prior_weight,
                 learn_prior_weight, z_prior, learn_rate1)
