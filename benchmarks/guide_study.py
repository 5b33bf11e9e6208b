"""Diagonal, chain, grid, full and IAF guides trained to convergence, several seeds.

Every run trains a VAE with early stopping on the test ELBO (evaluated after each
epoch; stop after ``--patience`` epochs without a new best, at most ``--max-epochs``)
and is measured at its best epoch: test ELBO, IS log p(x) with K = ``--iw-samples``,
the approximation gap IS − ELBO (what a richer guide should shrink), mean and
share-above-0.7 of PSIS k̂ over the same K draws, active units (Var_x E_q[z_d] >
0.01) and wall seconds per epoch. Runs go to a pool of processes (one thread
each); finished runs are kept in ``results.jsonl`` and skipped when rerun.

    python benchmarks/guide_study.py [--configs mnist16 mnist32 shapes] [--seeds 0 1 2]
        [--workers 2] [--out benchmarks/results/guide_study]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

import ppl_vae
from ppl_vae.diagnostics.draws import collect_draws
from ppl_vae.diagnostics.psis import pareto_k
from ppl_vae.latents import latent_statistics

GUIDES = ("diagonal", "chain", "grid", "full", "iaf")
# name -> (data options, pair options, training options, test examples evaluated)
CONFIGS = {
    "mnist16": ({"name": "mnist5k", "binarize": "static"}, {"latent_dim": 16, "net": "mlp"},
                {"batch_size": 100, "patience": 10, "max_epochs": 300}, 500),
    "mnist32": ({"name": "mnist5k", "binarize": "static"}, {"latent_dim": 32, "net": "mlp"},
                {"batch_size": 100, "patience": 10, "max_epochs": 300}, 500),
    "shapes": ({"name": "shapes", "size": 32, "n": 5000}, {"latent_dim": 16, "net": "conv"},
               {"batch_size": 64, "patience": 5, "max_epochs": 40}, 200),
}
OUT = Path(__file__).parent / "results" / "guide_study"


def train_to_convergence(data, pair, seed: int, training: dict, folder: Path, elbo: str = "trace",
                         particles: int | None = None, alpha: float | None = None):
    """Early-stopped training in ``folder``; returns the run at its best epoch."""
    ppl_vae.fit(pair.model, pair.guide, data, elbo=elbo, particles=particles, alpha=alpha,
                epochs=training["max_epochs"], batch_size=training["batch_size"], lr=1e-3,
                patience=training["patience"], seed=seed, device="cpu", quiet=True,
                out=folder, report=False, pair=pair)
    return ppl_vae.load_run(folder, best=True, device="cpu", data=data)


def measure(run, x: torch.Tensor, iw_samples: int) -> dict:
    """Test ELBO, IS log p(x), the gap, PSIS k̂ and active units of a trained run."""
    result = run.evaluate(x, iw_samples=iw_samples)
    with run.pair.scope():
        draws = collect_draws(run.model, run.guide, x, draws=iw_samples)
    khat = pareto_k(draws.log_weight)
    khat = khat[np.isfinite(khat)]
    stats = latent_statistics(run.model, run.guide, x)
    return {"elbo": result["elbo"], "log_likelihood": result["log_likelihood"],
            "gap": result["log_likelihood"] - result["elbo"],
            "khat_mean": float(np.mean(khat)), "khat_over_07": float(np.mean(khat > 0.7)),
            "active_units": stats["active_units"]}


def one_run(task: tuple) -> dict:
    config, guide, seed, iw_samples = task
    torch.set_num_threads(1)
    data_options, pair_options, training, examples = CONFIGS[config]
    data = ppl_vae.data.load(**data_options, seed=seed)
    pair = ppl_vae.build("vae", guide, data=data, seed=seed, **pair_options)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = train_to_convergence(data, pair, seed, training,
                                   Path(folder))
        seconds = time.perf_counter() - start
        metrics = run.metrics
        best = max(metrics, key=lambda m: m["test_elbo"])
        measured = measure(run, data.test[:examples], iw_samples)
    return {"config": config, "guide": guide, "seed": seed, "epochs": len(metrics),
            "best_epoch": best["epoch"], "best_step": best["step"], "train_seconds": seconds,
            "seconds_per_epoch": statistics.mean(m["seconds"] for m in metrics),
            "iw_samples": iw_samples, "examples": examples, **measured}


def _stat(rows: list[dict], key: str, digits: int = 2) -> str:
    values = [r[key] for r in rows]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(rows: list[dict]) -> str:
    lines = ["| data | guide | best epoch | test ELBO ↑ | IS log p(x) ↑ | IS − ELBO ↓ | "
             "mean k̂ | k̂ > 0.7 | active units | s / epoch |", "|---" * 10 + "|"]
    for config in CONFIGS:
        for guide in GUIDES:
            got = [r for r in rows if r["config"] == config and r["guide"] == guide]
            if got:
                lines.append(
                    f"| {config} | {guide} | {_stat(got, 'best_epoch', 0)} | {_stat(got, 'elbo')} | "
                    f"{_stat(got, 'log_likelihood')} | {_stat(got, 'gap')} | "
                    f"{_stat(got, 'khat_mean')} | {_stat(got, 'khat_over_07')} | "
                    f"{_stat(got, 'active_units', 1)} | {_stat(got, 'seconds_per_epoch', 1)} |")
    return "\n".join(lines)


def paired_differences(rows: list[dict], key: str = "log_likelihood") -> str:
    """Each guide minus diagonal on the same config and seed (paired over seeds)."""
    lines = [f"| data | guide | {key} − diagonal (paired, mean ± sd) |", "|---|---|---|"]
    for config in CONFIGS:
        base = {r["seed"]: r[key] for r in rows if r["config"] == config
                and r["guide"] == "diagonal"}
        for guide in GUIDES[1:]:
            diffs = [r[key] - base[r["seed"]] for r in rows if r["config"] == config
                     and r["guide"] == guide and r["seed"] in base]
            if diffs:
                sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
                lines.append(f"| {config} | {guide} | {statistics.mean(diffs):+.2f} ± {sd:.2f} "
                             f"({len(diffs)} seeds) |")
    return "\n".join(lines)


def run_pool(tasks: list, one, workers: int, results: Path) -> list[dict]:
    """Run the tasks not yet in ``results`` (JSON lines) on ``workers`` processes."""
    rows = [json.loads(line) for line in results.read_text().splitlines()] \
        if results.exists() else []
    done = {tuple(r["task"]) for r in rows}
    todo = [t for t in tasks if tuple(t) not in done]
    print(f"{len(todo)} runs to do, {len(done)} done", flush=True)
    with ProcessPoolExecutor(workers) as pool:
        for task, row in zip(todo, pool.map(one, todo)):
            row["task"] = list(task)
            rows.append(row)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--guides", nargs="+", default=list(GUIDES), choices=list(GUIDES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = [(c, g, s, args.iw_samples) for c in args.configs for s in args.seeds
             for g in args.guides]
    start = time.perf_counter()
    rows = run_pool(tasks, one_run, args.workers, args.out / "results.jsonl")
    paired = "\n\n".join(paired_differences(rows, key) for key in ("log_likelihood", "elbo", "gap"))
    text = f"{table(rows)}\n\n{paired}\n"
    (args.out / "table.md").write_text(text)
    print(text, f"\nwall {time.perf_counter() - start:.0f} s", sep="")


if __name__ == "__main__":
    main()
