"""Active units against latent size, nonlinearity and training bound (the seed's questions).

Malagò et al. report that an MNIST VAE with 20 latents uses only about 15, and that
the number stays constant with more latents; they ask whether it depends on the
architecture and on Rényi bounds. This sweeps latent size (20/30/50), MLP
nonlinearity (ReLU/ELU) and bound (``trace``; ``renyi`` α = 0.5 and ``iwae``, both
K = 5) on mnist5k, several seeds, each early-stopped on the test ELBO, and reports
active units (Burda et al.: Var_x E_q[z_d | x] > 0.01 over the test set), the PCA
spectrum of the posterior means, and a figure with one sorted-eigenvalue line per
setting (seeds averaged).

    python benchmarks/active_units.py [--seeds 0 1 2] [--workers 2]
        [--out benchmarks/results/active_units]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from guide_study import run_pool, train_to_convergence  # noqa: E402

import ppl_vae  # noqa: E402
from ppl_vae.latents import (
    pca_spectrum,  # noqa: E402
    posterior_moments,  # noqa: E402
)

LATENTS = (20, 30, 50)
ACTIVATIONS = ("relu", "elu")
BOUNDS = {"trace": ("trace", None, None), "renyi0.5": ("renyi", 5, 0.5), "iwae5": ("iwae", 5, None)}
TRAINING = {"batch_size": 100, "patience": 5, "max_epochs": 40}
OUT = Path(__file__).parent / "results" / "active_units"


def one_run(task: tuple) -> dict:
    latent_dim, activation, bound, seed, max_epochs, patience = task
    torch.set_num_threads(1)
    elbo, particles, alpha = BOUNDS[bound]
    data = ppl_vae.data.load("mnist5k", binarize="static", seed=seed)
    pair = ppl_vae.build("vae", "diagonal", data=data, seed=seed, latent_dim=latent_dim,
                         net="mlp", activation=activation)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        training = {**TRAINING, "max_epochs": max_epochs, "patience": patience}
        run = train_to_convergence(data, pair, seed, training, Path(folder), elbo, particles,
                                   alpha)
        seconds = time.perf_counter() - start
        _, means, _ = posterior_moments(run.model, run.guide, data.test)
    activity = means.var(0)
    spectrum = pca_spectrum(means.numpy())
    best = max(run.metrics, key=lambda m: m["test_elbo"])
    return {"latent_dim": latent_dim, "activation": activation, "bound": bound, "seed": seed,
            "best_epoch": best["epoch"], "test_elbo": best["test_elbo"],
            "train_seconds": seconds, "active_units": int((activity > 0.01).sum()),
            "activity": sorted(activity.tolist(), reverse=True),
            "eigenvalues": spectrum["eigenvalues"], "components_99": spectrum["components_99"]}


def table(rows: list[dict]) -> str:
    lines = ["| latent | nonlinearity | bound | active units (per seed) | PCA components "
             "for 99 % | best epoch | test ELBO (training bound's model) |", "|---" * 7 + "|"]
    for latent_dim in sorted({r["latent_dim"] for r in rows}):
        for activation in ACTIVATIONS:
            for bound in BOUNDS:
                got = [r for r in rows if (r["latent_dim"], r["activation"], r["bound"])
                       == (latent_dim, activation, bound)]
                if not got:
                    continue
                units = [r["active_units"] for r in got]
                lines.append(
                    f"| {latent_dim} | {activation} | {bound} | {statistics.mean(units):.1f} "
                    f"({', '.join(map(str, units))}) | "
                    f"{statistics.mean(r['components_99'] for r in got):.1f} | "
                    f"{statistics.mean(r['best_epoch'] for r in got):.0f} | "
                    f"{statistics.mean(r['test_elbo'] for r in got):.1f} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    """Sorted PCA eigenvalues of the posterior means, one line per setting (seed mean)."""
    latents = sorted({r["latent_dim"] for r in rows})
    fig, axes = plt.subplots(1, len(latents), figsize=(5 * len(latents), 4), sharey=True,
                             squeeze=False)
    axes = axes[0]
    colours = dict(zip(BOUNDS, ("tab:blue", "tab:orange", "tab:green")))
    for ax, latent_dim in zip(axes, latents):
        for activation in ACTIVATIONS:
            for bound in BOUNDS:
                got = [r["eigenvalues"] for r in rows if (r["latent_dim"], r["activation"],
                                                          r["bound"]) == (latent_dim, activation,
                                                                          bound)]
                if got:
                    ax.semilogy(np.arange(1, latent_dim + 1), np.mean(got, axis=0),
                                color=colours[bound], ls="-" if activation == "relu" else "--",
                                marker=".", label=f"{bound}, {activation}")
        ax.axhline(0.01, color="grey", lw=0.8, ls=":")
        ax.set(title=f"latent size {latent_dim}", xlabel="component (sorted)")
    axes[0].set_ylabel("eigenvalue of Cov_x E_q[z | x]")
    axes[0].legend(fontsize=8)
    fig.suptitle("PCA spectrum of posterior means, mnist5k\n(dotted: the 0.01 activity threshold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--latents", type=int, nargs="+", default=list(LATENTS))
    parser.add_argument("--activations", nargs="+", default=list(ACTIVATIONS),
                        choices=ACTIVATIONS)
    parser.add_argument("--bounds", nargs="+", default=list(BOUNDS), choices=list(BOUNDS))
    parser.add_argument("--max-epochs", type=int, default=TRAINING["max_epochs"])
    parser.add_argument("--patience", type=int, default=TRAINING["patience"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = [(k, a, b, s, args.max_epochs, args.patience) for s in args.seeds
             for k in args.latents for a in args.activations for b in args.bounds]
    start = time.perf_counter()
    rows = run_pool(tasks, one_run, args.workers, args.out / "results.jsonl")
    (args.out / "table.md").write_text(table(rows) + "\n")
    figure(rows, args.out / "spectrum.png")
    print(table(rows), f"\nwall {time.perf_counter() - start:.0f} s", sep="")


if __name__ == "__main__":
    main()
