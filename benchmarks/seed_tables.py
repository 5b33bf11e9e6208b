"""The seeds' two result tables, reproduced on procedural shapes (issue 15).

1. NGVAE slides: Entropy (−), Decorrelation (+), Disentanglement (+) and Information
   for the vanilla VAE, β-VAE β = 27, β-VAE β = 150 and NGVAE.
2. β-VAE lectures (Higgins et al. 2017, dSprites: 99.23 % for β-VAE, 61.58 % for the
   VAE): the BetaVAE score with all 5 factors (disentanglement_lib) and with Higgins'
   4 (shape left out).

Every model gets the same data (``shapes``, 5 factors: shape, scale, orientation, x, y),
conv networks, latent_dim, optimiser (Adam 1e-3), estimator (meanfield) and steps, with no
per-seed tuning. The rows, measured on the whole data set (train + test) where the
statistic is of the aggregate posterior:

- **Entropy**: :func:`ppl_vae.latents.variance_entropy` of the aggregate posterior (nats,
  at most log K; the slides' K = 15 gives 2.71, so ``H / log K`` is printed beside);
- **Decorrelation**: :func:`ppl_vae.latents.aggregate_decorrelation`;
- **Disentanglement**: the FactorVAE score (Kim & Mnih; the slides' 0.62–0.68 fit it),
  MIG beside it (DCI is left out here: its 40-class gradient boosting takes ~50 s per
  500 points on one thread; ``ppl-vae diagnose`` computes it);
- **Information**: informative components, through the contract: the guide's ``report``
  hook where it has one (NGVAE: ``mean_x p_k > 0.5``), else mean posterior variance < 0.5.

Per run the mutual information ``I(m_d; v_k)`` of each code with each factor is also kept
(``mutual_information`` in the raw JSON), to see which factor an informative dimension
carries. Runs go to worker processes (one torch thread each) and are written to
``raw/<config>_seed<k>.json`` as they finish, so an interrupted sweep resumes::

    nice python benchmarks/seed_tables.py --size 32 --n 10000 --epochs 6 --workers 2
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
    "beta_vae_27": ("beta_vae", {"beta": 27.0}),
    "beta_vae_150": ("beta_vae", {"beta": 150.0}),
    "ngvae": ("ngvae", {}),
}
SEED_TABLE = {  # NGVAE slides, columns Vanilla / β-VAE 27 / β-VAE 150 / NGVAE, K = 15
    "entropy": [2.6, 2.6, 2.6, 2.3],
    "decorrelation": [12.7, 7.8, 11.9, 14.3],
    "factor_vae": [0.67, 0.64, 0.62, 0.68],
    "information": [15, 15, 7, 7],
}
HIGGINS = {"vae": "61.58", "beta_vae_27": "99.23 (their β = 4)",
           "beta_vae_150": "99.23 (their β = 4)"}  # dSprites, their Table 1
METRICS = {
    "beta_vae": {"batch_size": 64, "num_train": 600, "num_eval": 300},
    "factor_vae": {"batch_size": 64, "num_train": 600, "num_eval": 300,
                   "num_variance_estimate": 5000},
    "mig": {"num_train": 10_000, "num_bins": 20},
}
HIGGINS_FACTORS = ["scale", "orientation", "pos_x", "pos_y"]


def run_one(job: dict) -> dict:
    """Train one (config, seed) and measure it; returns the raw record."""
    import numpy as np
    import torch

    import ppl_vae
    from ppl_vae.diagnostics.disentanglement import disentanglement_scores
    from ppl_vae.latents import latent_statistics, mean_representation
    from ppl_vae.metrics import compute_beta_vae
    from ppl_vae.metrics.mig import discretize, mutual_information
    from ppl_vae.metrics.sampling import sample_codes

    torch.set_num_threads(1)
    name, seed, a = job["config"], job["seed"], job["args"]
    model, options = CONFIGS[name]
    data = ppl_vae.data.load("shapes", size=a["size"], n=a["n"], seed=a["data_seed"])
    pair = ppl_vae.build(model, data=data, latent_dim=a["latent_dim"], seed=seed, **options)
    start = time.perf_counter()
    run = ppl_vae.fit(pair.model, pair.guide, data, elbo="meanfield", epochs=a["epochs"],
                      batch_size=a["batch_size"], lr=1e-3, seed=seed, device="cpu", quiet=True,
                      pair=pair)
    seconds = time.perf_counter() - start
    evaluation = run.evaluate(data.test, iw_samples=a["iw_samples"])
    with pair.scope():
        latents = latent_statistics(pair.model, pair.guide, torch.cat([data.train, data.test]))
        hook = pair.guide.report(data.test, pair.model) if hasattr(pair.guide, "report") else {}

        representation = mean_representation(pair.model, pair.guide)

        scores = disentanglement_scores(representation, data, METRICS, seed)
        higgins = compute_beta_vae(representation, data, **METRICS["beta_vae"], seed=seed,
                                   factors=HIGGINS_FACTORS)
        codes, factors = sample_codes(representation, data, 10_000, np.random.default_rng(seed))
    return {"config": name, "seed": seed, "seconds_train": round(seconds, 1),
            "seconds_total": round(time.perf_counter() - start, 1),
            "test_elbo": evaluation["elbo"], "log_likelihood": evaluation["log_likelihood"],
            "uncollapsed": evaluation.get("uncollapsed"),
            "entropy": latents["variance_entropy"],
            "decorrelation": latents["decorrelation_aggregate"],
            "decorrelation_means": latents["decorrelation_active"],
            "factor_vae": scores["factor_vae"]["scores"]["eval_accuracy"],
            "mig": scores["mig"]["scores"]["discrete_mig"],
            "beta_vae_all": 100 * scores["beta_vae"]["scores"]["eval_accuracy"],
            "beta_vae_higgins": 100 * higgins["eval_accuracy"],
            "information": hook.get("informative_components", latents["informative_by_variance"]),
            "active_units": latents["active_units"],
            "mutual_information": mutual_information(discretize(codes), factors).tolist(),
            "latents": latents, "guide_report": hook}


def _cell(values: list, digits: int = 2) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def tables(records: list[dict], args) -> str:
    """Both tables as markdown, mean ± sd over seeds, the seed's values beside ours."""
    steps = (int(args.n * 0.9) // args.batch_size) * args.epochs
    by = {c: [r for r in records if r["config"] == c] for c in CONFIGS}
    seeds = sorted({r["seed"] for r in records})
    wall = sum(r["seconds_total"] for r in records)
    log_k = math.log(args.latent_dim)
    lines = [f"Shapes {args.size}×{args.size}, n = {args.n} (90 % train), latent_dim "
             f"{args.latent_dim}; every model {args.epochs} epochs = {steps} steps of batch "
             f"{args.batch_size}, Adam 1e-3, meanfield, 1 CPU thread per run; seeds "
             f"{', '.join(map(str, seeds))} (mean ± sd); {wall / 60:.0f} CPU-thread minutes "
             "in all (training + metrics).", "",
             "| row | " + " | ".join(f"{c} | seed" for c in CONFIGS) + " |",
             "|---" * (2 * len(CONFIGS) + 1) + "|"]
    rows = [("Entropy (−) nats", "entropy", 2), ("Entropy / log K", "entropy_share", 2),
            ("Decorrelation (+)", "decorrelation", 1), ("Disentanglement (+) FactorVAE",
                                                        "factor_vae", 2),
            ("MIG", "mig", 2),
            ("Information", "information", 1), ("test ELBO", "test_elbo", 1),
            ("IS log p(x)", "log_likelihood", 1)]
    for r in records:
        r["entropy_share"] = r["entropy"] / log_k
    for title, key, digits in rows:
        seed_values = SEED_TABLE.get(key) or ([v / math.log(15) for v in SEED_TABLE["entropy"]]
                                              if key == "entropy_share" else [None] * 4)
        cells = [f"{_cell([r[key] for r in by[c]], digits)} | "
                 f"{'' if s is None else (f'{s:.2f}' if isinstance(s, float) else s)}"
                 for c, s in zip(CONFIGS, seed_values)]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "| model | BetaVAE score, 5 factors (%) | BetaVAE score, Higgins' 4 "
              "factors (%) | Higgins et al. dSprites (%) |", "|---|---|---|---|"]
    for c in CONFIGS:
        lines.append(f"| {c} (n={len(by[c])}) | {_cell([r['beta_vae_all'] for r in by[c]], 1)} "
                     f"| {_cell([r['beta_vae_higgins'] for r in by[c]], 1)} | "
                     f"{HIGGINS.get(c, 'n/a')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=32, choices=[32, 64])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--iw-samples", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/seed_tables"))
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in ("size", "n", "epochs", "batch_size", "latent_dim",
                                              "data_seed", "iw_samples")}
    raw = args.out / f"raw_{args.size}"
    raw.mkdir(parents=True, exist_ok=True)
    jobs = [{"config": c, "seed": s, "args": settings} for s in args.seeds for c in args.configs
            if not (raw / f"{c}_seed{s}.json").exists()]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for record in pool.imap_unordered(run_one, jobs):
            (raw / f"{record['config']}_seed{record['seed']}.json").write_text(
                json.dumps({**record, "settings": settings}, indent=1))
            print(f"[{time.perf_counter() - start:6.0f} s] {record['config']} seed "
                  f"{record['seed']}: ELBO {record['test_elbo']:.1f}, information "
                  f"{record['information']}, FactorVAE {record['factor_vae']:.2f}",
                  file=sys.stderr, flush=True)
    records = [json.loads(p.read_text()) for p in sorted(raw.glob("*.json"))]
    records = [r for r in records if r.get("settings") == settings]
    text = tables(records, args)
    (args.out / f"tables_{args.size}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
