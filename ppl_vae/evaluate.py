"""Importance-sampled log-likelihood and test ELBO for any model/guide pair.

For each example, with ``K`` draws ``z_k ~ q(z | x)``::

    log p(x) ≈ log (1/K) Σ_k exp(log w_k),   log w_k = log p(x, z_k) - log q(z_k | x)
    ELBO(x)  ≈ (1/K) Σ_k log w_k

The first is the IWAE bound: it never exceeds ``log p(x)`` in expectation and
converges to it as ``K → ∞``; the second is the ELBO, below it. Both use the
unscaled model (β only shapes training). Work is chunked over examples and
particles so that at most ``budget`` particle-examples are alive at once.
"""

from __future__ import annotations

import contextlib
import math

import pyro.distributions as dist
import torch
from pyro import poutine
from tqdm.auto import tqdm

from ppl_vae.errors import PplVaeError
from ppl_vae.traces import log_weights, prepare, sample_sites


def _has_point_mass(guide, x: torch.Tensor) -> bool:
    """Whether the guide samples any site from a ``Delta`` (no density to weight by)."""
    with poutine.block():
        trace = poutine.trace(guide).get_trace(x[:1])
    fns = [site["fn"] for site in sample_sites(trace)]
    return any(isinstance(getattr(fn, "base_dist", fn), dist.Delta) for fn in fns)


@contextlib.contextmanager
def eval_mode(*programs):
    """Put the ``nn.Module`` programs in eval mode for a while, then restore their modes."""
    modules = [(p, p.training) for p in programs if isinstance(p, torch.nn.Module)]
    for module, _ in modules:
        module.eval()
    try:
        yield
    finally:
        for module, training in modules:
            module.train(training)


@torch.no_grad()
def evaluate(model, guide, x: torch.Tensor, iw_samples: int = 1000, budget: int = 8192,
             quiet: bool = True) -> dict:
    """Test ELBO, IS log-likelihood, reconstruction and KL terms in nats per example.

    Args:
        model, guide: a pair keeping the contract.
        x: examples ``(n, *event_shape)`` on the pair's device.
        iw_samples: K, importance samples per example.
        budget: most particle-examples evaluated at once (bounds memory).
        quiet: hide the progress bar.

    Returns:
        dict with ``elbo``, ``log_likelihood`` (None for point-mass guides),
        ``log_likelihood_se`` (standard error over examples), ``reconstruction``
        (``-E_q log p(x|z)``), ``kl`` (``E_q[log q - log p(z)]``), ``iw_samples``
        and ``n_examples``.
    """
    if iw_samples < 1:
        raise PplVaeError(f"--iw-samples must be at least 1, got {iw_samples}")
    if x.shape[0] == 0:
        raise PplVaeError("no examples to evaluate; the test set is empty")
    with eval_mode(model, guide):
        nesting, plan = prepare(model, guide, x[:1])
        per_example = _per_example_terms(model, guide, x, iw_samples, budget, nesting, plan,
                                         quiet)
    ll = None if _has_point_mass(guide, x) else per_example["log_likelihood"]
    n = x.shape[0]
    return {
        "elbo": per_example["elbo"].mean().item(),
        "log_likelihood": None if ll is None else ll.mean().item(),
        "log_likelihood_se": None if ll is None or n < 2 else (ll.std() / math.sqrt(n)).item(),
        "reconstruction": per_example["reconstruction"].mean().item(),
        "kl": per_example["kl"].mean().item(),
        "iw_samples": iw_samples,
        "n_examples": n,
    }


def _per_example_terms(model, guide, x, iw_samples, budget, nesting, plan, quiet) -> dict:
    """Per-example ELBO, log-likelihood, reconstruction and KL, chunked."""
    particles = min(iw_samples, budget)
    examples = max(1, budget // particles)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in
                                          ("elbo", "log_likelihood", "reconstruction", "kl")}
    for start in tqdm(range(0, x.shape[0], examples), desc="evaluate", disable=quiet or None,
                      leave=False):
        chunk = x[start:start + examples]
        sums = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
        log_sum_w = []
        for first in range(0, iw_samples, particles):
            k = min(particles, iw_samples - first)
            w = log_weights(model, guide, chunk, k, nesting, plan)
            sums["elbo"] = sums["elbo"] + w.total.sum(0)
            sums["reconstruction"] = sums["reconstruction"] - w.log_likelihood.sum(0)
            sums["kl"] = sums["kl"] + (w.log_guide - w.log_prior).sum(0)
            log_sum_w.append(torch.logsumexp(w.total, 0))
        for key, value in sums.items():
            out[key].append(value / iw_samples)
        out["log_likelihood"].append(
            torch.logsumexp(torch.stack(log_sum_w), 0) - math.log(iw_samples))
    return {k: torch.cat(v) for k, v in out.items()}
