"""Cost of one guide step's distribution work: rsample + log_prob + KL to N(0, I).

Compares, at batch 128 in float32 on the CPU (2 threads by default):

- ``diagonal``: ``Normal(loc, scale).to_event(1)`` (the mean-field baseline);
- ``chain``: :class:`ppl_vae.distributions.ChainPrecisionNormal`, O(k);
- ``grid b=4`` and ``grid b=√k``: :class:`ppl_vae.distributions.GridPrecisionNormal`
  on a ``k/4 × 4`` and a ``√k × √k`` grid, O(k·b²);
- ``dense``: ``MultivariateNormal(loc, scale_tril)`` with a dense factor and
  torch's own KL to ``MultivariateNormal(0, I)`` (O(k³) per example).

Each distribution is built from raw parameters (as a guide does), then
``z = rsample()``, ``log_prob(z)`` and ``kl_divergence(q, prior)``; "fwd+bwd" adds
the backward pass of ``(log_prob + KL).sum()``. A second table times ``rsample``
alone for the chain's back-substitution: the associative scan (what the library
uses), a Python loop over k, and a dense ``solve_triangular``.

Timings are the fastest of interleaved rounds (see :func:`_measure`); the dense
MultivariateNormal above k = 256 takes seconds per call and is timed once.

Run: ``PYTHONPATH=. python benchmarks/bench_distributions.py [--ks 16 64 256 1024]``.
"""

from __future__ import annotations

import argparse
import math
import time

import pyro.distributions as dist
import torch
from torch.distributions import MultivariateNormal, kl_divergence
from torch.nn.functional import softplus

from ppl_vae.distributions import ChainPrecisionNormal, GridPrecisionNormal


def _timed(budget_s: float, max_reps: int, fn, *args) -> float:
    """Fastest of repeated ``fn(*args)`` calls within a time budget (at least one call)."""
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def _measure(jobs: dict, rounds: int, budget_s: float, heavy: frozenset = frozenset()) -> dict:
    """``key -> fastest seconds`` over ``rounds`` interleaved passes through ``jobs``.

    ``jobs`` maps a key to ``(fn, args)``. Each job is warmed up once, then every
    round times every job in turn, and the minimum is kept: on a shared machine
    other processes only ever add time, and interleaving spreads their bursts
    over all jobs instead of ruining one of them. Keys in ``heavy`` (seconds per
    call) are timed in the first round only.
    """
    for fn, args in jobs.values():
        fn(*args)
    best = {key: math.inf for key in jobs}
    for round_ in range(rounds):
        for key, (fn, args) in jobs.items():
            if round_ == 0 or key not in heavy:
                best[key] = min(best[key], _timed(budget_s, 20, fn, *args))
    return best


def _leaf(*shape, scale=1.0):
    return (scale * torch.randn(*shape)).requires_grad_()


def _families(batch: int, k: int, max_dense_k: int):
    """``name -> (make_params, build_q, prior)``; ``build_q`` turns raw params into ``q``."""
    side = math.isqrt(k)
    normal_prior = dist.Normal(torch.zeros(k), 1.0).to_event(1)
    fams = {
        "diagonal": (
            lambda: [_leaf(batch, k), _leaf(batch, k)],
            lambda loc, raw: dist.Normal(loc, softplus(raw) + 1e-3, validate_args=False)
            .to_event(1),
            normal_prior,
        ),
        "chain": (
            lambda: [_leaf(batch, k), _leaf(batch, k), _leaf(batch, k - 1, scale=0.3)],
            lambda *p: ChainPrecisionNormal.from_raw(*p, validate_args=False),
            normal_prior,
        ),
    }
    for label, rows, cols in (("grid b=4", k // 4, 4), ("grid b=√k", k // side, side)):
        fams[label] = (
            lambda rows=rows, cols=cols: [
                _leaf(batch, rows * cols), _leaf(batch, rows, cols, cols, scale=0.3),
                _leaf(batch, rows - 1, cols, cols, scale=0.3 / cols),
            ],
            lambda *p: GridPrecisionNormal.from_raw(*p, validate_args=False),
            normal_prior,
        )
    if k <= max_dense_k:
        def build_dense(loc, raw):
            tril = raw.tril(-1) + torch.diag_embed(softplus(raw.diagonal(dim1=-2, dim2=-1)) + 1e-3)
            return MultivariateNormal(loc, scale_tril=tril, validate_args=False)

        fams["dense"] = (
            lambda: [_leaf(batch, k), _leaf(batch, k, k, scale=0.3 / math.sqrt(k))],
            build_dense,
            MultivariateNormal(torch.zeros(k), torch.eye(k), validate_args=False),
        )
    return fams


def _step(build, prior, params, backward: bool):
    q = build(*params)
    z = q.rsample()
    loss = (q.log_prob(z) + kl_divergence(q, prior)).sum()
    if backward:
        loss.backward()
        for p in params:
            p.grad = None


def _no_grad_step(build, prior, params):
    with torch.no_grad():
        _step(build, prior, params, False)


def _bidiagonal_loop(diag, offdiag, eps):
    """Sequential back-substitution ``ν_i = (ε_i - c_i ν_{i+1}) / d_i`` (reference)."""
    k = eps.shape[-1]
    out = [eps[..., k - 1] / diag[..., k - 1]]
    for i in range(k - 2, -1, -1):
        out.append((eps[..., i] - offdiag[..., i] * out[-1]) / diag[..., i])
    return torch.stack(out[::-1], -1)


def _bidiagonal_dense(diag, offdiag, eps):
    """Back-substitution with a dense ``(batch, k, k)`` factor: O(k²) memory."""
    factor = torch.diag_embed(diag) + torch.diag_embed(offdiag, offset=-1)
    return torch.linalg.solve_triangular(factor.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256, 1024])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved passes; min kept")
    parser.add_argument("--budget", type=float, default=0.1, help="seconds per job per round")
    parser.add_argument("--max-dense-k", type=int, default=1024)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    jobs = {}
    for k in args.ks:
        for name, (make, build, prior) in _families(args.batch, k, args.max_dense_k).items():
            params = make()
            jobs[name, k, False] = (_no_grad_step, (build, prior, params))
            jobs[name, k, True] = (_step, (build, prior, params, True))
    heavy = frozenset(key for key in jobs if key[0] == "dense" and key[1] > 256)
    best = _measure(jobs, args.rounds, args.budget, heavy)
    results = {(name, k): (best[name, k, False], best[name, k, True]) for name, k, _ in best}

    names = list(dict.fromkeys(name for name, _ in results))
    print(f"rsample + log_prob + KL, batch {args.batch}, float32, CPU, "
          f"{args.threads} threads: ms per batch, forward / forward+backward")
    print(f"{'k':>6} " + " ".join(f"{n:>19}" for n in names) + f" {'dense/chain':>13}")
    for k in args.ks:
        cells = []
        for name in names:
            fwd, both = results.get((name, k), (math.nan, math.nan))
            cells.append(f"{1e3 * fwd:8.2f} / {1e3 * both:8.2f}")
        ratio = ""
        if ("dense", k) in results:
            d, c = results["dense", k], results["chain", k]
            ratio = f"{d[0] / c[0]:5.1f} / {d[1] / c[1]:5.1f}"
        print(f"{k:>6} " + " ".join(f"{c:>19}" for c in cells) + f" {ratio:>13}")
    print("\nratios to diagonal (forward+backward):")
    print(f"{'k':>6} " + " ".join(f"{n:>12}" for n in names))
    for k in args.ks:
        base = results["diagonal", k][1]
        cells = [f"{results[n, k][1] / base:12.2f}" if (n, k) in results else f"{'-':>12}"
                 for n in names]
        print(f"{k:>6} " + " ".join(cells))
    print("\nchain scaling (forward+backward, time(k) / time(previous k)):")
    for prev, k in zip(args.ks, args.ks[1:]):
        growth = results["chain", k][1] / results["chain", prev][1]
        print(f"  {prev:>5} -> {k:<5} k x{k / prev:<4.0f} time x{growth:.2f}")

    print(f"\nchain rsample only (batch {args.batch}): ms, scan vs Python loop vs dense solve")
    print(f"{'k':>6} {'scan':>9} {'loop':>9} {'dense':>9}")
    jobs = {}
    for k in args.ks:
        diag, offdiag = 1 + torch.rand(args.batch, k), torch.randn(args.batch, k - 1)
        q = ChainPrecisionNormal(torch.randn(args.batch, k), diag, offdiag, validate_args=False)
        eps = torch.randn(args.batch, k)
        jobs["scan", k] = (q.transform_noise, (eps,))
        jobs["loop", k] = (_bidiagonal_loop, (diag, offdiag, eps))
        jobs["dense", k] = (_bidiagonal_dense, (diag, offdiag, eps))
    with torch.no_grad():
        best = _measure(jobs, args.rounds, args.budget)
    for k in args.ks:
        print(f"{k:>6} " + " ".join(f"{1e3 * best[m, k]:9.3f}" for m in ("scan", "loop", "dense")))


if __name__ == "__main__":
    main()
