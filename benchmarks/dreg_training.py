"""Training with iwae against iwae-dreg on mnist5k: test IS log p(x) at K = 5 and 20, 3 seeds.

Issue 16. Same MLP VAE as ``benchmarks/gradient_snr.py`` (encoder 784-400-2·16,
decoder 16-400-784, Bernoulli logits, latent_dim 16), ``mnist5k`` statically
binarised (data seed 0: 4,500 train / 500 test), batch 100 (45 steps an epoch),
Adam lr 1e-3, one torch thread. The two estimators optimise the same bound (the
value is identical on the same draws); only the encoder's gradient differs. A
seed fixes the initial weights, the batch order and the draws, so the arms of one
seed differ only by the estimator. After training: the importance-sampled
``log p(x)`` with ``--iw-samples`` draws and the test ELBO on the 500 test images::

    nice .venv/bin/python benchmarks/dreg_training.py --epochs 10 \\
        --out benchmarks/results/gradient_snr/

Budget: 10 epochs = 450 steps per run, 12 runs; the whole command took 634 s wall
(2026-12-02, shared 2-core CPU, partly beside another benchmark, so ms/step is noisy).

| K | estimator | IS log p(x) ↑ (K=500) | test ELBO ↑ |
|---|---|---|---|
| 5 | iwae | -111.18 ± 0.73 | -119.41 ± 1.13 |
| 5 | iwae-dreg | -109.99 ± 0.73 | -117.11 ± 0.88 |
| 20 | iwae | -109.40 ± 0.41 | -120.25 ± 1.14 |
| 20 | iwae-dreg | -108.46 ± 0.41 | -117.74 ± 0.74 |

Per seed, iwae-dreg − iwae: +1.18 ± 0.22 nats at K = 5, +0.94 ± 0.02 at K = 20 (all
six pairs positive). This is early training (450 steps); whether the gap persists at
convergence is not measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

ESTIMATORS = ("iwae", "iwae-dreg")
LATENT_DIM, BATCH, LR = 16, 100, 1e-3


def train_one(name: str, particles: int, seed: int, epochs: int, iw_samples: int) -> dict:
    """Train one (estimator, K, seed) and measure it on the test set."""
    import ppl_vae

    data = ppl_vae.data.load("mnist5k", binarize="static", seed=0)
    pair = ppl_vae.build("vae", latent_dim=LATENT_DIM, data=data, net="mlp", seed=seed)
    start = time.perf_counter()
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, elbo=name, particles=particles,
                epochs=epochs, batch_size=BATCH, lr=LR, seed=seed, device="cpu", quiet=True,
                report=False)
    seconds = time.perf_counter() - start
    torch.manual_seed(seed)
    result = ppl_vae.evaluate(pair.model, pair.guide, data.test, iw_samples=iw_samples)
    steps = epochs * (data.train.shape[0] // BATCH)
    return {"estimator": name, "particles": particles, "seed": seed, "epochs": epochs,
            "steps": steps, "log_likelihood": result["log_likelihood"],
            "log_likelihood_se": result["log_likelihood_se"], "test_elbo": result["elbo"],
            "train_seconds": round(seconds, 1), "ms_per_step": round(1000 * seconds / steps, 1)}


def _cell(values: list, digits: int = 2) -> str:
    """``mean ± sd`` over seeds."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def table(records: list[dict]) -> str:
    """One row per (K, estimator), and the per-seed difference iwae-dreg − iwae."""
    lines = ["| K | estimator | IS log p(x) ↑ | test ELBO ↑ | train s | ms/step |",
             "|---|---|---|---|---|---|"]
    for k in sorted({r["particles"] for r in records}):
        for name in ESTIMATORS:
            rows = [r for r in records if r["particles"] == k and r["estimator"] == name]
            lines.append(f"| {k} | {name} (n={len(rows)}) | "
                         f"{_cell([r['log_likelihood'] for r in rows])} | "
                         f"{_cell([r['test_elbo'] for r in rows])} | "
                         f"{_cell([r['train_seconds'] for r in rows], 1)} | "
                         f"{_cell([r['ms_per_step'] for r in rows], 1)} |")
        by_seed = {(r["estimator"], r["seed"]): r["log_likelihood"] for r in records
                   if r["particles"] == k}
        seeds = sorted({s for _, s in by_seed})
        diffs = [by_seed["iwae-dreg", s] - by_seed["iwae", s] for s in seeds
                 if ("iwae-dreg", s) in by_seed and ("iwae", s) in by_seed]
        lines.append(f"| {k} | dreg − iwae, same seed | {_cell(diffs)} | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--particles", nargs="+", type=int, default=[5, 20])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iw-samples", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gradient_snr"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    records = []
    for k in args.particles:
        for seed in args.seeds:
            for name in ESTIMATORS:
                records.append(train_one(name, k, seed, args.epochs, args.iw_samples))
                print(records[-1], flush=True)
    wall = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {**{k: v for k, v in vars(args).items() if k != "out"}, "wall_seconds": wall}
    (args.out / "training.json").write_text(json.dumps({"settings": settings,
                                                        "records": records}, indent=1))
    text = (f"{args.epochs} epochs = {records[0]['steps']} steps per run, batch {BATCH}; "
            f"IS log p(x) with K = {args.iw_samples} on the 500 test images; seeds "
            f"{', '.join(map(str, args.seeds))}; whole comparison {wall:.0f} s wall.\n\n"
            + table(records))
    (args.out / "training.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
