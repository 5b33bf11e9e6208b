"""Row 3: IWAE against the VAE (Burda et al. 2016), NLL and active units on fixed-binarized MNIST.

Published: Burda et al., Table 1, one stochastic layer (784-200-200-50, tanh, Bernoulli),
batch 20, Adam (β1 0.9, β2 0.999, ε 1e-4) at 1e-3 · 10^(-i/7) for 3^i epochs, i = 0..7
(3,280 epochs): NLL VAE 86.76, IWAE k = 5 85.54, k = 50 84.78; IWAE-tensorflow at 400k
steps of batch 100: k = 1 90.26, k = 5 88.49. Ours: that net as a ``vae`` + ``diagonal``
pair (``--hidden 200,200 --activation tanh --latent-dim 50``) trained by ``ppl_vae.fit``
with ``iwae`` (k = 1 is the VAE's ELBO), ``iwae-dreg`` beside ``iwae`` at k = 5; NLL with
K = 5,000 importance samples on the 10,000 test images; Burda's active units.

Budgets: ``--budget paper`` = Burda's 3,280 epochs of batch 20 (a GPU); ``--budget short``
= Burda's schedule cut at 40 epochs (milestones 1, 4, 13) with batch 100, K = 1,000.
Raw JSON per (estimator, k, seed) in ``benchmarks/results/reproduce/iwae/<budget>/``::

    python benchmarks/reproduce/iwae.py --runs-of iwae:1 iwae:5 iwae-dreg:5 --seeds 0
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_nll import arguments, reproduce

MILESTONES = (1, 4, 13, 40, 121, 364, 1093)  # Σ_{j<i} 3^j: the epochs where 10^(-1/7) applies
BUDGETS = {"paper": {"epochs": 3280, "batch_size": 20, "iw_samples": 5000},
           "short": {"epochs": 40, "batch_size": 100, "iw_samples": 1000}}
RESULTS = Path("benchmarks/results/reproduce/iwae")


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, BUDGETS, "runs/reproduce/iwae")
    parser.add_argument("--runs-of", nargs="+", default=["iwae:1", "iwae:5", "iwae-dreg:5"],
                        help="estimator:k pairs")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    for seed in args.seeds:
        for estimator, k in (pair.split(":") for pair in args.runs_of):
            reproduce(RESULTS / args.budget / f"{estimator}_k{k}_seed{seed}.json", args, seed,
                      {"row": "iwae", "estimator": estimator, "k": int(k)},
                      budget["iw_samples"], {"latent_dim": 50, "hidden": (200, 200),
                                             "activation": "tanh"},
                      elbo=estimator, particles=int(k), epochs=budget["epochs"],
                      batch_size=budget["batch_size"], lr=1e-3, eps=1e-4,
                      lr_schedule="multistep",
                      lr_milestones=tuple(m for m in MILESTONES if m < budget["epochs"]),
                      lr_gamma=10 ** (-1 / 7))
    return 0


if __name__ == "__main__":
    sys.exit(main())
