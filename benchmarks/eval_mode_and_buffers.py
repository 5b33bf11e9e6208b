"""What evaluation mode and saved buffers change, on Pyro's ProdLDA (dropout + BatchNorm).

Trains :class:`examples.pyro_tutorials.prodlda.ProdLDA` on a planted-topic corpus, then
evaluates the test ELBO four ways:

- as ppl-vae does: every module in eval mode (twice: equal), running statistics untouched;
- as before issue 26: modules left in training mode (dropout on, BatchNorm on the batch's
  statistics and updating its running ones) — twice, with the drift of the statistics;
- reloaded from the run folder with its buffers (as now), and with the buffers dropped
  (as checkpoints were before: BatchNorm back to mean 0, variance 1).

    PYTHONPATH=. python benchmarks/eval_mode_and_buffers.py --docs 3000 --epochs 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from unittest import mock

import pyro
import torch

import ppl_vae
from examples.pyro_tutorials.prodlda import ProdLDA, planted_corpus

RESULTS = Path("benchmarks/results/eval_mode_and_buffers.json")


def test_elbo(run, data, seed: int = 0) -> float | str:
    """The test ELBO at a fixed seed, or the first line of the error it raised."""
    pyro.set_rng_seed(seed)
    try:
        return run.evaluate(data.test, iw_samples=1)["elbo"]
    except ValueError as error:
        return f"failed: {str(error).splitlines()[0][:160]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/eval_mode_and_buffers"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    docs, _ = planted_corpus(args.docs)
    data = ppl_vae.data.from_tensors(docs, name="planted topics")
    torch.manual_seed(0)
    lda = ProdLDA()
    run = ppl_vae.fit(lda.model, lda.guide, data, observe="obs", plate="documents",
                      epochs=args.epochs, lr=1e-2, batch_size=100, out=args.out,
                      overwrite=True, quiet=True, report=False)
    bn = lda.decoder.bn
    eval_mode = [test_elbo(run, data), test_elbo(run, data)]
    stats = bn.running_mean.clone()
    untouched = lambda *programs, **options: contextlib.nullcontext()  # noqa: E731
    with mock.patch.object(sys.modules["ppl_vae.evaluate"], "frozen", untouched), \
            mock.patch.object(sys.modules["ppl_vae.pair"], "frozen", untouched), \
            mock.patch.object(sys.modules["ppl_vae.evaluate"], "_has_point_mass",
                              lambda *args: False):  # its one-example trace needs eval mode
        train_mode = [test_elbo(run, data), test_elbo(run, data)]
    drift = (bn.running_mean - stats).abs().max().item()
    bn.running_mean.copy_(stats)  # undo what training-mode evaluation did
    fresh = ProdLDA()
    with_buffers = test_elbo(ppl_vae.load_run(args.out, model=fresh.model, guide=fresh.guide),
                             data)
    fresh = ProdLDA()
    with mock.patch.object(ppl_vae.runs, "_copy_into", _parameters_only):
        without = test_elbo(ppl_vae.load_run(args.out, model=fresh.model, guide=fresh.guide),
                            data)
    record = {"docs": args.docs, "epochs": args.epochs, "eval_mode": eval_mode,
              "train_mode": train_mode, "running_mean_drift_from_two_evaluations": drift,
              "reloaded_with_buffers": with_buffers, "reloaded_without_buffers": without,
              "command": "PYTHONPATH=. python " + " ".join(sys.argv)}
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


_copy = ppl_vae.runs._copy_into


def _parameters_only(named, saved, device, what):
    """Checkpoints as they were: buffers not restored."""
    if what == "parameter":
        _copy(named, saved, device, what)


if __name__ == "__main__":
    sys.exit(main())
