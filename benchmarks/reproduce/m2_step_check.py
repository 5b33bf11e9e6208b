"""Step for step: Pyro's own M2 class and SVIs, stepped by hand, against ours through ``fit``.

Pyro's ``SSVAE`` (from the mirror's ``examples/vae/ss_vae_M2.py``, loaded as
``m2_pyro_own.py`` does) and ours (``examples/pyro_tutorials/ss_vae_m2.py``) start from
the same weights (same seed). ``fit`` trains ours for one epoch with
``labelled_batches="spaced"`` and the classification pair as ``auxiliary``; Pyro's is
stepped as its script steps it — ``SVI(model, config_enumerate(guide, "parallel",
expand=True), Adam, TraceEnum_ELBO)`` and ``SVI(model_classify, guide_classify, Adam,
Trace_ELBO)`` sharing one ``pyro.optim.Adam`` — on the same batches in the same order
(the schedule's), from the torch random state ``fit`` had at its first loss (so both draw
the same ``z``). Only the batch order and that random state are taken from ``fit``; the
rest is Pyro's code. Writes the largest weight difference after the epoch beside how far
the weights moved, ``benchmarks/results/reproduce/m2_equivalence/step_check.json``::

    python benchmarks/reproduce/m2_step_check.py --train 4000 --labels 240
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "reproduce")]

import m2_pyro_own  # noqa: E402

import ppl_vae  # noqa: E402
from examples.pyro_tutorials.ss_vae_m2 import SSVAE  # noqa: E402
from ppl_vae.training.labelled import SpacedBatches  # noqa: E402

RESULT = Path("benchmarks/results/reproduce/m2_equivalence/step_check.json")


def pyro_class(scratch: Path):
    """Pyro's ``SSVAE`` class, from the mirror's script."""
    script, commit = m2_pyro_own.extract(scratch)
    m2_pyro_own.stand_ins(Path("../shared/data/mnist"))
    sys.path.insert(0, str(scratch))
    return runpy.run_path(str(script), run_name="ss_vae_M2")["SSVAE"], commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--labels", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--data-path", default="../shared/data/mnist")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    example = runpy.run_path(str(ROOT / "examples" / "semi_supervised_m2.py"),
                             run_name="semi_supervised_m2")
    full = ppl_vae.data.load("mnist", path=args.data_path, n="all", binarize="none")
    labels = full.train_labels[:args.train]
    data = ppl_vae.data.from_tensors(full.train[:args.train], full.test[:500], labels=labels,
                                     test_labels=full.test_labels[:500])
    data.known = {"y": example["pyro_label_draw"](labels, args.labels, args.seed)}
    Theirs, commit = pyro_class(ROOT / "runs" / "reproduce" / "m2_step_check")

    pyro.set_rng_seed(args.seed)
    theirs = Theirs(z_dim=50, hidden_layers=[500], config_enum="parallel",
                    aux_loss_multiplier=46.0)
    pyro.set_rng_seed(args.seed)
    ours = SSVAE(aux_loss_multiplier=46.0)
    start = [p.detach().clone() for p in ours.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(start, theirs.parameters()))

    elbo, states = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False), []

    def loss(model, guide, x, **inputs):  # the ELBO, noting the random state of each call
        states.append(torch.get_rng_state())
        return elbo.differentiable_loss(model, guide, x, **inputs)

    clock = time.perf_counter()
    ppl_vae.fit(ours.model, ours.guide, data, elbo=loss, inputs={"ys": "y:onehot"},
                labelled_batches="spaced", auxiliary=(ours.model_classify, ours.guide_classify),
                epochs=1, batch_size=args.batch_size, lr=4.2e-4, betas=(0.9, 0.999),
                seed=args.seed, quiet=True, report=False, eval_every=0)
    fit_seconds = time.perf_counter() - clock

    plan = SpacedBatches.of(data.known, args.batch_size)
    order = plan.order(torch.Generator().manual_seed(args.seed))  # fit's first epoch
    pyro.clear_param_store()
    optimizer = pyro.optim.Adam({"lr": 4.2e-4, "betas": (0.9, 0.999)})
    svi = SVI(theirs.model, config_enumerate(theirs.guide, "parallel", expand=True), optimizer,
              TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False))
    classify = SVI(theirs.model_classify, theirs.guide_classify, optimizer, Trace_ELBO())
    torch.set_rng_state(states[len(states) - len(plan.steps())])  # the first training step's
    clock = time.perf_counter()
    for begin, end, labelled in plan.steps():
        rows = order[begin:end]
        xs = data.train[rows].reshape(len(rows), -1)
        if labelled:
            ys = F.one_hot(data.train_labels[rows], 10).float()
            svi.step(xs, ys)
            classify.step(xs, ys)
        else:
            svi.step(xs)
    pyro_seconds = time.perf_counter() - clock

    names = [name for name, _ in ours.named_parameters()]
    rows = []
    for name, mine, other, first in zip(names, ours.parameters(), theirs.parameters(), start):
        difference = (mine - other).abs()
        rows.append({"parameter": name, "max_abs_difference": difference.max().item(),
                     "max_abs_moved": (other - first).abs().max().item(),
                     "share_within_1e-6": (difference <= 1e-6).float().mean().item(),
                     "share_within_1e-5": (difference <= 1e-5).float().mean().item()})
    worst = max(r["max_abs_difference"] / r["max_abs_moved"] for r in rows)
    record = {"steps": len(plan.steps()), "labelled_steps": sum(s[2] for s in plan.steps()),
              "train": args.train, "labels": args.labels, "seed": args.seed,
              "batch_size": args.batch_size, "same_initial_weights": True,
              "largest_difference_over_movement": worst, "parameters": rows,
              "fit_seconds": round(fit_seconds, 1), "pyro_seconds": round(pyro_seconds, 1),
              "pyro_commit": commit, "command": "python " + " ".join(sys.argv)}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{record['steps']} steps ({record['labelled_steps']} labelled): largest weight "
          f"difference / largest movement = {worst:.2e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
