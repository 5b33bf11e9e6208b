"""Row 2's check: pythae's VAE written in plain PyTorch, on our data, beside ``ppl_vae.fit``.

The net of pythae's reproduction (784-400-40 ReLU; the encoder gives a mean and a log
variance, the decoder Bernoulli logits), the same fixed binarization of MNIST
(``mnist_nll.binarized_mnist``, seed 0), batch 100, Adam 1e-4 with the short budget's
MultiStepLR (epochs 40 and 70, ×10^(-1/5)), 100 epochs. The loss per example::

    -ELBO(x) = -log p(x | z) + KL(q(z | x) ‖ N(0, I)),    z = μ + σ ε

with the KL either in closed form (``--kl analytic``, pythae's loss) or as the one-draw
Monte Carlo ``log q(z | x) - log p(z)`` (``--kl mc``, what ``elbo="trace"`` computes).
Then the test ELBO (closed-form KL, one z per example) and the test NLL by importance
sampling, written here independently of ``ppl_vae.evaluate``::

    log p(x) ≈ logsumexp_k [log p(x | z_k) + log p(z_k) - log q(z_k | x)] - log K

A gap between this and ``pythae_vae.py --budget short`` (95.28 ± 0.19 with ``trace``)
beyond seed noise would point at the engine; ``--kl analytic`` against ``mc`` measures
what the estimator alone is worth at this budget::

    python benchmarks/reproduce/pythae_torch_check.py --kl mc
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from mnist_nll import binarized_mnist
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits

RESULTS = Path("benchmarks/results/reproduce/pythae_vae/check")


class PythaeVAE(nn.Module):
    def __init__(self, latent_dim: int = 40, hidden: int = 400):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.ReLU())
        self.mean, self.log_var = nn.Linear(hidden, latent_dim), nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 784))

    def posterior(self, x: torch.Tensor) -> torch.distributions.Normal:
        h = self.encoder(x)
        return torch.distributions.Normal(self.mean(h), (0.5 * self.log_var(h)).exp())

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return -binary_cross_entropy_with_logits(self.decoder(z), x.expand(*z.shape[:-1], 784),
                                                 reduction="none").sum(-1)

    def negative_elbo(self, x: torch.Tensor, kl: str) -> torch.Tensor:
        q = self.posterior(x)
        z = q.rsample()
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        kl_term = (torch.distributions.kl_divergence(q, prior).sum(-1) if kl == "analytic"
                   else (q.log_prob(z) - prior.log_prob(z)).sum(-1))
        return -self.log_likelihood(x, z) + kl_term

    @torch.no_grad()
    def log_marginal(self, x: torch.Tensor, draws: int, chunk: int = 250) -> torch.Tensor:
        q = self.posterior(x)
        parts = []
        for k in range(0, draws, chunk):
            z = q.sample((min(chunk, draws - k),))
            prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
            parts.append(self.log_likelihood(x, z) + (prior.log_prob(z)
                                                      - q.log_prob(z)).sum(-1))
        return torch.logsumexp(torch.cat(parts), 0) - math.log(draws)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kl", choices=["analytic", "mc"], default="mc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--data-path", default="../shared/data/mnist")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = binarized_mnist(args.data_path, args.seed)
    train, test = data.train.flatten(1), data.test.flatten(1)
    torch.manual_seed(args.seed)
    vae = PythaeVAE()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [40, 70], gamma=10 ** (-1 / 5))
    start, curve = time.perf_counter(), []
    for epoch in range(args.epochs):
        total = 0.0
        for index in torch.randperm(len(train)).split(100):
            loss = vae.negative_elbo(train[index], args.kl).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        schedule.step()
        curve.append(-total / len(train))
        print(f"epoch {epoch + 1}: train ELBO {curve[-1]:.2f}", file=sys.stderr, flush=True)
    seconds_train = time.perf_counter() - start
    with torch.no_grad():
        elbo = -torch.cat([vae.negative_elbo(x, "analytic") for x in test.split(1000)]).mean()
        log_p = torch.cat([vae.log_marginal(x, args.iw_samples) for x in test.split(100)])
    record = {"row": "pythae_vae_check", "loop": "plain PyTorch", "kl": args.kl,
              "seed": args.seed, "epochs": args.epochs, "steps": args.epochs * len(train) // 100,
              "seconds_train": round(seconds_train, 1), "test_elbo": float(elbo),
              "nll": float(-log_p.mean()), "nll_se": float(log_p.std() / math.sqrt(len(log_p))),
              "iw_samples": args.iw_samples, "eval_examples": len(test),
              "train_elbo_per_epoch": curve, "command": "python " + " ".join(sys.argv)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"torch_{args.kl}_seed{args.seed}.json").write_text(json.dumps(record, indent=1))
    print(f"plain PyTorch, {args.kl} KL: NLL {record['nll']:.2f} ± {record['nll_se']:.2f}, "
          f"test ELBO {record['test_elbo']:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
