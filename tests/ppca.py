"""Probabilistic PCA written as a user would: a model whose log p(x) is exact.

    z ~ N(0, I_k),  x | z ~ N(W z + b, σ² I_d)   =>   x ~ N(b, W Wᵀ + σ² I_d)

The exact posterior is ``N(M⁻¹ Wᵀ (x - b), σ² M⁻¹)`` with ``M = WᵀW + σ² I``.
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

D, K, SIGMA = 6, 2, 0.5


def ppca_params(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, K, generator=g), torch.randn(D, generator=g)


class PPCA(PyroModule):
    def __init__(self, seed: int = 0):
        super().__init__()
        self.W, self.b = ppca_params(seed)

    def exact_log_prob(self, x):
        cov = self.W @ self.W.T + SIGMA**2 * torch.eye(D)
        return dist.MultivariateNormal(self.b, covariance_matrix=cov).log_prob(x)

    def posterior(self, x):
        M = self.W.T @ self.W + SIGMA**2 * torch.eye(K)
        loc = torch.linalg.solve(M, self.W.T @ (x - self.b).unsqueeze(-1)).squeeze(-1)
        return loc, SIGMA**2 * torch.linalg.inv(M)

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, SIGMA).to_event(1), obs=x)


class PosteriorGuide(PyroModule):
    """The exact posterior, optionally with its covariance scaled by ``inflate``."""

    def __init__(self, model: PPCA, inflate: float = 1.0, shift: float = 0.0):
        super().__init__()
        self.model, self.inflate, self.shift = model, inflate, shift

    def forward(self, x):
        loc, cov = self.model.posterior(x)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.MultivariateNormal(loc + self.shift,
                                                     covariance_matrix=self.inflate * cov))


def ppca_data(n: int = 50, seed: int = 1):
    model = PPCA()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, K, generator=g)
    return model, z @ model.W.T + model.b + SIGMA * torch.randn(n, D, generator=g)
