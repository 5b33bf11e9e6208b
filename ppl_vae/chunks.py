"""Examples × particles in chunks under a memory budget, and the IS estimate they add up to.

Evaluation (:mod:`ppl_vae.evaluate`) and the diagnostics' guide draws
(:mod:`ppl_vae.diagnostics.draws`) both need ``K`` draws for each of ``N``
examples without holding ``N·K`` particle-examples at once. :func:`chunks`
walks them as blocks of ``E = max(1, budget // P)`` examples by
``P = min(K, budget)`` particles (the last of each shorter), so at most
``budget`` particle-examples are alive at a time.

The importance-sampled log-likelihood of one example, from its ``K`` log
weights ``log w_k = log p(x, z_k) - log q(z_k | x)`` — or from the log-sums
``log Σ_{k ∈ c} w_k`` of its particle chunks ``c``, which add up the same::

    log p̂(x) = log (1/K) Σ_k w_k = logsumexp(log w) - log K
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm


def chunks(n_examples: int, draws: int, budget: int, desc: str = "",
           quiet: bool = True) -> Iterator[tuple[slice, list[int]]]:
    """``(rows, particle counts)`` per block of examples; the counts add up to ``draws``."""
    particles = min(draws, budget)
    examples = max(1, budget // particles)
    counts = [min(particles, draws - first) for first in range(0, draws, particles)]
    for start in tqdm(range(0, n_examples, examples), desc=desc, leave=False,
                      disable=quiet or None):
        yield slice(start, start + examples), counts


def log_mean_exp(log_sums: torch.Tensor, count: int | None = None) -> torch.Tensor:
    """``log (1/K) Σ exp`` over the first axis: ``log p̂(x)`` per example (see the module
    docstring). ``count``: K, when the rows are chunks' log-sums rather than single weights."""
    return torch.logsumexp(log_sums, 0) - math.log(count or log_sums.shape[0])
