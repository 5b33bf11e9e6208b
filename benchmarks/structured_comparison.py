"""Diagonal vs chain vs grid Gaussian guides: same VAE, same steps, several seeds.

For each dataset, guide and seed: train a VAE (latent_dim 16, conv nets, Adam,
meanfield ELBO) for the same number of steps, then report the test ELBO and the
importance-sampled log-likelihood (K draws) in nats per example. Prints a
markdown table (mean ± sd over seeds) and writes it with the raw numbers to
``benchmarks/results/structured/``.

    python benchmarks/structured_comparison.py [--epochs 4] [--seeds 0 1 2] [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import ppl_vae

GUIDES = ("diagonal", "chain", "grid")
DATASETS = {"shapes": {"name": "shapes", "size": 32}, "mnist5k": {"name": "mnist5k",
                                                                  "binarize": "static"}}
OUT = Path(__file__).parent / "results" / "structured"


def one_run(dataset: str, guide: str, seed: int, args) -> dict:
    options = {"n": args.n} if dataset == "shapes" else {}
    data = ppl_vae.data.load(**DATASETS[dataset], seed=seed, **options)
    pair = ppl_vae.build("vae", guide, latent_dim=args.latent_dim, data=data, seed=seed)
    start = time.perf_counter()
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo="meanfield", epochs=args.epochs,
                      batch_size=64, lr=1e-3, seed=seed, device="cpu", quiet=True, pair=pair)
    seconds = time.perf_counter() - start
    result = run.evaluate(data.test[: args.eval_examples], iw_samples=args.iw_samples)
    return {"dataset": dataset, "guide": guide, "seed": seed, "seconds": seconds,
            "steps": args.epochs * (data.train.shape[0] // 64), **result}


def table(rows: list[dict], args) -> str:
    lines = [f"VAE, latent_dim {args.latent_dim}, {args.epochs} epochs of batch 64 (shapes 32×32 "
             f"n={args.n}; mnist5k static-binarized), meanfield, Adam 1e-3; test: first "
             f"{args.eval_examples} examples, K={args.iw_samples}; seeds {args.seeds}; "
             "nats per example, mean ± sd.", "",
             "| dataset | guide | steps | test ELBO ↑ | IS log p(x) ↑ | train s |",
             "|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for guide in GUIDES:
            got = [r for r in rows if r["dataset"] == dataset and r["guide"] == guide]
            if not got:
                continue

            def stat(key):
                values = [r[key] for r in got]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.mean(values):.2f} ± {sd:.2f}"

            lines.append(f"| {dataset} | {guide} | {got[0]['steps']} | {stat('elbo')} | "
                         f"{stat('log_likelihood')} | {statistics.mean(r['seconds'] for r in got):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--eval-examples", type=int, default=500)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    for dataset in args.datasets:
        for seed in args.seeds:
            for guide in GUIDES:
                rows.append(one_run(dataset, guide, seed, args))
                print(json.dumps({k: rows[-1][k] for k in ("dataset", "guide", "seed", "elbo",
                                                          "log_likelihood")}), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, args)
    (OUT / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
