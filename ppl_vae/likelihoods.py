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

import pyro.distributions as dist
import torch
from torch import nn

from ppl_vae.errors import PplVaeError


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

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        return dist.Bernoulli(logits=h).to_event(self.event_dims)

    def mean(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(h)


class ContinuousBernoulliLikelihood(Likelihood):
    """``ContinuousBernoulli(logits=h)``: a normalised density for x in [0, 1]."""

    name = "continuous_bernoulli"
    needs_unit_interval = True

    def forward(self, h: torch.Tensor) -> dist.Distribution:
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

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        log_sigma = self.log_sigma if self.log_sigma is not None else self.fixed_log_sigma
        scale = torch.as_tensor(log_sigma, dtype=h.dtype, device=h.device).exp()
        return dist.Normal(h, scale.expand_as(h)).to_event(self.event_dims)

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
