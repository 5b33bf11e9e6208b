"""Gradient signal-to-noise of iwae, iwae-dreg and iwae-stl against K, partway through training.

Issue 16. Rainforth et al. (2018) show that the encoder's gradient SNR of plain IWAE
falls like 1/√K; DReG (Tucker et al. 2019) and STL (Roeder et al. 2017) drop the
score term that causes it. Here, on ``mnist5k`` (statically binarised, data seed 0):

- a VAE with the MLP pair (encoder 784-400-2·16, decoder 16-400-784, ReLU,
  Bernoulli logits, latent_dim 16) is trained for ``--epochs`` epochs of batch
  100 (45 steps each: 315 steps by default) with ``iwae`` K = 5, Adam lr 1e-3;
- on one fixed batch of ``--batch`` training images, every estimator's gradient
  of the loss (mean over the batch) is drawn ``--draws`` times at K = 1, 5, 20, 50
  (same weights throughout); per parameter element, ``SNR = |mean| / sd`` over
  the draws, averaged over the encoder's (guide's) and over the decoder's
  (model's) elements. Elements whose gradient is exactly 0 on every draw (dead
  ReLU units) are left out. The median over elements is recorded too.

Writes ``snr.png`` (log-log, SNR against K, encoder and decoder panels),
``snr.json`` and ``snr.md`` to ``--out``::

    nice .venv/bin/python benchmarks/gradient_snr.py --out benchmarks/results/gradient_snr/

Measured (2026-12-02, 140 s wall alone on the shared CPU, one thread; mean element SNR):

| K | iwae enc | iwae-dreg enc | iwae-stl enc | iwae dec | iwae-dreg dec |
|---|---|---|---|---|---|
| 1 | 0.55 | 0.78 | 0.80 | 1.93 | 1.93 |
| 5 | 0.41 | 0.67 | 0.80 | 2.68 | 2.69 |
| 20 | 0.36 | 0.65 | 0.92 | 3.40 | 3.43 |
| 50 | 0.34 | 0.62 | 1.03 | 3.91 | 3.88 |

Plain IWAE's encoder SNR falls with K (0.55 to 0.34, slower than 1/√K on a batch of
32); DReG's stays near 0.65 and is 1.6-1.8x IWAE's for K ≥ 5; STL's rises but is
biased for K > 1. The decoder's SNR rises with K and is the same for all three (the
same estimator). At K = 1 iwae-dreg and iwae-stl are one estimator: their cells differ
by the Monte Carlo error of the SNR itself (2 %).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ESTIMATORS = ("iwae", "iwae-dreg", "iwae-stl")
PARTICLES = (1, 5, 20, 50)
LATENT_DIM = 16


def train_pair(epochs: int, seed: int):
    """The partly trained pair and the data (see the module docstring)."""
    import ppl_vae

    data = ppl_vae.data.load("mnist5k", binarize="static", seed=0)
    pair = ppl_vae.build("vae", latent_dim=LATENT_DIM, data=data, net="mlp", seed=seed)
    ppl_vae.fit(pair.model, pair.guide, data, pair=pair, elbo="iwae", particles=5,
                epochs=epochs, batch_size=100, lr=1e-3, seed=seed, device="cpu", quiet=True,
                report=False)
    return pair, data


def gradient_snr(pair, x: torch.Tensor, name: str, particles: int, draws: int) -> dict:
    """Mean and median element SNR of the encoder's and the decoder's gradient."""
    import ppl_vae
    from ppl_vae.estimators import make_elbo

    estimator = make_elbo(name, particles)
    groups = {"encoder": list(pair.guide.parameters()), "decoder": list(pair.model.parameters())}
    sums = {g: 0.0 for g in groups}
    squares = {g: 0.0 for g in groups}
    with ppl_vae.engine_settings(pair.model, pair.guide):
        for _ in range(draws):
            for p in groups["encoder"] + groups["decoder"]:
                p.grad = None
            estimator(pair.model, pair.guide, x).backward()
            for g, params in groups.items():
                flat = torch.cat([p.grad.flatten() for p in params]).double()
                sums[g] = sums[g] + flat
                squares[g] = squares[g] + flat * flat
    result = {}
    for g in groups:
        mean = sums[g] / draws
        var = (squares[g] / draws - mean * mean).clamp_min(0) * draws / (draws - 1)
        live = var > 0
        snr = mean[live].abs() / var[live].sqrt()
        result[g] = {"mean": snr.mean().item(), "median": snr.median().item(),
                     "elements": int(live.sum())}
    return result


def table(rows: list[dict]) -> str:
    """Markdown: mean element SNR per estimator and K, encoder and decoder."""
    lines = ["| estimator | K | encoder SNR (mean) | encoder (median) | decoder SNR (mean) "
             "| decoder (median) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['estimator']} | {r['particles']} | {r['encoder']['mean']:.3f} | "
                     f"{r['encoder']['median']:.3f} | {r['decoder']['mean']:.3f} | "
                     f"{r['decoder']['median']:.3f} |")
    return "\n".join(lines) + "\n"


def draw(rows: list[dict], path: Path, title: str) -> None:
    """Log-log SNR against K, one panel for the encoder and one for the decoder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, group in zip(axes, ("encoder", "decoder")):
        for name, marker in zip(ESTIMATORS, ("o", "s", "^")):
            mine = [r for r in rows if r["estimator"] == name]
            ax.loglog([r["particles"] for r in mine], [r[group]["mean"] for r in mine],
                      marker=marker, label=name + (" (biased for K > 1)" if "stl" in name else ""))
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis(ScalarFormatter())
        ax.set_xticks(PARTICLES, [str(k) for k in PARTICLES])
        ax.set_xlabel("K (particles)")
        ax.set_ylabel(f"{group} gradient SNR (mean over elements)")
        ax.set_title(f"{group} ({'guide' if group == 'encoder' else 'model'} parameters)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gradient_snr"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    pair, data = train_pair(args.epochs, args.seed)
    trained = time.perf_counter() - start
    x = data.train[:args.batch]
    torch.manual_seed(args.seed)
    rows = [{"estimator": name, "particles": k, **gradient_snr(pair, x, name, k, args.draws)}
            for k in PARTICLES for name in ESTIMATORS]
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"epochs": args.epochs, "steps": args.epochs * 45, "draws": args.draws,
                "batch": args.batch, "seed": args.seed, "latent_dim": LATENT_DIM,
                "train_seconds": round(trained, 1),
                "seconds": round(time.perf_counter() - start, 1)}
    (args.out / "snr.json").write_text(json.dumps({"settings": settings, "rows": rows},
                                                  indent=1))
    (args.out / "snr.md").write_text(
        f"{settings['steps']} steps of iwae K=5 (batch 100), then {args.draws} gradient draws "
        f"on {args.batch} fixed training images per cell.\n\n" + table(rows))
    draw(rows, args.out / "snr.png",
         f"MLP VAE (latent {LATENT_DIM}) on mnist5k after {settings['steps']} steps of IWAE-5; "
         f"{args.draws} draws on a batch of {args.batch}")
    print(table(rows), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
