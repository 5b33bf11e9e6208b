"""Row 2: pythae's VAE reproduction on fixed-binarized MNIST, NLL by importance sampling.

Published: pythae's VAE (784-400-40 ReLU, Bernoulli decoder, batch 100, Adam 1e-4 with
MultiStepLR at epochs 200 and 350 by 10^(-1/5), 500 epochs) reaches a test NLL of 89.78
nats; its reference, Rezende & Mohamed 2015, 89.9. Ours: the same net as a ``vae`` +
``diagonal`` pair (``--hidden 400 --latent-dim 40``), ``elbo="trace"``, trained by
``ppl_vae.fit`` on the full 60,000 MNIST images binarized once with the run's seed
(``binarize="sampled"``), NLL on the 10,000 test images with K importance samples.

Budgets: ``--budget paper`` = 500 epochs, milestones 200, 350, K = 5,000 on the whole
test set (≈ 70 min of training on one CPU thread, or a GPU: ``--device cuda``);
``--budget short`` = 100 epochs with the milestones at the same fractions of the run
(40, 70), K = 1,000. Raw JSON per seed in
``benchmarks/results/reproduce/pythae_vae/<budget>/``; a finished seed is skipped, an
interrupted one resumes from ``runs/reproduce/pythae_vae/``::

    python benchmarks/reproduce/pythae_vae.py --seeds 0 1 --budget short
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_nll import arguments, reproduce

BUDGETS = {"paper": {"epochs": 500, "lr_milestones": (200, 350), "iw_samples": 5000},
           "short": {"epochs": 100, "lr_milestones": (40, 70), "iw_samples": 1000}}
RESULTS = Path("benchmarks/results/reproduce/pythae_vae")


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, BUDGETS, "runs/reproduce/pythae_vae")
    parser.add_argument("--elbo", choices=["trace", "meanfield"], default="trace",
                        help="meanfield: the KL in closed form, as pythae's loss computes it")
    args = parser.parse_args(argv)
    budget = BUDGETS[args.budget]
    prefix = "" if args.elbo == "trace" else f"{args.elbo}_"
    for seed in args.seeds:
        reproduce(RESULTS / args.budget / f"{prefix}seed{seed}.json", args, seed,
                  {"row": "pythae_vae", "elbo": args.elbo},
                  budget["iw_samples"], {"latent_dim": 40, "hidden": (400,),
                                         "activation": "relu"},
                  elbo=args.elbo, epochs=budget["epochs"], batch_size=100, lr=1e-4,
                  lr_schedule="multistep", lr_milestones=budget["lr_milestones"],
                  lr_gamma=10 ** (-1 / 5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
