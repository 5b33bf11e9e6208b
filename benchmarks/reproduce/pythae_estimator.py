"""The measurements behind ``pythae_gap.md``: what pythae's NLL estimator and our data draw are worth.

pythae's 89.78 comes from its ``VAE.get_nll`` (K = 200 importance draws per test image,
taken as 2 batches of 100; the Bernoulli log-likelihood computed from sigmoid
probabilities by ``binary_cross_entropy``, whose logs are clamped at -100; a logsumexp
over the 200 weights minus log 200; the mean over images; 5 rounds averaged). Ours uses
K = 5,000 and logits. This script trains pythae's net (:class:`PythaeVAE`) with pythae's
loss (closed-form KL, batch 100, Adam 1e-4) for ``--epochs`` epochs on our seed-0 data and, on
the first ``--examples`` test images, draws one pool of 5,000 ``z ~ q(z | x)`` per image,
with the log weights ``log w = log p(x | z) + log p(z) - log q(z | x)`` both ways. Then::

    NLL_K = -mean over images and disjoint blocks B of K draws of
            [logsumexp_{k in B} log w_k - log K]

for K = 1 ... 5,000 (the blocks are independent K-draw estimates, so NLL_K estimates
-E[log p̂_K], which decreases towards -log p(x) as K grows); pythae's own number is the
first 5 blocks of 200 with its clamped log-likelihood. Two data checks: the test ELBO of
the same net on 5 binarizations of the test images (data seeds 0-4; the spread is what
one fixed draw of the test set is worth), and the Bernoulli entropy of the test images,
``sum_pixels h(p)``, the NLL floor no model can beat, for grey levels read as k/255 and
as k/256 (how much a binarization convention alone moves every NLL). Raw JSON in
``benchmarks/results/reproduce/pythae_gap/``; 11 minutes' wall time on one thread of a
loaded 2-core machine (10 epochs, 300 images)::

    OMP_NUM_THREADS=1 nice python benchmarks/reproduce/pythae_estimator.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from mnist_nll import binarized_mnist
from pythae_torch_check import PythaeVAE
from torch.nn.functional import binary_cross_entropy, binary_cross_entropy_with_logits

import ppl_vae

RESULTS = Path("benchmarks/results/reproduce/pythae_gap")
POOL, PYTHAE_K, PYTHAE_ROUNDS = 5000, 200, 5
KS = (1, 10, 100, 200, 1000, 5000)


def log_weights(vae: PythaeVAE, x: torch.Tensor, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(draws, n)`` log weights of ``x`` (n, 784): exact (logits) and pythae's (sigmoid
    probabilities through ``binary_cross_entropy``, each log clamped at -100)."""
    q = vae.posterior(x)
    z = q.sample((draws,))
    prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    log_ratio = (prior.log_prob(z) - q.log_prob(z)).sum(-1)
    logits = vae.decoder(z)
    target = x.expand_as(logits)
    exact = -binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
    clamped = -binary_cross_entropy(torch.sigmoid(logits), target, reduction="none").sum(-1)
    return exact + log_ratio, clamped + log_ratio


def block_nll(log_w: torch.Tensor, k: int, blocks: int | None = None) -> float:
    """``-mean[logsumexp over a block of k - log k]`` over images and (the first ``blocks``)
    disjoint blocks of the ``(POOL, n)`` log weights."""
    split = log_w[: (len(log_w) // k) * k].reshape(-1, k, log_w.shape[-1])[:blocks]
    return float(-(torch.logsumexp(split, 1) - math.log(k)).mean())


def estimator_table(vae: PythaeVAE, test: torch.Tensor, chunk: int = 10) -> dict:
    """NLL_K for every K in :data:`KS` both ways, and pythae's 5 rounds of 200."""
    exact, clamped = [], []
    with torch.no_grad():
        for x in test.split(chunk):
            e, c = log_weights(vae, x, POOL)
            exact.append(e)
            clamped.append(c)
    exact, clamped = torch.cat(exact, 1), torch.cat(clamped, 1)
    rounds = [block_nll(clamped[i * PYTHAE_K:(i + 1) * PYTHAE_K], PYTHAE_K)
              for i in range(PYTHAE_ROUNDS)]
    return {"nll_by_k": {str(k): block_nll(exact, k) for k in KS},
            "nll_by_k_pythae_clamped": {str(k): block_nll(clamped, k) for k in KS},
            "pythae_estimator_rounds": rounds,
            "pythae_estimator": float(np.mean(rounds)),
            "log_weight_sd": float(exact.std(0).mean())}


def test_elbo(vae: PythaeVAE, test: torch.Tensor, particles: int = 4) -> float:
    """Mean test ELBO, closed-form KL, ``particles`` draws of z per image."""
    with torch.no_grad():
        return float(-torch.stack([torch.cat([vae.negative_elbo(x, "analytic")
                                               for x in test.split(1000)])
                                    for _ in range(particles)]).mean())


def entropy_floor(path: str) -> dict:
    """Mean over the test images of ``sum_pixels h(p)``, the Bernoulli entropy, in nats,
    with ``p = k/255`` and ``p = k/256`` (k the stored grey level)."""
    grey = ppl_vae.data.load("mnist", path=path, n="all").test.flatten(1).double()
    k = torch.round(grey * 255)

    def floor(p: torch.Tensor) -> float:
        h = -(p * p.clamp_min(1e-300).log() + (1 - p) * (1 - p).clamp_min(1e-300).log())
        return float(h.sum(1).mean())

    return {"k_over_255": floor(k / 255), "k_over_256": floor(k / 256),
            "max_grey": float(grey.max())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--test-draws", type=int, default=5)
    parser.add_argument("--data-path", default="../shared/data/mnist")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = binarized_mnist(args.data_path, 0)
    train = data.train.flatten(1)
    torch.manual_seed(0)
    vae = PythaeVAE()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-4)
    for _ in range(args.epochs):
        for index in torch.randperm(len(train)).split(100):
            loss = vae.negative_elbo(train[index], "analytic").mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds_train = time.perf_counter() - start
    record = {"study": "pythae_gap", "net": "pythae's 784-400-40 ReLU, closed-form KL",
              "epochs": args.epochs, "eval_examples": args.examples,
              "seconds_train": round(seconds_train, 1)}
    torch.manual_seed(1)
    record.update(estimator_table(vae, data.test.flatten(1)[:args.examples]))
    record["test_elbo_by_test_draw"] = [
        test_elbo(vae, binarized_mnist(args.data_path, seed).test.flatten(1))
        for seed in range(args.test_draws)]
    record["entropy_floor"] = entropy_floor(args.data_path)
    record["seconds_total"] = round(time.perf_counter() - start, 1)
    record["command"] = "python " + " ".join(sys.argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "estimator_seed0.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "command"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
