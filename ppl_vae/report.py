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
                              inputs=inputs)
        latents = latent_statistics(run.model, run.guide, x, inputs)
        extra = {}
        for role, program in (("model", run.model), ("guide", run.guide)):
            if hasattr(program, "report"):
                extra[role] = program.report(x, run.model if role == "guide" else run.guide)
            if hasattr(program, "figures"):
                figures += program.figures(x, folder / "figures")
    report = {"config": run.config, "final_epoch": run.metrics[-1] if run.metrics else None,
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


def markdown(report: dict) -> str:
    """A short human-readable summary of ``report``."""
    config, evaluation, latents = report["config"], report["evaluation"], report["latents"]
    pair = config.get("pair") or {"model": "user-written", "guide": "user-written", "options": {}}
    train = config["train"]
    last = report["final_epoch"] or {}
    lines = [
        f"# Run report: {pair['model']} with guide {pair['guide']}",
        "",
        f"- options: `{json.dumps(pair.get('options', {}))}`",
        *([f"- inputs: {', '.join(config['inputs'])}"] if config.get("inputs") else []),
        f"- data: `{json.dumps(config.get('data'))}`",
        f"- training: {train['elbo']} ({train['particles']} particle(s)), {train['epochs']} epochs,"
        f" batch {train['batch_size']}, lr {train['lr']}, seed {train['seed']},"
        f" device {train['device']}",
        f"- last epoch: objective {_fmt(last.get('train_objective'))}, test ELBO "
        f"{_fmt(last.get('test_elbo'))} nats/example, {_fmt(last.get('examples_per_s'))} "
        "examples/s",
        "",
        f"## Test set ({evaluation['n_examples']} examples, K = {evaluation['iw_samples']})",
        "",
        "| quantity | nats per example |",
        "|---|---|",
        f"| ELBO | {_fmt(evaluation['elbo'])} |",
        f"| IS log-likelihood log p(x) | {_fmt(evaluation['log_likelihood'])} "
        f"{evaluation.get('log_likelihood_note', '')}|",
        f"| reconstruction -E_q log p(x given z) | {_fmt(evaluation['reconstruction'])} |",
        f"| KL(q(z given x) ‖ p(z)) | {_fmt(evaluation['kl'])} |",
        "",
        f"## Latent code (site '{latents['site']}')",
        "",
        f"- active units (Var_x E_q[z_d] > 0.01): {latents['active_units']} of "
        f"{len(latents['activity'])}",
        f"- informative by mean posterior variance < 0.5: {latents['informative_by_variance']}",
        f"- decorrelation of active units: {_fmt(latents['decorrelation_active'])}",
        "",
        *_hook_lines(report),
        "## Figures",
        "",
        *[f"![{Path(f).stem}]({f})" for f in report["figures"]],
        "",
    ]
    return "\n".join(lines)
