"""Row 4: β-VAE against the plain VAE on the full sprite grid (Higgins et al. 2017).

Published: Higgins et al. (dSprites, their Table 1) BetaVAE score 99.23 % for β-VAE
(β = 4) and 61.58 % for the VAE; Locatello et al. 2019 (disentanglement_lib, 300k steps,
50 seeds) report for β-VAE roughly BetaVAE 0.7–0.9, FactorVAE 0.5–0.8, MIG 0.05–0.35.

Setting (disentanglement_lib's): ``shapes`` 64×64 with every one of the 737,280 factor
combinations (90 % train = 663,552 images, 10,368 steps an epoch), its conv encoder and
decoder (4×4 stride-2 convolutions 32-32-64-64, dense 256), 10 latents, Bernoulli
likelihood, batch 64, Adam lr 1e-4, ``meanfield`` (analytic KL, β through
``poutine.scale``). Metrics at disentanglement_lib's sample sizes (``PRESETS["full"]``):
BetaVAE (all 5 factors, and Higgins' 4 without shape), FactorVAE, MIG.

Budgets: ``--budget short`` = 2 epochs (20,736 steps, ~40 min on one CPU thread);
``--budget paper`` = 29 epochs (300,672 steps, Locatello et al.'s 300k), for a GPU::

    python benchmarks/reproduce/beta_vae.py --beta 1 4 --seeds 0 1 --budget paper --device cuda

Each (β, seed) trains in ``runs/reproduce/beta_vae/beta<B>_seed<S>`` (resumed exactly
after an interruption) and writes ``benchmarks/results/reproduce/beta_vae/<budget>/
beta<B>_seed<S>.json``; a finished run is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import ppl_vae
from ppl_vae.diagnostics.disentanglement import PRESETS, disentanglement_scores
from ppl_vae.latents import mean_representation
from ppl_vae.metrics import compute_beta_vae

EPOCHS = {"short": 2, "paper": 29}
HIGGINS_FACTORS = ["scale", "orientation", "pos_x", "pos_y"]
RESULTS = Path("benchmarks/results/reproduce/beta_vae")


def train_on_grid(model: str, options: dict, size: int, seed: int, folder: Path, args):
    """Row 4's setting (also row 5's): ``(data, pair, run)`` trained or resumed to the budget."""
    data = ppl_vae.data.load("shapes", size=size, n="all", seed=0)
    pair = ppl_vae.build(model, data=data, latent_dim=10, net="conv", likelihood="bernoulli",
                         seed=seed, **options)
    resume = (folder / "checkpoint.pt").exists()
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo="meanfield", epochs=EPOCHS[args.budget],
                      batch_size=64, lr=1e-4, seed=seed, device=args.device, out=folder,
                      resume=resume, overwrite=not resume, checkpoint_every=1000,
                      report=False, quiet=args.quiet, pair=pair)
    return data, pair, run


def train_and_score(beta: float, seed: int, args) -> dict:
    """Train one (β, seed) to the budget, then its test ELBO and disentanglement scores."""
    data, pair, run = train_on_grid("beta_vae", {"beta": beta}, 64, seed,
                                    args.runs / f"beta{beta:g}_seed{seed}", args)
    seconds_train = sum(m["seconds"] for m in run.metrics)  # over every session it took
    start = time.perf_counter()
    test = data.examples("test", args.eval_examples)
    evaluation = run.evaluate(test, iw_samples=args.iw_samples)
    with pair.scope():
        representation = mean_representation(pair.model, pair.guide, run.device)
        metrics = {k: v for k, v in PRESETS["full"].items() if k != "dci"}
        scores = disentanglement_scores(representation, data, metrics, seed)
        higgins = compute_beta_vae(representation, data, **metrics["beta_vae"], seed=seed,
                                   factors=HIGGINS_FACTORS)
    return {
        "row": "beta_vae", "beta": beta, "seed": seed, "budget": args.budget,
        "epochs": EPOCHS[args.budget], "steps": run.metrics[-1]["step"],
        "device": str(run.device), "seconds_train": round(seconds_train, 1),
        "seconds_total": round(seconds_train + time.perf_counter() - start, 1),
        "test_elbo": evaluation["elbo"], "log_likelihood": evaluation["log_likelihood"],
        "eval_examples": len(test), "iw_samples": args.iw_samples,
        "beta_vae_all": scores["beta_vae"]["scores"]["eval_accuracy"],
        "beta_vae_higgins": higgins["eval_accuracy"],
        "factor_vae": scores["factor_vae"]["scores"]["eval_accuracy"],
        "mig": scores["mig"]["scores"]["discrete_mig"],
        "metric_settings": metrics, "metrics_per_epoch": run.metrics,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beta", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", choices=list(EPOCHS), default="short")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-examples", type=int, default=2000)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce/beta_vae"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = RESULTS / args.budget
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for beta in args.beta:
            path = out / f"beta{beta:g}_seed{seed}.json"
            if path.exists():
                continue
            record = train_and_score(beta, seed, args)
            record["command"] = "python " + " ".join(sys.argv)
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(f"β = {beta:g}, seed {seed}: BetaVAE {record['beta_vae_all']:.3f}, "
                  f"FactorVAE {record['factor_vae']:.3f}, MIG {record['mig']:.3f}",
                  file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
