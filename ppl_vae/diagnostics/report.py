"""``report.md``: the diagnostics report in a form a person reads in a minute."""

from __future__ import annotations

from pathlib import Path

# Locatello et al. 2019, β-VAE on dSprites (read off their figures; large seed variance).
LITERATURE = {"beta_vae": (0.7, 0.9), "factor_vae": (0.5, 0.8), "mig": (0.05, 0.35),
              "dci": (0.05, 0.45)}


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _psis(psis: dict) -> list[str]:
    q = psis["quantiles"]
    worst = ", ".join(f"#{e} ({_fmt(k, 2)})" for e, k in
                      zip(psis["worst_test_index"], psis["worst_k"]))
    return [
        (f"## Importance weights: Pareto k̂ ({psis['n_examples']} test examples, "
         f"{psis['draws']} guide draws each)"),
        "",
        (f"- share of examples with k̂ > 0.7 (unreliable): **{_fmt(psis['share_above_0.7'], 2)}**;"
         f" k̂ > 0.5: {_fmt(psis['share_above_0.5'], 2)}"),
        (f"- k̂ quantiles 5/25/50/75/95 %: {', '.join(_fmt(v, 2) for v in q.values())};"
         f" max {_fmt(psis['max'], 2)}"),
        f"- worst examples (test index, k̂): {worst}",
        (f"- IS log-likelihood with these draws: {_fmt(psis['is_log_likelihood'], 2)} "
         f"nats/example (ELBO {_fmt(psis['elbo'], 2)})"),
        *([f"- note: {psis['note']}"] if psis.get("note") else []),
        "",
    ]


def _latents(latents: dict) -> list[str]:
    if latents.get("site") is None:
        return ["## Latent activity", "", f"- {latents.get('reason')}", ""]
    pca, kl = latents["pca"], latents["kl_per_dim"]
    kl_text = latents["kl_per_dim_note"] if kl is None else ", ".join(
        f"z{d}: {kl[d]:.2f}" for d in sorted(range(len(kl)), key=lambda d: -kl[d]))
    return [
        f"## Latent activity (site '{latents['site']}', whole test set)",
        "",
        (f"- active units (Var_x E_q[z_d] > 0.01): **{latents['active_units']}** of "
         f"{len(latents['activity'])}; informative by mean posterior variance < 0.5: "
         f"{latents['informative_by_variance']}"),
        (f"- PCA of posterior means: {pca['components_95']} components for 95 % of the "
         f"variance, {pca['components_99']} for 99 %"),
        (f"- decorrelation of active units ‖diag R‖/‖offdiag R‖: "
         f"{_fmt(latents['decorrelation_active'], 2)}"),
        (f"- aggregate posterior q(z): variance entropy {_fmt(latents['variance_entropy'], 2)} "
         f"nats, decorrelation {_fmt(latents['decorrelation_aggregate'], 2)}"),
        f"- KL to the prior per dimension (nats, largest first): {kl_text}",
        "",
    ]


def _summary(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    lines = ["## Guide posterior of a few examples (`az.summary`, kind='stats')", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in rows]
    return lines + [""]


def _disentanglement(scores: dict | None, note: str | None) -> list[str]:
    if scores is None:
        return ["## Disentanglement", "",
                f"- {note or 'n/a: the dataset has no ground-truth factors'}", ""]
    rows = [("BetaVAE score", "beta_vae", "eval_accuracy"),
            ("FactorVAE score", "factor_vae", "eval_accuracy"),
            ("MIG", "mig", "discrete_mig"),
            ("DCI disentanglement", "dci", "disentanglement"),
            ("DCI completeness", "dci", "completeness"),
            ("DCI informativeness (test accuracy)", "dci", "informativeness_test")]
    lines = [(f"## Disentanglement (points: preset '{scores['preset']}', from "
              f"{scores['source']}; representation E_q[z|x])"), "",
             "| metric | score | β-VAE on dSprites, Locatello et al. 2019 | seconds |",
             "|---|---|---|---|"]
    for title, key, field in rows:
        entry = scores.get(key)
        value = None if entry is None else entry["scores"][field]
        low_high = LITERATURE.get(key) if field in ("eval_accuracy", "discrete_mig",
                                                    "disentanglement") else None
        ref = "" if low_high is None else f"{low_high[0]}–{low_high[1]}"
        seconds = "" if entry is None or field not in ("eval_accuracy", "discrete_mig",
                                                        "disentanglement") else entry["seconds"]
        lines.append(f"| {title} | {_fmt(value)} | {ref} | {seconds} |")
    return lines + [""]


def _figure_errors(errors: list[dict]) -> list[str]:
    if not errors:
        return []
    return ["Not drawn (the error of each; the rest of the report is complete):", "",
            *[f"- {e['figure']}: `{e['error']}`" for e in errors], ""]


def markdown(report: dict) -> str:
    """The text of ``report.md`` for a diagnostics ``report``."""
    settings = report["settings"]
    lines = [
        f"# Diagnostics: {report.get('run') or 'model/guide pair'}",
        "",
        f"- pair: {report['pair']}; guide sites: "
        + ", ".join(f"`{k}` {tuple(v)}" for k, v in report["sites"].items()),
        (f"- {settings['n_examples']} test examples × {settings['draws']} guide draws; seed "
         f"{settings['seed']}; device {settings['device']}; took "
         f"{report['seconds']['total']:.0f} s"),
        (f"- ArviZ InferenceData: `{report['files']['inference_data']}` "
         "(`arviz.from_netcdf`; log weights in `sample_stats.log_weight`)"),
        "",
        *_psis(report["psis"]),
        *_latents(report["latents"]),
        *_summary(report["posterior_summary"]),
        *_disentanglement(report["disentanglement"], report.get("disentanglement_note")),
        "## Figures",
        "",
        *[f"![{Path(f).stem}]({f})" for f in report["figures"]],
        "",
        *_figure_errors(report.get("figure_errors") or []),
    ]
    return "\n".join(lines)
