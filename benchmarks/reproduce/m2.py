"""Row 1: Pyro's semi-supervised VAE (M2) on the full MNIST, as in Pyro's ss-vae tutorial.

Published (Pyro's tutorial, mean over 5 label draws, 50 epochs): test accuracy 0.932 /
0.944 / 0.949 / 0.958 at 100 / 600 / 1000 / 3000 labels, the classifier alone 0.771 /
0.872 / 0.886 / 0.911; Kingma et al. 2014: 11.97 % error at 100 labels.

Each run is ``examples/semi_supervised_m2.py --pyro-tutorial`` (a user script trained by
``ppl_vae.fit``): y summed out by ``TraceEnum_ELBO`` plus the auxiliary term (multiplier
46), softplus 500-unit nets, z = 50, batch 200, Adam 4.2e-4, grey-level pixels with
Bernoulli cross-entropy (as Pyro's example), the first 50,000 training images, the
official 10,000 for test. Two arms: ``faithful``, and ``detached`` (q(y|x) inside the
unlabelled term as a constant: the control an audit of the 5,000-image result suggested).

Budgets: ``--budget paper`` = 50 epochs (the tutorial's); ``--budget short`` = 20 epochs
(12 min a run alone on one CPU thread). Raw JSON per (labels, draw, arm) in
``benchmarks/results/reproduce/m2/<budget>/``; a finished run is skipped, an interrupted
one resumes from its run folder::

    python benchmarks/reproduce/m2.py --labels 100 3000 --draws 0 1 --arms faithful detached
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

EPOCHS = {"short": 20, "paper": 50}
RESULTS = Path("benchmarks/results/reproduce/m2")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "semi_supervised_m2.py"


def load_example():
    """The user script, imported from its file (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("semi_supervised_m2", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 3000])
    parser.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", default=["faithful"],
                        choices=["faithful", "detached"])
    parser.add_argument("--budget", choices=list(EPOCHS), default="short")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-path", default="../shared/data/mnist")
    parser.add_argument("--iw-samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce/m2"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    example = load_example()
    out = RESULTS / args.budget
    out.mkdir(parents=True, exist_ok=True)
    for arm in args.arms:
        for draw in args.draws:
            for labels in args.labels:
                name = f"labels{labels}_draw{draw}_{arm}"
                path = out / f"{name}.json"
                if path.exists():
                    continue
                options = ["--pyro-tutorial", "--labelled", str(labels), "--seeds", str(draw),
                           "--data-path", args.data_path, "--device", args.device,
                           "--iw-samples", str(args.iw_samples), "--runs",
                           str(args.runs / args.budget / name)]
                if arm == "detached":
                    options.append("--detach-unlabelled")
                example_args = example.parse(options)
                example_args.epochs = EPOCHS[args.budget]
                record = example.run_seed(draw, example_args)
                record.update(row="m2", arm=arm, labels=labels, budget=args.budget,
                              epochs=example_args.epochs,
                              steps=example_args.epochs * -(-record["n_train"] // 200),
                              command="python " + " ".join(sys.argv))
                path.write_text(json.dumps(record, indent=1) + "\n")
                print(f"{name}: M2 {record['m2_accuracy']:.3f}, classifier alone "
                      f"{record['baseline_accuracy']:.3f}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
