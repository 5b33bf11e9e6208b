"""Importance-sampled log-likelihood: ``ppl_vae.evaluate`` against hand-written PyTorch.

Both compute ``log p(x) ≈ logsumexp_k log w_k - log K`` for the MLP VAE
(784-400-20) with K importance samples, in chunks of at most ``--budget``
particle-examples, in the same process, alternating runs.

    python benchmarks/bench_evaluate.py [--examples 1000] [--iw-samples 1000] [--budget 8192]
                                        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import math
import time

import pyro
import torch
from bench_step import parse_device
from torch.nn.functional import binary_cross_entropy_with_logits, softplus

import ppl_vae
from ppl_vae.guides.diagonal import MIN_SCALE
from ppl_vae.training import speedups


@torch.no_grad()
def hand_log_likelihood(pair, x, iw_samples: int, budget: int) -> float:
    """Per-example logsumexp of log w over K draws, chunked like the engine."""
    examples = max(1, budget // iw_samples)
    total = 0.0
    for chunk in x.split(examples):
        loc, raw = pair.guide.encoder(chunk).chunk(2, -1)
        scale = softplus(raw) + MIN_SCALE
        eps = torch.randn(iw_samples, *loc.shape, device=loc.device)
        z = loc + scale * eps
        logits = pair.model.decoder(z)
        log_lik = -binary_cross_entropy_with_logits(
            logits, chunk.expand_as(logits), reduction="none").flatten(2).sum(-1)
        log_w = log_lik + (-0.5 * z**2).sum(-1) - (-0.5 * eps**2 - scale.log()).sum(-1)
        total += (torch.logsumexp(log_w, 0) - math.log(iw_samples)).sum().item()
    return total / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speedups.keep_freed_memory()  # as the CLI does; speeds up both columns
    pyro.enable_validation(False)
    device = parse_device(parser, args.device)
    pair = ppl_vae.build("vae", latent_dim=20, event_shape=(1, 28, 28), net="mlp")
    for module in pair.modules():
        module.to(device)
    x = (torch.rand(args.examples, 1, 28, 28) < 0.3).float().to(device)
    times = {"ours": [], "hand": []}
    values = {}
    for _ in range(args.repeats):
        start = time.perf_counter()
        values["ours"] = ppl_vae.evaluate(pair.model, pair.guide, x, iw_samples=args.iw_samples,
                                          budget=args.budget)["log_likelihood"]
        times["ours"].append(time.perf_counter() - start)
        start = time.perf_counter()
        values["hand"] = hand_log_likelihood(pair, x, args.iw_samples, args.budget)
        times["hand"].append(time.perf_counter() - start)
    ours, hand = min(times["ours"]), min(times["hand"])
    print("| examples | K | budget | ours s | hand s | ours/hand | log p(x) ours | hand |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.examples} | {args.iw_samples} | {args.budget} | {ours:.2f} | {hand:.2f} | "
          f"{ours / hand:.3f} | {values['ours']:.2f} | {values['hand']:.2f} |")


if __name__ == "__main__":
    main()
