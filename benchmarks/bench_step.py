"""One training step: ppl-vae's engine against a hand-written PyTorch step.

Same networks (our DiagonalGuide encoder and VAE decoder, MLP 784-400-20), same
estimator, batch 128, 2 threads, measured in one process with the loops
interleaved (ABAB...) so machine load hits all alike. ``ours`` is the trainer's
step: our estimator and the trainer's optimizer (:func:`ppl_vae.training.speedups.adam`,
fused Adam). ``hand`` is the same objective written in PyTorch with that same
optimizer, so ours/hand is the engine's overhead alone; ``hand_default_adam``
is the hand step with ``torch.optim.Adam``'s defaults, what a hand-written
script usually has. Also shown: Pyro's own ``SVI`` with ``pyro.optim.Adam``.
The STL/DReG rows (``trace-stl``, ``iwae-stl``, ``iwae-dreg``) have no hand or
Pyro counterpart: there ``hand`` and ``pyro_svi`` are the *plain* bound's steps,
and ``ours/plain`` is our estimator against our plain one (``trace``/``iwae``)
at the same K, interleaved with it: the cost of the lower-variance gradient.
The process gets the trainer's allocator setting
(:func:`ppl_vae.training.speedups.keep_freed_memory`), which speeds up every column.

    python benchmarks/bench_step.py [--steps 100] [--repeats 5] [--net mlp|conv]
                                    [--threads 2] [--device cpu|cuda] [--cpu-time]
                                    [--rows trace:1 iwae:5 iwae-dreg:20 ...]

``--net conv`` uses the 64x64 convolutional pair with batch 64.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import pyro
import torch
from torch.nn.functional import binary_cross_entropy_with_logits, softplus

import ppl_vae
from ppl_vae.devices import resolve_device
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Batch, make_elbo
from ppl_vae.guides.diagonal import MIN_SCALE
from ppl_vae.training import speedups

LOG_2PI = math.log(2 * math.pi)
# the plain bound of each gradient estimator: same value, the textbook gradient
PLAIN = {"trace-stl": "trace", "iwae-stl": "iwae", "iwae-dreg": "iwae"}
ROWS = ("trace:1", "meanfield:1", "iwae:5", "trace-stl:1", "iwae-stl:5", "iwae-dreg:5",
        "iwae:20", "iwae-dreg:20")


def hand_loss(pair, x, estimator: str, particles: int) -> torch.Tensor:
    """The same objective as ours, written directly in PyTorch (nats per example).

    One particle runs without a particle dimension, as a hand-written step would.
    """
    loc, raw = pair.guide.encoder(x).chunk(2, -1)
    scale = softplus(raw) + MIN_SCALE
    eps = torch.randn((particles, *loc.shape) if particles > 1 else loc.shape, device=loc.device)
    z = loc + scale * eps
    logits = pair.model.decoder(z)
    log_lik = -binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none").flatten(-3).sum(-1).view(particles, -1)
    if estimator == "meanfield":
        kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(-1)
        return -(log_lik.mean(0) - kl).mean()
    log_q = (-0.5 * eps**2 - scale.log() - 0.5 * LOG_2PI).sum(-1)
    log_p = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
    log_w = log_lik + (log_p - log_q).view(particles, -1)
    if estimator == "trace":
        return -log_w.mean(0).mean()
    return -(torch.logsumexp(log_w, 0) - math.log(particles)).mean()


def parse_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    """The ``--device`` asked for; an absent GPU is a one-line usage error."""
    try:
        return resolve_device(name)
    except PplVaeError as error:
        parser.error(str(error))


CLOCK = time.perf_counter


def timed(step, steps: int, device: torch.device) -> float:
    """Milliseconds per step over ``steps`` steps (wall clock, or CPU time with --cpu-time).

    On a GPU the clock starts and stops with the device idle, so queued kernels count.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = CLOCK()
    for _ in range(steps):
        step()
    sync()
    return 1000 * (CLOCK() - start) / steps


def bench(net: str, estimator: str, particles: int, steps: int, repeats: int,
          device: torch.device) -> dict:
    event, batch = ((1, 28, 28), 128) if net == "mlp" else ((1, 64, 64), 64)
    x = (torch.rand(batch, *event) < 0.3).float().to(device)
    pair = ppl_vae.build("vae", latent_dim=20, event_shape=event, net=net)
    for module in pair.modules():
        module.to(device)
    params = list(pair.model.parameters()) + list(pair.guide.parameters())
    trainer_opt = speedups.adam(params, lr=1e-4)
    default_opt = torch.optim.Adam(params, lr=1e-4)
    elbo = make_elbo(estimator, particles)
    plain_name = PLAIN.get(estimator, estimator)
    plain_elbo = make_elbo(plain_name, particles)
    pyro.enable_validation(False)

    def step(loss, optimizer):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def ours():  # the trainer's call, under the settings fit() enters (here once per step)
        with ppl_vae.engine_settings(pair.model, pair.guide):
            step(elbo.loss(pair, Batch(x, dataset_size=60_000)), trainer_opt)

    def plain():
        with ppl_vae.engine_settings(pair.model, pair.guide):
            step(plain_elbo(pair.model, pair.guide, x), trainer_opt)

    def hand():
        step(hand_loss(pair, x, plain_name, particles), trainer_opt)

    def hand_default_adam():
        step(hand_loss(pair, x, plain_name, particles), default_opt)

    svi = pyro.infer.SVI(pair.model, pair.guide, pyro.optim.Adam({"lr": 1e-4}),
                         {"trace": pyro.infer.Trace_ELBO, "meanfield": pyro.infer.TraceMeanField_ELBO,
                          "iwae": lambda **k: pyro.infer.RenyiELBO(alpha=0, **k)}[plain_name](
                              num_particles=particles, vectorize_particles=True,
                              max_plate_nesting=1))

    def pyro_svi():
        svi.step(x)

    loops = {"ours": ours, "hand": hand, "hand_default_adam": hand_default_adam,
             "pyro_svi": pyro_svi, **({"plain": plain} if estimator in PLAIN else {})}
    for fn in loops.values():
        timed(fn, 5, device)
    results = {name: [] for name in loops}
    for _ in range(repeats):
        for name, fn in loops.items():
            results[name].append(timed(fn, steps, device))
    med = {k: statistics.median(v) for k, v in results.items()}
    return {"net": net, "estimator": f"{estimator}" + (f" K={particles}" if particles > 1 else ""),
            **{f"{k}_ms": round(v, 2) for k, v in med.items()},
            "ours/hand": round(med["ours"] / med["hand"], 3),
            "ours/hand_default_adam": round(med["ours"] / med["hand_default_adam"], 3),
            "pyro_svi/hand": round(med["pyro_svi"] / med["hand"], 3),
            "ours/plain": round(med["ours"] / med["plain"], 3) if "plain" in med else "-"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--net", default="mlp", choices=["mlp", "conv"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by process CPU time (steadier on a busy machine)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS),
                        help="estimator:particles, e.g. iwae:5 iwae-dreg:5")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    torch.set_num_threads(args.threads)
    speedups.keep_freed_memory()
    device = parse_device(parser, args.device)
    rows = [bench(args.net, est, int(k), args.steps, args.repeats, device)
            for est, k in (row.split(":") for row in args.rows)]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "-")) for k in keys) + " |")


if __name__ == "__main__":
    main()
