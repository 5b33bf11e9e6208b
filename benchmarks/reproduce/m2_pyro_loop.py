"""Row 1's check: the same M2 networks in plain Pyro, stepped the way Pyro's ss-vae example
steps them, beside ``ppl_vae.fit``.

Pyro's example does not mix labelled and unlabelled examples in one batch: each epoch
it takes ``ceil(labels / batch)`` labelled-only batches, spaced evenly among the
unlabelled ones, and on each it steps two SVIs (``TraceEnum_ELBO`` on the pair, then
``Trace_ELBO`` on the classification pair ``model_classify``/``guide_classify``, scaled
by 46), each with its own Adam step. ``fit`` splits every batch into its known and
unknown part and takes one step on the sum. With 100 of 50,000 labels a ``fit`` batch
of 200 holds 0.4 labelled examples on average, so the classifier's supervised signal
arrives as many tiny pieces under Adam's normalisation instead of one strong step.

This script runs :class:`examples.pyro_tutorials.ss_vae_m2.SSVAE` both ways on the same
data, labels and seed, and writes the test accuracy after each epoch::

    python benchmarks/reproduce/m2_pyro_loop.py --labels 100 --epochs 20 --draw 0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from torch.nn import functional as F

import ppl_vae
from examples.pyro_tutorials.ss_vae_m2 import SSVAE, m2_loss

RESULTS = Path("benchmarks/results/reproduce/m2_pyro_loop")


def load(labels: int, draw: int, data_path: str):
    """Pyro's split: the first 50,000 training images (grey levels), the official test set,
    ``labels`` known labels drawn stratified with seed ``draw``."""
    full = ppl_vae.data.load("mnist", path=data_path, n="all")
    return ppl_vae.data.from_tensors(full.train[:50_000], full.test,
                                     labels=full.train_labels[:50_000],
                                     test_labels=full.test_labels, labelled=labels, seed=draw)


def accuracy(m2: SSVAE, data) -> float:
    m2.eval()
    with torch.no_grad():
        value = (m2.classifier(data.test) == data.test_labels).float().mean().item()
    m2.train()
    return value


def pyro_loop(data, epochs: int, seed: int, batch: int = 200) -> list[float]:
    """Pyro's schedule: labelled-only batches spaced among unlabelled ones, two SVI steps."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    m2 = SSVAE()
    optimizer = pyro.optim.Adam({"lr": 4.2e-4, "betas": (0.9, 0.999)})
    svi = SVI(m2.model, m2.guide, optimizer, TraceEnum_ELBO(max_plate_nesting=1))
    classify = SVI(m2.model_classify, m2.guide_classify, optimizer, Trace_ELBO())
    known = data.known["y"]
    sup_x, sup_y = data.train[known], F.one_hot(data.train_labels[known], 10).float()
    unsup_x = data.train[~known]
    generator = torch.Generator().manual_seed(seed)
    sup_batches, unsup_batches = math.ceil(len(sup_x) / batch), math.ceil(len(unsup_x) / batch)
    every = (sup_batches + unsup_batches) // sup_batches
    curve = []
    for _ in range(epochs):
        sup = iter(torch.randperm(len(sup_x), generator=generator).split(batch))
        unsup = iter(torch.randperm(len(unsup_x), generator=generator).split(batch))
        done = 0
        for i in range(sup_batches + unsup_batches):
            if i % every == 1 and done < sup_batches:
                index, done = next(sup), done + 1
                svi.step(sup_x[index], sup_y[index])
                classify.step(sup_x[index], sup_y[index])
            else:
                index = next(unsup, None)
                if index is None:
                    index, done = next(sup), done + 1
                    svi.step(sup_x[index], sup_y[index])
                    classify.step(sup_x[index], sup_y[index])
                    continue
                svi.step(unsup_x[index])
        curve.append(accuracy(m2, data))
    return curve


def fit_loop(data, epochs: int, seed: int) -> list[float]:
    """The same class through ``ppl_vae.fit`` (mixed batches), accuracy after each epoch."""
    curve = []
    pyro.set_rng_seed(seed)
    m2 = SSVAE()
    loss = m2_loss(m2)
    for epoch in range(1, epochs + 1):
        ppl_vae.fit(m2.model, m2.guide, data, elbo=loss, inputs={"ys": "y:onehot"},
                    epochs=epoch, batch_size=200, lr=4.2e-4, seed=seed, quiet=True,
                    out=Path("runs/reproduce/m2_fit_loop"), resume=epoch > 1, overwrite=epoch == 1,
                    report=False)
        curve.append(accuracy(m2, data))
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--draw", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--loops", nargs="+", default=["pyro", "fit"], choices=["pyro", "fit"])
    parser.add_argument("--data-path", default="../shared/data/mnist")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = load(args.labels, args.draw, args.data_path)
    for loop in args.loops:
        start = time.perf_counter()
        curve = (pyro_loop if loop == "pyro" else fit_loop)(data, args.epochs, args.draw)
        record = {"loop": loop, "labels": args.labels, "draw": args.draw,
                  "epochs": args.epochs, "accuracy_per_epoch": curve,
                  "seconds": round(time.perf_counter() - start, 1),
                  "command": "python " + " ".join(sys.argv)}
        path = RESULTS / f"{loop}_labels{args.labels}_draw{args.draw}.json"
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{loop}: accuracy by epoch {[round(a, 3) for a in curve]}", file=sys.stderr,
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
