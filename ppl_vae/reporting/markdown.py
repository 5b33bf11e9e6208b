"""The texts of the reports: :func:`run_markdown` (``RUN/report.md``) and
:func:`diagnostics_markdown` (``RUN/diagnostics/report.md``), each from the dict written
to ``report.json`` beside it, read in a minute. Numbers are shown with two decimals
(``n/a`` where missing); what could not be drawn or asked is listed under the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

from ppl_vae.reporting.checks_markdown import checks_lines

# Locatello et al. 2019, β-VAE on dSprites (read off their figures; large seed variance).
LITERATURE = {"beta_vae": (0.7, 0.9), "factor_vae": (0.5, 0.8), "mig": (0.05, 0.35),
              "dci": (0.05, 0.45)}


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _figures(report: dict) -> list[str]:
    """The figures, then what could not be drawn or asked, with the error of each."""
    errors = [(e.get("figure") or e.get("hook"), e["error"])
              for e in (report.get("figure_errors") or []) + (report.get("hook_errors") or [])]
    lines = ["## Figures", "", *[f"![{Path(f).stem}]({f})" for f in report["figures"]], ""]
    if errors:
        lines += ["Not drawn or not reported (the error of each; the rest of the report is "
                  "complete):", "", *[f"- {name}: `{error}`" for name, error in errors], ""]
    return lines


def _hook_lines(report: dict) -> list[str]:
    """The scalar entries of the model's and guide's own ``report`` hooks, if any."""
    lines = []
    for role in ("model", "guide"):
        entries = {k: v for k, v in (report.get(f"{role}_report") or {}).items()
                   if isinstance(v, (int, float, str)) or v is None}
        if entries:
            lines += [f"## From the {role}", "",
                      *[f"- {k.replace('_', ' ')}: {_fmt(v)}" for k, v in entries.items()], ""]
    return lines


def _evaluation_rows(evaluation: dict) -> list[str]:
    """The test-set table; a point-mass guide has a reconstruction and a regulariser, not a KL."""
    point_mass = "point mass" in (evaluation.get("log_likelihood_note") or "")
    if point_mass:
        return [f"| reconstruction -log p(x given z = code(x)) | "
                f"{_fmt(evaluation['reconstruction'])} |",
                f"| regulariser -log p(code(x)) | {_fmt(evaluation['kl'])} |",
                "| log-likelihood | n/a: a point-mass guide has no density, so no bound |"]
    se = evaluation.get("log_likelihood_se")
    return [f"| ELBO | {_fmt(evaluation['elbo'])} |",
            f"| IS log-likelihood {evaluation.get('log_likelihood_of', 'log p(x)')} | "
            f"{_fmt(evaluation['log_likelihood'])}{'' if se is None else f' ± {se:.2f}'} "
            f"{evaluation.get('log_likelihood_note', '')}|",
            f"| reconstruction -E_q log p(x given z) | {_fmt(evaluation['reconstruction'])} |",
            f"| KL(q(z given x) ‖ p(z)) | {_fmt(evaluation['kl'])} |"]


def trust_line(trust: dict | None) -> list[str]:
    """The trust of an IS estimate in one line (Pareto k̂, ESS), and its warning in bold."""
    if not trust:
        return []
    khat = trust.get("khat_note") or (
        f"k̂ > 0.7 for {trust['khat_share_above_0.7']:.0%} of examples (median "
        f"{_fmt(trust['khat_median'])}, max {_fmt(trust['khat_max'])})")
    line = (f"- trust of the IS log-likelihood: {khat}; importance-sampling ESS mean "
            f"{trust['ess_mean']:.1f}, min {trust['ess_min']:.1f} of {trust['draws']} draws")
    return [line, *([f"- **warning: {trust['warning']}**"] if trust.get("warning") else [])]


def _rms(latents: dict, which: str) -> str:
    """`` (ρ_rms 0.083)``: the off-diagonal RMS correlation beside a decorrelation score
    (``1 / (ρ_rms √(K - 1))``, so compare models on it); empty for older reports."""
    rms = latents.get(f"correlation_rms_{which}")
    return "" if rms is None else f" (ρ_rms {rms:.3f})"


def _no_code(latents: dict) -> list[str]:
    """The latent section without statistics (a guide without moments, a site that is
    padding): why they are n/a."""
    return ["## Latent activity", "", f"- {latents.get('reason')}", ""]


def _code_lines(latents: dict) -> list[str]:
    """The run's latent section: activity, informative dimensions, decorrelation."""
    if latents.get("site") is None or "reason" in latents:
        return _no_code(latents)
    return [
        f"## Latent code (site '{latents['site']}')",
        "",
        f"- active units (Var_x E_q[z_d] > 0.01): {latents['active_units']} of "
        f"{len(latents['activity'])}",
        f"- informative by mean posterior variance < 0.5: {latents['informative_by_variance']}",
        f"- decorrelation of active units: {_fmt(latents['decorrelation_active'])}"
        f"{_rms(latents, 'active')}",
        f"- aggregate posterior q(z): variance entropy {_fmt(latents['variance_entropy'])} "
        f"nats (of at most log K), decorrelation {_fmt(latents['decorrelation_aggregate'])} "
        f"over {latents['decorrelation_aggregate_dims']} active dimensions"
        f"{_rms(latents, 'aggregate')}; of one sampled z "
        f"per example {_fmt(latents['decorrelation_sampled'])} (noise ceiling "
        f"{_fmt(latents['decorrelation_sampled_ceiling'])}){_rms(latents, 'sampled')}",
        "",
    ]


def run_markdown(report: dict) -> str:
    """The text of a run's ``report.md``: what was trained, the test set, the latent code."""
    config, evaluation = report["config"], report["evaluation"]
    pair = config.get("pair") or {"model": "user-written", "guide": "user-written", "options": {}}
    estimator, training = config["estimator"], config["training"]
    schedule, optimizer = config["schedule"], config["optimizer"]
    controls = [f"lr schedule {schedule['lr_schedule']}"]
    if schedule.get("warmup_steps"):
        controls.append(f"KL warm-up over {schedule['warmup_steps']} steps from "
                        f"{schedule['warmup_start']}")
    if optimizer.get("clip_norm"):
        controls.append(f"gradient norm clipped at {optimizer['clip_norm']}")
    if training.get("patience"):
        controls.append(f"early stopping, patience {training['patience']}")
    last = report["final_epoch"] or {}
    lines = [
        f"# Run report: {pair['model']} with guide {pair['guide']}",
        "",
        f"- options: `{json.dumps(pair.get('options', {}))}`",
        *([f"- inputs: {', '.join(config['inputs'])}"] if config.get("inputs") else []),
        f"- data: `{json.dumps(config.get('data'))}`",
        f"- training: {estimator['elbo']} ({estimator.get('particles')} particle(s)), "
        f"{training['epochs']} epochs, batch {training['batch_size']}, lr {optimizer['lr']}, "
        f"seed {training['seed']}, device {config.get('environment', {}).get('device')}; "
        f"{', '.join(controls)}",
        f"- last epoch: objective {_fmt(last.get('train_objective'))}, test ELBO "
        f"{_fmt(last.get('test_elbo'))} nats/example, {_fmt(last.get('examples_per_s'))} "
        "examples/s",
        "",
        f"## Test set ({evaluation['n_examples']} examples, K = {evaluation['iw_samples']})",
        "",
        "| quantity | nats per example |",
        "|---|---|",
        *_evaluation_rows(evaluation),
        "",
        *([] if evaluation.get("log_likelihood_se") is None else [
            "- ± is the standard error over test examples (sd / √N), not the bound's bias"]),
        *trust_line(evaluation.get("log_likelihood_trust")),
        *_uncollapsed(evaluation.get("uncollapsed"), "log_likelihood", "log_likelihood_se"),
        "",
        *_code_lines(report["latents"]),
        *_hook_lines(report),
        *_figures(report),
    ]
    return "\n".join(lines)


def _split_word(settings: dict) -> str:
    """``test``, or ``training`` for a run diagnosed on its training rows."""
    return "training" if settings.get("split") == "train" else "test"


def _psis(psis: dict, split: str = "test") -> list[str]:
    from ppl_vae.diagnostics.psis import CONSTANT_SPREAD  # not at the top: it loads arviz

    if psis.get("khat") is None:
        return ["## Importance weights: Pareto k̂", "", f"- n/a: {psis['note']}", ""]
    q = psis["quantiles"]
    worst = ", ".join(f"#{e} ({_fmt(k, 2)})" for e, k in
                      zip(psis["worst_test_index"], psis["worst_k"]))
    return [
        (f"## Importance weights: Pareto k̂ ({psis['n_examples']} {split} examples, "
         f"{psis['draws']} guide draws each)"),
        "",
        (f"- share of examples with k̂ > 0.7 (unreliable): **{_fmt(psis['share_above_0.7'], 2)}**;"
         f" k̂ > 0.5: {_fmt(psis['share_above_0.5'], 2)}"),
        (f"- k̂ quantiles 5/25/50/75/95 %: {', '.join(_fmt(v, 2) for v in q.values())};"
         f" max {_fmt(psis['max'], 2)}"),
        *([f"- k̂ = -inf: the example's log weights agree within {CONSTANT_SPREAD} nats (the "
           "guide is its posterior), so there is no tail to fit"]
          if min(q.values()) == float("-inf") else []),
        f"- worst examples ({split} index, k̂): {worst}",
        (f"- IS log-likelihood with these draws: {_fmt(psis['is_log_likelihood'], 2)}"
         f"{_se(psis.get('is_log_likelihood_se'))} nats/example (ELBO {_fmt(psis['elbo'], 2)})"),
        *trust_line(psis.get("log_likelihood_trust")),
        *_uncollapsed(psis.get("uncollapsed"), "is_log_likelihood", "is_log_likelihood_se"),
        *([f"- note: {psis['note']}"] if psis.get("note") else []),
    ]


def _uncollapsed(numbers: dict | None, log_p: str, se: str) -> list[str]:
    """The pair as trained, beside its collapsed form: IS log-likelihood, ELBO and trust."""
    if not numbers:
        return []
    return [f"- the pair as trained (auxiliary sites drawn, not integrated out): IS "
            f"log-likelihood {_fmt(numbers[log_p], 2)}{_se(numbers.get(se))}, ELBO "
            f"{_fmt(numbers['elbo'], 2)}",
            *("  " + line for line in trust_line(numbers.get("log_likelihood_trust")))]


def _se(se: float | None) -> str:
    return "" if se is None else f" ± {se:.2f}"


def _evaluations(evaluations: list[dict], settings: dict) -> list[str]:
    """This report's examples against the run's other evaluations: same or not, and why the
    numbers differ."""
    lines = []
    for e in evaluations:
        where = "the run report" if e["source"] == "report.json" else "ppl-vae evaluate"
        split = "" if e.get("split", "test") == "test" else f" {e['split']}"
        same = "the same examples" if e["same_examples"] else (
            f"different examples (the first {e['n_examples']}{split}, not these "
            f"{settings['n_examples']})")
        draws = "" if e["same_draws"] else f", K = {e['iw_samples']} not {settings['draws']}"
        here = e.get("log_likelihood_on_these_examples")
        lines.append(f"- {where} (`{e['source']}`): IS log-likelihood "
                     f"{_fmt(e['log_likelihood'])}{_se(e['log_likelihood_se'])} on {same}"
                     f"{draws}" + ("" if here is None else f"; on these examples {here:.2f}"))
    if any(not (e["same_examples"] and e["same_draws"]) for e in evaluations):
        lines.append("- numbers from other examples or another K differ for that reason "
                     "alone: compare like with like (ppl-vae evaluate --n-examples, "
                     "--iw-samples)")
    return lines


def _latents(latents: dict) -> list[str]:
    if latents.get("site") is None or "reason" in latents:
        return _no_code(latents)
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
         f"{_fmt(latents['decorrelation_active'], 2)}{_rms(latents, 'active')}"),
        (f"- aggregate posterior q(z): variance entropy {_fmt(latents['variance_entropy'], 2)} "
         f"nats, decorrelation {_fmt(latents['decorrelation_aggregate'], 2)} over "
         f"{latents['decorrelation_aggregate_dims']} active dimensions"
         f"{_rms(latents, 'aggregate')}; of one sampled z per "
         f"example {_fmt(latents['decorrelation_sampled'], 2)} (noise ceiling "
         f"{_fmt(latents['decorrelation_sampled_ceiling'], 2)}){_rms(latents, 'sampled')}"),
        f"- KL to the prior per dimension (nats, largest first): {kl_text}",
        "",
    ]


def _summary(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    lines = ["## Guide posterior of a few examples (`az.summary`, kind='stats')", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k], 3) for k in keys) + " |" for r in rows]
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
        lines.append(f"| {title} | {_fmt(value, 3)} | {ref} | {seconds} |")
    return lines + [""]


def diagnostics_markdown(report: dict) -> str:
    """The text of ``RUN/diagnostics/report.md``, read in a minute."""
    settings = report["settings"]
    lines = [
        f"# Diagnostics: {report.get('run') or 'model/guide pair'}",
        "",
        f"- pair: {report['pair']}; guide sites: "
        + ", ".join(f"`{k}` {tuple(v)}" for k, v in report["sites"].items()),
        (f"- {settings['n_examples']} {_split_word(settings)} examples × {settings['draws']} "
         "guide draws; seed "
         f"{settings['seed']}; device {settings['device']}; took "
         f"{report['seconds']['total']:.0f} s"),
        (f"- ArviZ InferenceData: `{report['files']['inference_data']}` "
         "(`arviz.from_netcdf`; log weights in `sample_stats.log_weight`)"),
        "",
        *_psis(report["psis"], _split_word(settings)),
        *_evaluations(report.get("evaluations") or [], settings),
        "",
        *_latents(report["latents"]),
        *_summary(report["posterior_summary"]),
        *checks_lines(report),
        *_disentanglement(report["disentanglement"], report.get("disentanglement_note")),
        *_hook_lines(report),
        *_figures(report),
    ]
    return "\n".join(lines)
