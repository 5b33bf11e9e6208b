"""The floor under any engine: what running the Pyro programs alone costs over plain PyTorch.

``hand`` is the hand-written trace-ELBO step of ``bench_step.py``. ``floor``
computes the very same loss with the same arithmetic, but draws ``z`` by
running the built-in guide and model themselves (their ``pyro.plate``,
``poutine.scale`` and ``pyro.sample`` statements) under the lightest handler
that can hand ``z`` to the model, with no tracing and no per-site bookkeeping.
No engine that runs the pair as Pyro programs can be faster than ``floor``;
``ours`` is the engine's step. MLP 784-400-20, batch 128, fused Adam, loops
interleaved in one process.

    python benchmarks/bench_floor.py [--steps 100] [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import torch
from bench_step import hand_loss
from pyro.poutine.messenger import Messenger
from torch.nn.functional import binary_cross_entropy_with_logits

import ppl_vae
from ppl_vae.estimators import make_elbo
from ppl_vae.training import speedups


class Draws(Messenger):
    """Keeps each sample site's distribution and value; feeds ``z`` to the model if given."""

    def __init__(self, z: torch.Tensor | None = None):
        super().__init__()
        self.sites, self.z = {}, z

    def _pyro_sample(self, msg):
        if self.z is not None and msg["name"] == "z":
            msg["value"], msg["done"] = self.z, True

    def _pyro_post_sample(self, msg):
        self.sites[msg["name"]] = msg["fn"], msg["value"]


def floor_loss(pair, x: torch.Tensor) -> torch.Tensor:
    """``bench_step.hand_loss`` for ``trace``, with ``z`` drawn by the Pyro programs."""
    with Draws() as guide_run:
        pair.guide.forward(x)
    q, z = guide_run.sites["z"]
    with Draws(z) as model_run:
        pair.model.forward(x)
    logits = model_run.sites["x"][0].param
    log_lik = -binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none").flatten(1).sum(-1)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    eps = (z - loc) / scale
    log_q = (-0.5 * eps**2 - scale.log()).sum(-1)
    log_p = (-0.5 * z**2).sum(-1)
    return -(log_lik + log_p - log_q).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    speedups.keep_freed_memory()
    pyro.enable_validation(False)
    x = (torch.rand(128, 1, 28, 28) < 0.3).float()
    pair = ppl_vae.build("vae", latent_dim=20, event_shape=(1, 28, 28), net="mlp")
    optimizer = speedups.adam(list(pair.model.parameters()) + list(pair.guide.parameters()), 1e-4)
    elbo = make_elbo("trace", 1)

    def step(loss_fn):
        def run():
            with ppl_vae.engine_settings(pair.model, pair.guide):  # what fit() enters
                loss = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return run

    loops = {"hand": step(lambda: hand_loss(pair, x, "trace", 1)),
             "floor": step(lambda: floor_loss(pair, x)),
             "ours": step(lambda: elbo(pair.model, pair.guide, x))}

    def timed(run, steps):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        return 1000 * (time.perf_counter() - start) / steps

    for run in loops.values():
        timed(run, 10)
    results = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            results[name].append(timed(run, args.steps))
    med = {name: statistics.median(times) for name, times in results.items()}
    print("| hand ms | floor ms | ours ms | floor/hand | ours/hand | ours/floor |")
    print("|---|---|---|---|---|---|")
    print(f"| {med['hand']:.2f} | {med['floor']:.2f} | {med['ours']:.2f} | "
          f"{med['floor'] / med['hand']:.3f} | {med['ours'] / med['hand']:.3f} | "
          f"{med['ours'] / med['floor']:.3f} |")


if __name__ == "__main__":
    main()
