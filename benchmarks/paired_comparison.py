"""Paired against unpaired standard error of a log-likelihood difference, on real MNIST.

Two VAEs that differ only in the guide (``diagonal`` against ``full`` covariance),
trained alike on mnist5k (statically binarized, 80/20 split) or, with ``--dataset mnist``,
on ``--train-size`` real MNIST images (``--test-size`` test images), are evaluated on the
same test examples with the same K, each with its per-example ``log p̂(x_n)``;
:func:`ppl_vae.compare` gives the difference with its paired SE and, for
contrast, the unpaired SE two separate reports allow. It also records the trust
of each estimate (Pareto k̂, importance-sampling ESS) and how far ``log p̂`` moves
from ``K_small`` to ``K`` draws. One thread; raw numbers in ``--out`` (JSON).

    OMP_NUM_THREADS=1 python benchmarks/paired_comparison.py \\
        [--epochs 20] [--latent-dim 10] [--iw-samples 1000] [--small-k 100] \\
        [--out benchmarks/results/paired_comparison/results.json] \\
        [--dataset mnist --train-size 10000 --test-size 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import pyro
import torch

import ppl_vae
from ppl_vae.errors import PplVaeWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bayes_checks import add_data_options, real_mnist  # noqa: E402  (the same data options)

GUIDES = ("diagonal", "full")


def train(data, guide: str, args) -> tuple[object, float]:
    """A VAE with this guide, trained with the same seed and settings; and its seconds."""
    pair = ppl_vae.build("vae", guide=guide, latent_dim=args.latent_dim, net="mlp", data=data,
                         seed=args.seed)
    start = time.perf_counter()
    run = ppl_vae.fit(pair.model, pair.guide, data, pair=pair, elbo="trace",
                      epochs=args.epochs, batch_size=100, lr=1e-3, seed=args.seed, quiet=True,
                      device="cpu")
    return run, time.perf_counter() - start


def evaluate(run, x, iw_samples: int, seed: int) -> tuple[dict, list[str], float]:
    """``run.evaluate`` with per-example values; the one-line warnings it raised; seconds."""
    pyro.set_rng_seed(seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PplVaeWarning)
        result = run.evaluate(x, iw_samples=iw_samples, per_example=True)
    return result, [str(w.message) for w in caught], time.perf_counter() - start


def load_data(args) -> object:
    """mnist5k (80/20 split), or real MNIST (IDX files at ``--data-path``): ``--train-size``
    images from the official train set, ``--test-size`` from the official test set, drawn
    with the seed; statically binarized."""
    if args.dataset == "mnist5k":
        return ppl_vae.data.load("mnist5k", seed=args.seed, binarize="static",
                                 test_fraction=0.2)
    return real_mnist(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--small-k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    add_data_options(parser)
    parser.add_argument("--out", default="benchmarks/results/paired_comparison/results.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data(args)
    x = data.test
    record = {"settings": {**vars(args), "data": data.describe(), "threads": 1,
                           "torch": torch.__version__, "machine": platform.processor()
                           or platform.machine()},
              "models": {}}
    evaluations = {}
    for guide in GUIDES:
        run, seconds = train(data, guide, args)
        large, large_warnings, large_seconds = evaluate(run, x, args.iw_samples, args.seed)
        small, _, _ = evaluate(run, x, args.small_k, args.seed)
        evaluations[guide] = large
        record["models"][guide] = {
            "train_seconds": round(seconds, 1), "evaluate_seconds": round(large_seconds, 1),
            "evaluation": {k: v for k, v in large.items() if k != "per_example"},
            "warnings": large_warnings,
            f"log_likelihood_k{args.small_k}": small["log_likelihood"],
            f"shift_k{args.small_k}_to_k{args.iw_samples}": large["log_likelihood"]
            - small["log_likelihood"],
        }
        print(f"{guide}: log p̂ {large['log_likelihood']:.2f} ± {large['log_likelihood_se']:.2f}"
              f" (K={args.iw_samples}), trust {large['log_likelihood_trust']}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PplVaeWarning)  # already recorded per model
        record["comparison"] = ppl_vae.compare(*(evaluations[g] for g in GUIDES), names=GUIDES)
    shown = record["comparison"]["log_likelihood"]
    record["se_ratio_unpaired_over_paired"] = shown["se_unpaired"] / shown["se_paired"]
    print(record["comparison"]["summary"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
