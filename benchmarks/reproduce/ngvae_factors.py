"""Does NGVAE's informative count follow the number of generative factors? (issue 38, §1)

The NGVAE slides claim the number of informative components matches the number of
generative factors with no dataset-dependent hyperparameters. Test: ``shapes`` 32×32 in
which only 2, 3, 4 or 5 factors vary (:data:`VARYING`; the others fixed,
``load("shapes", vary=...)``), K = 15 latents, ONE setting for every run (:data:`SETTING`:
the project's default NGVAE, conv nets, Bernoulli, batch 64, Adam, ``meanfield``), the
same number of steps for every data set (epochs = ``round(steps / steps per epoch)``),
2 seeds, both z-priors (``normal``, the project's default, and the slides' ``normal_gamma``
hierarchy ``z | λ ~ N(0, λ⁻¹)``), beside the VAE and β-VAE (β = 4) on the same data.

Data: ``n = min(20,000, grid)`` images of each grid (1,024 / 6,144 / 18,432 / 20,000 of
737,280), 10 % held out. Counts (:mod:`ppl_vae.latents`, on up to 5,000 train + test
images): NGVAE's informative components (``mean_x p_k > 0.5``, the guide's report),
active units (``Var_x E[z_k | x] > 0.01``, Burda et al.) and the dimensions with mean
posterior variance < 0.5 for every model; plus the normalised mutual information
``I(E[z_k | x]; v_f) / H(v_f)`` of each dimension with each varying factor (10,000 fresh
renders, 20 bins) and MIG, so a count can be checked against what the dimensions encode
(:func:`encoding` counts the active units with some I/H > 0.1; the first runs' JSON also
holds ``dims_encoding_a_factor``, the same over all 15 units, which inactive units' jitter
inflates: ``summary.md`` recomputes the active-only count from the raw fields).

Each run writes ``benchmarks/results/reproduce/ngvae_factors/<config>_f<F>_seed<S>.json``
(its per-epoch metrics included) and is skipped when that file exists, so an interrupted
study continues where it stopped; ``--plot`` redraws ``informative_vs_factors.png`` from
the JSON files, with ``summary.md`` (one row per run). Runs go in priority order (NGVAE
seed 0, NGVAE seed 1, VAE/β-VAE)::

    OMP_NUM_THREADS=1 nice python benchmarks/reproduce/ngvae_factors.py
    python benchmarks/reproduce/ngvae_factors.py --plot

Variants keep the one setting and change one thing, each in its own subfolder
``size<S>_steps<N>/`` with its own figure and summary (:func:`folder_for`): the image size
(does the count follow the pixel count?) and the budget (were the 2,000-step counts still
moving?)::

    OMP_NUM_THREADS=1 nice python benchmarks/reproduce/ngvae_factors.py --size 64 \
        --configs ngvae_normal --seeds 0
    OMP_NUM_THREADS=1 nice python benchmarks/reproduce/ngvae_factors.py --steps 8000 \
        --configs ngvae_normal ngvae_normal_gamma --factors 2 5 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ppl_vae
from ppl_vae.diagnostics.disentanglement import PRESETS, disentanglement_scores
from ppl_vae.latents import latent_statistics, mean_representation
from ppl_vae.metrics.mig import discretize, entropies, mutual_information
from ppl_vae.metrics.sampling import sample_codes

VARYING = {2: "pos_x,pos_y", 3: "pos_x,pos_y,scale", 4: "pos_x,pos_y,scale,shape",
           5: "pos_x,pos_y,scale,shape,orientation"}
CONFIGS = {  # name -> (model, options); every other setting is SETTING's
    "ngvae_normal": ("ngvae", {"z_prior": "normal"}),
    "ngvae_normal_gamma": ("ngvae", {"z_prior": "normal_gamma"}),
    "vae": ("beta_vae", {"beta": 1.0}),
    "beta_vae": ("beta_vae", {"beta": 4.0}),
}
SETTING = {"latent_dim": 15, "net": "conv", "likelihood": "bernoulli"}
TRAINING = {"elbo": "meanfield", "batch_size": 64, "lr": 1e-3}
SIZE, STEPS, STATISTICS_EXAMPLES, SEEDS = 32, 2_000, 5_000, (0, 1)
RESULTS = Path("benchmarks/results/reproduce/ngvae_factors")


def plan(seeds=SEEDS, configs=tuple(CONFIGS), factors=tuple(VARYING)) -> list[tuple]:
    """``(config, factors, seed)`` in priority order: NGVAE (both z-priors) seed by seed,
    then the VAE and β-VAE seed by seed."""
    ngvae = [c for c in configs if CONFIGS[c][0] == "ngvae"]
    others = [c for c in configs if c not in ngvae]
    return [(c, f, s) for group in (ngvae, others) for s in seeds for f in factors for c in group]


def load(factors: int, size: int = SIZE):
    """The data of ``factors`` varying factors at ``size``×``size``, the source's default
    ``n = min(20,000, grid)`` (data seed 0 for every run)."""
    return ppl_vae.data.load("shapes", size=size, vary=VARYING[factors], seed=0)


def folder_for(size: int, steps: int) -> Path:
    """Where a run's JSON goes: the main study (32×32, 2,000 steps) in :data:`RESULTS`, a
    variant (another image size or budget) in its own subfolder with its own summary."""
    if (size, steps) == (SIZE, STEPS):
        return RESULTS
    return RESULTS / f"size{size}_steps{steps}"


def factor_information(pair, data, seed: int) -> np.ndarray:
    """``I(E[z_k | x]; v_f) / H(v_f)``, ``(K, F)``, on 10,000 fresh renders (20 bins)."""
    with pair.scope(), torch.no_grad():
        codes, factors = sample_codes(mean_representation(pair.model, pair.guide), data,
                                      10_000, np.random.default_rng(seed))
    return mutual_information(discretize(codes), factors) / entropies(factors)


def train_and_measure(config: str, factors: int, seed: int, steps: int, quiet: bool,
                      size: int = SIZE) -> dict:
    """Train one run for about ``steps`` steps, then its counts and statistics."""
    model, options = CONFIGS[config]
    data = load(factors, size)
    pair = ppl_vae.build(model, data=data, seed=seed, **SETTING, **options)
    per_epoch = len(data.train_store) // TRAINING["batch_size"]
    epochs = max(1, round(steps / per_epoch))
    run = ppl_vae.fit(pair.model, pair.guide, data, epochs=epochs, seed=seed, device="cpu",
                      report=False, quiet=quiet, pair=pair, **TRAINING)
    seconds_train = sum(m["seconds"] for m in run.metrics)
    start = time.perf_counter()
    x = torch.cat([data.examples("test"), data.examples("train")])[:STATISTICS_EXAMPLES]
    with pair.scope():
        latents = latent_statistics(pair.model, pair.guide, x)
        hook = pair.guide.report(x, pair.model) if hasattr(pair.guide, "report") else {}
        mig = disentanglement_scores(mean_representation(pair.model, pair.guide), data,
                                     {"mig": PRESETS["full"]["mig"]}, seed)
    information = factor_information(pair, data, seed)
    return {
        "study": "ngvae_factors", "config": config, "model": model, "options": options,
        "factors": factors, "vary": VARYING[factors], "seed": seed, "size": size,
        "n": data.spec["n"], "n_train": len(data.train_store), "setting": SETTING,
        "training": TRAINING, "epochs": epochs, "steps": run.metrics[-1]["step"],
        "seconds_train": round(seconds_train, 1),
        "seconds_total": round(seconds_train + time.perf_counter() - start, 1),
        "final_test_elbo": run.metrics[-1]["test_elbo"],
        "informative": hook.get("informative_components"),
        "active_units": latents["active_units"],
        "informative_by_variance": latents["informative_by_variance"],
        "active_dims_encoding_a_factor": encoding(latents["activity"], information),
        "factor_information": information.round(4).tolist(),
        "factor_names": data.factor_names, "mig": mig["mig"]["scores"]["discrete_mig"],
        "statistics_examples": len(x), "guide_report": hook, "latents": latents,
        "metrics_per_epoch": run.metrics,
    }


def encoding(activity: list[float], information: np.ndarray) -> int:
    """Active units (activity > 0.01) whose normalised MI with some factor exceeds 0.1. Only
    active ones: an inactive unit's mean still moves a little, deterministically, with the
    image, and binned into 20 bins over its own tiny range that reads as 0.1–0.3 too."""
    active = np.asarray(activity) > 0.01
    return int((active & (np.asarray(information).max(1) > 0.1)).sum())


def informative(record: dict) -> int:
    """The run's informative count: NGVAE's own (``mean_x p_k > 0.5``), else the dimensions
    with mean posterior variance < 0.5."""
    return record["informative"] if record["informative"] is not None \
        else record["informative_by_variance"]


def records(folder: Path = RESULTS) -> list[dict]:
    """Every finished run's JSON."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*_f*_seed*.json"))]


def plot(folder: Path = RESULTS) -> Path:
    """``informative_vs_factors.png``: informative count and active units against the number
    of varying factors, one line (mean over seeds) per config, a dot per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = records(folder)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    styles = {"ngvae_normal": "o-", "ngvae_normal_gamma": "s-", "vae": "^--", "beta_vae": "v--"}
    panels = ((informative, "informative (NGVAE: p_k > 0.5; others: posterior var < 0.5)"),
              (lambda r: r["active_units"], "active units (Var_x E[z_k | x] > 0.01)"))
    for ax, (value, title) in zip(axes, panels):
        ax.plot([2, 5], [2, 5], color="grey", linestyle=":", label="count = factors")
        for shift, config in zip((-0.09, -0.03, 0.03, 0.09), CONFIGS):
            mine = [r for r in runs if r["config"] == config]
            if not mine:
                continue
            xs = sorted({r["factors"] for r in mine})
            means = [np.mean([value(r) for r in mine if r["factors"] == f]) for f in xs]
            line, = ax.plot(np.array(xs) + shift, means, styles[config], label=config,
                            markerfacecolor="none")
            ax.plot([r["factors"] + shift for r in mine], [value(r) for r in mine], ".",
                    color=line.get_color())
        ax.set(xlabel="varying factors", title=title, xticks=list(VARYING), ylim=(-0.5, 15.5))
        ax.title.set_fontsize(9)
    axes[0].set_ylabel("count (of K = 15)")
    axes[0].legend(fontsize=8)
    size = runs[0]["size"] if runs else SIZE
    steps = round(np.mean([r["steps"] for r in runs]), -2) if runs else STEPS
    fig.suptitle(f"shapes {size}×{size}, ~{steps:.0f} steps, one setting for every run: "
                 "hollow = mean over seeds, dots = runs", fontsize=10)
    fig.tight_layout()
    path = folder / "informative_vs_factors.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary(folder: Path = RESULTS) -> Path:
    """``summary.md``: per config and factor count, each seed's counts and ρ_rms."""
    lines = ["| config | factors | seed | steps | informative | active units | active units "
             "encoding a factor | ρ_rms (aggregate, active) | decorrelation | final test "
             "ELBO |", "|---" * 10 + "|"]
    for r in sorted(records(folder), key=lambda r: (list(CONFIGS).index(r["config"]),
                                                     r["factors"], r["seed"])):
        latents = r["latents"]
        rms = latents.get("correlation_rms_aggregate")
        score = latents["decorrelation_aggregate"]
        lines.append(
            f"| {r['config']} | {r['factors']} | {r['seed']} | {r['steps']} | "
            f"{informative(r)} | {r['active_units']} | "
            f"{encoding(latents['activity'], np.array(r['factor_information']))} | "
            f"{'n/a' if rms is None else f'{rms:.3f}'} | "
            f"{'n/a' if score is None else f'{score:.1f}'} | {r['final_test_elbo']:.1f} |")
    path = folder / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--factors", type=int, nargs="+", choices=list(VARYING),
                        default=list(VARYING))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--size", type=int, choices=(32, 64), default=SIZE,
                        help="image size; a size or budget other than the study's goes to "
                             "its own subfolder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", action="store_true",
                        help="only redraw the figure and summary.md")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    folder = folder_for(args.size, args.steps)
    if args.plot:
        print(plot(folder), summary(folder))
        return 0
    torch.set_num_threads(args.threads)
    folder.mkdir(parents=True, exist_ok=True)
    for config, factors, seed in plan(args.seeds, args.configs, args.factors):
        path = folder / f"{config}_f{factors}_seed{seed}.json"
        if path.exists():
            continue
        record = train_and_measure(config, factors, seed, args.steps, args.quiet, args.size)
        record["command"] = "python " + " ".join(sys.argv)
        path.write_text(json.dumps(record, indent=1) + "\n")
        plot(folder), summary(folder)
        print(f"{config} {factors} factors seed {seed}: informative {record['informative']}, "
              f"active {record['active_units']}, active encoding a factor "
              f"{record['active_dims_encoding_a_factor']}, {record['seconds_total']:.0f} s",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
