"""What the MNIST likelihood rows (pythae's VAE, IWAE vs VAE) share.

- the data: the full MNIST (60,000 train / 10,000 test) with one fixed Bernoulli draw per
  pixel (``binarize="sampled"``, the draw seeded and recorded in the run's config);
- one run: an MLP ``vae`` + ``diagonal`` pair trained by ``ppl_vae.fit`` with the row's
  estimator, widths, nonlinearity, Adam settings and milestone schedule, resumed from its
  run folder after an interruption;
- its numbers: the test NLL ``-log p(x)`` by importance sampling with K draws (chunked by
  ``ppl_vae.evaluate``), with its standard error, and Burda et al.'s active units
  (``Var_x E_q[z_d | x] > 0.01`` over 500 training images).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import ppl_vae
from ppl_vae.latents import pair_moments

ACTIVE_UNIT_EXAMPLES, ACTIVE_UNIT_THRESHOLD = 500, 0.01


def binarized_mnist(path: str, seed: int):
    """The 60,000 / 10,000 MNIST, each pixel drawn once from Bernoulli(grey level)."""
    return ppl_vae.data.load("mnist", path=path, n="all", binarize="sampled", seed=seed)


def train(data, folder: Path, *, seed: int, device: str, quiet: bool, pair_options: dict,
          **settings) -> ppl_vae.Run:
    """One run of an MLP VAE (resumed if its folder has a checkpoint)."""
    pair = ppl_vae.build("vae", "diagonal", data=data, net="mlp", likelihood="bernoulli",
                         seed=seed, **pair_options)
    resume = (folder / "checkpoint.pt").exists()
    return ppl_vae.fit(pair.model, pair.guide, data, seed=seed, device=device, out=folder,
                       resume=resume, overwrite=not resume, report=False, quiet=quiet,
                       checkpoint_every=2000, pair=pair, **settings)


def active_units(run, data) -> int:
    """Burda et al.'s count: dimensions whose posterior mean varies across examples."""
    x = data.examples("train", ACTIVE_UNIT_EXAMPLES).to(run.device)
    with run.pair.evaluation(), torch.no_grad():
        means = pair_moments(run.pair, x)[1]
    return int((means.var(0) > ACTIVE_UNIT_THRESHOLD).sum())


def numbers(run, data, iw_samples: int, examples: int | None, seed: int) -> dict:
    """Test NLL by importance sampling, test ELBO, active units, and the evaluation's seconds."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    test = data.examples("test", examples)
    evaluation = run.evaluate(test, iw_samples=iw_samples, quiet=True)
    return {"nll": -evaluation["log_likelihood"], "nll_se": evaluation["log_likelihood_se"],
            "test_elbo": evaluation["elbo"], "iw_samples": iw_samples,
            "eval_examples": len(test), "active_units": active_units(run, data),
            "seconds_eval": round(time.perf_counter() - start, 1)}


def write(path: Path, record: dict) -> None:
    """The run's raw JSON, with the command that made it."""
    record["command"] = "python " + " ".join(sys.argv)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")


def arguments(doc: str, budgets: dict, runs: str) -> argparse.ArgumentParser:
    """The flags every MNIST row takes; a row adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", choices=list(budgets), default="short")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-path", default="../shared/data/mnist")
    parser.add_argument("--eval-examples", type=int, default=None, help="(default: all)")
    parser.add_argument("--runs", type=Path, default=Path(runs))
    parser.add_argument("--quiet", action="store_true")
    return parser


def reproduce(path: Path, args, seed: int, record: dict, iw_samples: int, pair_options: dict,
              **settings) -> None:
    """One row's run, unless its JSON exists: train (or resume), measure, write, one line."""
    if path.exists():
        return
    torch.set_num_threads(args.threads)
    data = binarized_mnist(args.data_path, seed)
    run = train(data, args.runs / args.budget / path.stem, seed=seed, device=args.device,
                quiet=args.quiet, pair_options=pair_options, **settings)
    record.update(seed=seed, budget=args.budget, epochs=settings["epochs"],
                  batch_size=settings["batch_size"],
                  steps=run.metrics[-1]["step"], device=str(run.device),
                  seconds_train=round(sum(m["seconds"] for m in run.metrics), 1),  # all sessions
                  **numbers(run, data, iw_samples, args.eval_examples, seed),
                  metrics_per_epoch=run.metrics)
    write(path, record)
    print(f"{path.stem}: NLL {record['nll']:.2f} ± {record['nll_se']:.2f}, "
          f"{record['active_units']} active units", file=sys.stderr, flush=True)
