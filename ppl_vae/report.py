"""After training: evaluate, draw the figures, write ``report.json`` and ``report.md``."""

from __future__ import annotations

import json
from pathlib import Path

from ppl_vae import runs
from ppl_vae.latents import latent_statistics
from ppl_vae.plots import run_figures


def finish_run(run, data, iw_samples: int = 100, examples: int | None = None,
               quiet: bool = True) -> dict:
    """Evaluate ``run`` on (the first ``examples`` of) ``data.test``, write figures and report."""
    folder = Path(run.path)
    test, inputs = data.test[:examples], run.test_inputs(data, examples)
    evaluation = run.evaluate(test, inputs=inputs, iw_samples=iw_samples, quiet=quiet)
    with run.pair.scope():
        x = test.to(run.device)
        figures = run_figures(run.model, run.guide, x, run.metrics, folder / "figures",
                              inputs=inputs, steps=runs.read_metrics(folder, runs.STEPS))
        latents = latent_statistics(run.model, run.guide, x, inputs)
        extra = {}
        for role, program in (("model", run.model), ("guide", run.guide)):
            if hasattr(program, "report"):
                extra[role] = program.report(x, run.model if role == "guide" else run.guide)
            if hasattr(program, "figures"):
                figures += program.figures(x, folder / "figures")
    report = {"config": run.config.to_json(), "final_epoch": run.metrics[-1] if run.metrics else None,
              "evaluation": evaluation, "latents": latents, **{f"{k}_report": v
                                                               for k, v in extra.items()},
              "figures": [f"figures/{f}" for f in figures]}
    runs.write_json(folder / runs.REPORT, report)
    runs.atomic_write(folder / "report.md", lambda f: f.write(markdown(report).encode()))
    return report


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


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
    return [f"| ELBO | {_fmt(evaluation['elbo'])} |",
            f"| IS log-likelihood log p(x) | {_fmt(evaluation['log_likelihood'])} "
            f"{evaluation.get('log_likelihood_note', '')}|",
            f"| reconstruction -E_q log p(x given z) | {_fmt(evaluation['reconstruction'])} |",
            f"| KL(q(z given x) ‖ p(z)) | {_fmt(evaluation['kl'])} |"]


def markdown(report: dict) -> str:
    """A short human-readable summary of ``report``."""
    config, evaluation, latents = report["config"], report["evaluation"], report["latents"]
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
        f"## Latent code (site '{latents['site']}')",
        "",
        f"- active units (Var_x E_q[z_d] > 0.01): {latents['active_units']} of "
        f"{len(latents['activity'])}",
        f"- informative by mean posterior variance < 0.5: {latents['informative_by_variance']}",
        f"- decorrelation of active units: {_fmt(latents['decorrelation_active'])}",
        f"- aggregate posterior q(z): variance entropy {_fmt(latents['variance_entropy'])} "
        f"nats (of at most log K), decorrelation {_fmt(latents['decorrelation_aggregate'])}",
        "",
        *_hook_lines(report),
        "## Figures",
        "",
        *[f"![{Path(f).stem}]({f})" for f in report["figures"]],
        "",
    ]
    return "\n".join(lines)
