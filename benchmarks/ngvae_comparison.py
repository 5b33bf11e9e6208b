"""NGVAE against the vanilla VAE and two β-VAEs on procedural shapes (issue 4, seed slides).

Every model gets the same data (``shapes``, 32x32, 5 generative factors: shape, scale,
orientation, x, y), the same conv networks, latent_dim 10, the same optimiser and the
same number of steps, with no per-seed tuning. For each run we measure on the test set:

- test ELBO and reconstruction error ``-E_q log p(x|z)`` (nats per example, unscaled model);
- the importance-sampled log-likelihood ``log p(x)`` (K draws per example);
- the number of informative components: NGVAE by ``mean_x p_k(x) > 0.5`` (its guide's
  report), the baselines by mean posterior variance < 0.5 (``ppl_vae.latents``);
  active units (``Var_x E_q[z_k] > 0.01``) for every model;
- the decorrelation score ``‖diag R‖_F / ‖R - diag R‖_F`` of the correlation matrix R of
  the posterior means (higher: less correlated), over the active units (``ppl_vae.latents``)
  and over the informative components only.

Runs go to worker processes (one torch thread each); each finished run is written to
``raw/<config>_seed<k>.json`` at once, so an interrupted sweep resumes where it stopped.
NGVAE runs also write the histogram of inferred variances and the latent correlation heat
map to ``figures/<config>_seed<k>/``. The markdown table (mean ± sd over seeds) is printed
and written with the raw JSON::

    nice python benchmarks/ngvae_comparison.py --epochs 6 --workers 2
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

CONFIGS = {
    "vae": ("vae", {}),
    "beta_vae_4": ("beta_vae", {"beta": 4.0}),
    "beta_vae_16": ("beta_vae", {"beta": 16.0}),
    "ngvae": ("ngvae", {}),
    "ngvae_normal_gamma": ("ngvae", {"z_prior": "normal_gamma"}),
}
COLUMNS = [("test_elbo", "test ELBO ↑"), ("reconstruction", "recon. error ↓"),
           ("log_likelihood", "IS log p(x) ↑"), ("kl", "KL"), ("informative", "informative"),
           ("informative_by_variance", "var < 0.5"), ("active_units", "active units"),
           ("decorrelation", "decorr. active ↑"),
           ("decorrelation_informative", "decorr. informative ↑"), ("seconds", "train s")]


def run_one(job: dict) -> dict:
    """Train one (config, seed) and measure it; returns the raw record."""
    import torch

    import ppl_vae
    from ppl_vae.latents import latent_statistics

    torch.set_num_threads(1)
    name, seed, a = job["config"], job["seed"], job["args"]
    model, options = CONFIGS[name]
    data = ppl_vae.data.load("shapes", size=32, n=a["n"], seed=a["data_seed"])
    pair = ppl_vae.build(model, data=data, latent_dim=10, seed=seed, **options)
    start = time.perf_counter()
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo="meanfield", epochs=a["epochs"],
                      batch_size=64, lr=1e-3, seed=seed, device="cpu", quiet=True, pair=pair)
    seconds = time.perf_counter() - start
    evaluation = run.evaluate(data.test, iw_samples=a["iw_samples"])
    with pair.scope():
        latents = latent_statistics(pair.model, pair.guide, data.test)
        ngvae = pair.guide.report(data.test, pair.model) if hasattr(pair.guide, "report") else None
        if hasattr(pair.guide, "figures"):
            pair.guide.figures(data.test, Path(job["figures"]) / f"{name}_seed{seed}")
    informative = (ngvae or {}).get("informative_components", latents["informative_by_variance"])
    return {"config": name, "model": model, "options": options, "seed": seed,
            "test_elbo": evaluation["elbo"], "reconstruction": evaluation["reconstruction"],
            "log_likelihood": evaluation["log_likelihood"], "kl": evaluation["kl"],
            "informative": informative, "active_units": latents["active_units"],
            "informative_by_variance": latents["informative_by_variance"],
            "decorrelation": latents["decorrelation_active"], "seconds": round(seconds, 1),
            "train": run.metrics, "latents": latents, "ngvae_report": ngvae}


def informative_dims(record: dict) -> list[int]:
    """NGVAE: dims with mean p_k > 0.5; baselines: dims with mean posterior variance < 0.5."""
    if record.get("ngvae_report"):
        return record["ngvae_report"]["informative_dims"]
    variances = record["latents"]["mean_posterior_variance"]
    return [k for k, v in enumerate(variances) if v < 0.5]


def decorrelation_informative(record: dict) -> float | None:
    """``‖diag R‖_F / ‖R - diag R‖_F`` of the posterior-mean correlations of the informative dims."""
    dims = informative_dims(record)
    if len(dims) < 2:
        return None
    corr = [[record["latents"]["correlation_all"][i][j] for j in dims] for i in dims]
    off = sum(c * c for i, row in enumerate(corr) for j, c in enumerate(row) if i != j)
    return math.sqrt(len(dims) / off) if off > 0 else None


def _cell(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = 0 if all(isinstance(v, int) for v in values) and sd == 0 else 1
    return f"{mean:.{digits}f} ± {sd:.{max(digits, 1)}f}"


def table(records: list[dict], args) -> str:
    """Markdown table: one row per configuration, mean ± sd over seeds."""
    steps = (int(args.n * 0.9) // 64) * args.epochs
    header = (f"Shapes 32×32, n = {args.n} (90 % train), latent_dim 10; every model: "
              f"{args.epochs} epochs = {steps} steps of batch 64, Adam lr 1e-3, meanfield ELBO, "
              f"1 CPU thread; IS log-likelihood with K = {args.iw_samples}; seeds "
              f"{', '.join(map(str, args.seeds))} (mean ± sd). Informative: NGVAE "
              "mean_x p_k > 0.5, baselines mean posterior variance < 0.5.")
    lines = [header, "",
             "| model | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for record in records:
        record["decorrelation_informative"] = decorrelation_informative(record)
    for name in args.configs:
        rows = [r for r in records if r["config"] == name]
        if rows:
            cells = [_cell([r[key] for r in rows]) for key, _ in COLUMNS]
            lines.append(f"| {name} (n={len(rows)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--iw-samples", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ngvae"))
    args = parser.parse_args(argv)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    settings = {"n": args.n, "epochs": args.epochs, "data_seed": args.data_seed,
                "iw_samples": args.iw_samples}
    jobs = [{"config": c, "seed": s, "args": settings, "figures": str(args.out / "figures")}
            for s in args.seeds for c in args.configs if not (raw / f"{c}_seed{s}.json").exists()]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for record in pool.imap_unordered(run_one, jobs):
            path = raw / f"{record['config']}_seed{record['seed']}.json"
            path.write_text(json.dumps({**record, "settings": settings}, indent=1))
            print(f"[{time.perf_counter() - start:6.0f} s] {record['config']} seed "
                  f"{record['seed']}: ELBO {record['test_elbo']:.1f}, informative "
                  f"{record['informative']}", file=sys.stderr, flush=True)
    records = [json.loads(p.read_text()) for p in sorted(raw.glob("*.json"))]
    records = [r for r in records if r.get("settings") == settings]
    text = table(records, args)
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(records, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
