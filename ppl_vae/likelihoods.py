"""Observation heads: decoder output -> distribution over one example ``x``.

Each head turns the decoder's unconstrained output ``h`` (shape
``(*batch, *event_shape)``) into a distribution whose event is the whole
example, so ``log_prob`` is one number per example:

- ``bernoulli``: ``x_i ~ Bernoulli(sigmoid(h_i))``, ``log p = Σ_i x_i h_i - softplus(h_i)``.
  Valid only for binary data (0 or 1).
- ``continuous_bernoulli``: ``x_i ~ CB(λ_i = sigmoid(h_i))`` (Loaiza-Ganem & Cunningham
  2019), a proper density on [0, 1] for grey levels.
- ``gaussian``: ``x_i ~ N(h_i, σ²)`` with ``σ`` fixed (``sigma`` option) or learned
  (one scalar ``log σ`` shared by all pixels, ``sigma=None``).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import constraints
from torch.nn.functional import binary_cross_entropy_with_logits

from ppl_vae.errors import PplVaeError


class ImageDistribution(dist.TorchDistribution):
    """Independent pixels whose event is the last ``event_dims`` dims of ``param``.

    ``dist.Bernoulli(h).to_event(n)`` negates (or shifts) every pixel before the
    event sum; the subclasses sum first and apply per-example terms after, which
    saves a full-size pass forward and backward (same value, tested).
    """

    arg_constraints = {"param": constraints.real}

    def __init__(self, param: torch.Tensor, event_dims: int, validate_args=None):
        self.param, self.event_dims = param, event_dims
        split = param.dim() - event_dims
        super().__init__(param.shape[:split], param.shape[split:], validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update(self.__dict__)
        new.param = self.param.expand(torch.Size(batch_shape) + self.event_shape)
        super(ImageDistribution, new).__init__(torch.Size(batch_shape), self.event_shape,
                                               validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _event_sum(self, value: torch.Tensor) -> torch.Tensor:
        return value.sum(tuple(range(-self.event_dims, 0))) if self.event_dims else value


class BernoulliImage(ImageDistribution):
    """``log p(x | h) = Σ_i x_i h_i - softplus(h_i) = -Σ_i BCE(h_i, x_i)`` (logits ``h``)."""

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.boolean, self.event_dims)

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.param)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return torch.bernoulli(self.mean.expand(self._extended_shape(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = torch.broadcast_tensors(self.param, value)
        return -self._event_sum(binary_cross_entropy_with_logits(logits, value, reduction="none"))


class NormalImage(ImageDistribution):
    """``log p(x | h) = -½ Σ_i (x_i - h_i)² / σ² - D (log σ + ½ log 2π)``, one σ for all D pixels."""

    arg_constraints = {"param": constraints.real, "log_sigma": constraints.real}
    has_rsample = True

    def __init__(self, param: torch.Tensor, log_sigma: torch.Tensor, event_dims: int,
                 validate_args=None):
        self.log_sigma = log_sigma
        super().__init__(param, event_dims, validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(constraints.real, self.event_dims)

    @property
    def mean(self) -> torch.Tensor:
        return self.param

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        noise = torch.randn(self._extended_shape(sample_shape), dtype=self.param.dtype,
                            device=self.param.device)
        return self.param + self.log_sigma.exp() * noise

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        squares = self._event_sum((value - self.param) ** 2)
        pixels = self.event_shape.numel()
        return -0.5 * squares * torch.exp(-2 * self.log_sigma) \
            - pixels * (self.log_sigma + 0.5 * math.log(2 * math.pi))


class Likelihood(nn.Module):
    """Base class: ``forward(h)`` gives the distribution, ``mean(h)`` its mean."""

    needs_unit_interval = False
    needs_binary = False

    def __init__(self, event_dims: int):
        super().__init__()
        self.event_dims = event_dims

    def check_data(self, x: torch.Tensor, name: str = "data") -> None:
        """Raise a :class:`PplVaeError` when ``x`` lies outside this head's support."""
        if not torch.isfinite(x).all():
            raise PplVaeError(f"{name} contains NaN or infinite values; clean the data first")
        if self.needs_unit_interval and (x.min() < 0 or x.max() > 1):
            raise PplVaeError(
                f"{name} has values in [{x.min():.3g}, {x.max():.3g}] but the {self.name} "
                "likelihood needs values in [0, 1]; rescale it or use --likelihood gaussian"
            )
        if self.needs_binary and not ((x == 0) | (x == 1)).all():
            raise PplVaeError(
                f"{name} is not binary but the bernoulli likelihood needs 0/1 values; use "
                "--binarize static|dynamic or --likelihood continuous_bernoulli"
            )


class BernoulliLikelihood(Likelihood):
    """``Bernoulli(logits=h)`` over every pixel; the decoder outputs logits."""

    name = "bernoulli"
    needs_unit_interval = True
    needs_binary = True

    def forward(self, h: torch.Tensor) -> dist.TorchDistribution:
        return BernoulliImage(h, self.event_dims)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h)


class ContinuousBernoulliLikelihood(Likelihood):
    """``ContinuousBernoulli(logits=h)``: a normalised density for x in [0, 1]."""

    name = "continuous_bernoulli"
    needs_unit_interval = True

    def forward(self, h: torch.Tensor) -> dist.TorchDistribution:
        return dist.ContinuousBernoulli(logits=h).to_event(self.event_dims)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return dist.ContinuousBernoulli(logits=h).mean


class GaussianLikelihood(Likelihood):
    """``Normal(h, σ)``; ``σ`` fixed, or learned as one scalar when ``sigma`` is None."""

    name = "gaussian"

    def __init__(self, event_dims: int, sigma: float | None = None):
        super().__init__(event_dims)
        if sigma is not None and sigma <= 0:
            raise PplVaeError(f"--sigma must be positive, got {sigma}")
        self.fixed_log_sigma = None if sigma is None else float(torch.tensor(sigma).log())
        self.log_sigma = nn.Parameter(torch.zeros(())) if sigma is None else None

    def forward(self, h: torch.Tensor) -> dist.TorchDistribution:
        log_sigma = self.log_sigma if self.log_sigma is not None else self.fixed_log_sigma
        return NormalImage(h, torch.as_tensor(log_sigma, dtype=h.dtype, device=h.device),
                           self.event_dims)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return h


LIKELIHOODS = {
    "bernoulli": BernoulliLikelihood,
    "continuous_bernoulli": ContinuousBernoulliLikelihood,
    "gaussian": GaussianLikelihood,
}


def make_likelihood(name: str, event_dims: int, sigma: float | None = None) -> Likelihood:
    """The head called ``name`` for examples with ``event_dims`` dimensions."""
    if name not in LIKELIHOODS:
        raise PplVaeError(f"unknown likelihood '{name}'; choose one of: {', '.join(LIKELIHOODS)}")
    if name == "gaussian":
        return GaussianLikelihood(event_dims, sigma)
    return LIKELIHOODS[name](event_dims)
