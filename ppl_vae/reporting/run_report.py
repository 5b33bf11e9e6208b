"""``finish_run``: the report of a trained run, ``RUN/report.json`` and ``RUN/report.md``.

The run is evaluated on (the first ``examples`` of) its test set
(:func:`ppl_vae.evaluate`); then the shared stages of
:class:`~ppl_vae.reporting.builder.Report` on the same examples: the latent statistics,
the run's figures (:func:`ppl_vae.figures.run_figures`, into ``RUN/figures/``) and the
model's and guide's ``report`` hooks. The text is
:func:`~ppl_vae.reporting.markdown.run_markdown`. A guide without moments gets the reason
in ``latents``, and its traversals are named in ``figure_errors``. Whatever else fails
(the evaluation itself) is named in one line, ``report_error``, in a report holding
what was measured before it, and on stderr: a trained run never ends in a traceback,
and its checkpoint is never touched here.

The evaluation's IS log-likelihood carries its standard error and its trust (Pareto k̂,
importance-sampling ESS; :func:`ppl_vae.diagnostics.psis.trust_summary`), both shown in
``report.md``. :func:`recorded_evaluations` reads back what a run folder holds (this
report's evaluation and ``ppl-vae evaluate``'s), so that ``diagnose`` can say whether it
used the same examples and draws.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ppl_vae import runs
from ppl_vae.figures import attempt, run_figures
from ppl_vae.per_example import FILE, PerExample
from ppl_vae.reporting.builder import Report, write_report
from ppl_vae.reporting.markdown import run_markdown


def finish_run(run, data, iw_samples: int = 100, examples: int | None = None,
               quiet: bool = True) -> dict:
    """Evaluate ``run`` on (the first ``examples`` of) ``data.test``, write figures and report."""
    folder = Path(run.path)
    report = {"config": run.config.to_json(),
              "final_epoch": run.metrics[-1] if run.metrics else None}
    errors: list[dict] = []
    built = attempt("report", lambda: _measure(run, data, iw_samples, examples, quiet, report),
                    errors, "stage")
    if built is None:
        report["report_error"] = errors[0]["error"]
        print(f"ppl-vae: the run's report failed ({report['report_error']}); the trained run "
              f"and its checkpoint are kept in {folder}: try ppl-vae evaluate {folder}",
              file=sys.stderr)
        runs.write_json(folder / runs.REPORT, report)
        return report
    write_report(folder, report, run_markdown)
    return report


def _measure(run, data, iw_samples: int, examples: int | None, quiet: bool,
             report: dict) -> Report:
    """The evaluation and the shared stages, each result placed in ``report`` as it comes."""
    folder = Path(run.path)
    test, inputs = run.evaluation_examples(data, examples)
    report["evaluation"] = run.evaluate(test, inputs=inputs, iw_samples=iw_samples, quiet=quiet)
    report["evaluation"]["split"] = run.evaluation_split
    built = Report(run.pair)
    with run.pair.evaluation():
        x = test.to(run.device)
        latents, code = built.latent_code(x, inputs)
        built.draw(lambda errors: run_figures(
            run.model, run.guide, x, run.metrics, folder / "figures", code.get("site"),
            code.get("means"), errors, inputs=inputs,
            steps=runs.read_metrics(folder, runs.STEPS),
            image_shape=getattr(data, "image_shape", None)))
        built.ask_hooks(x)
    report.update(latents=latents, **built.outcome("figures/"))
    return built


def recorded_evaluations(folder: Path, n_examples: int, draws: int) -> list[dict]:
    """The evaluations a run folder holds, each said against other numbers on the first
    ``n_examples`` test examples with ``draws`` importance samples (``diagnose``'s).

    Returns one dict per source found (``report.json``: the run report's evaluation;
    ``evaluation.json``: ``ppl-vae evaluate``'s) with ``source``, ``split``, ``n_examples``,
    ``iw_samples``, ``log_likelihood``, ``log_likelihood_se``, ``same_examples`` (both
    take the first rows of their split, so the same examples when it is the test split
    and the counts agree), ``same_draws``, and, where ``evaluation_examples.npz`` holds the per-example
    values of these examples, ``log_likelihood_on_these_examples``: the mean of its
    ``log p̂(x_n)`` over them.
    """
    folder, found = Path(folder), []
    for source in (runs.REPORT, "evaluation.json"):
        try:
            recorded = json.loads((folder / source).read_text())
        except (OSError, ValueError):
            continue
        evaluation = recorded.get("evaluation", {}) if source == runs.REPORT else recorded
        if "n_examples" not in evaluation:
            continue
        split = evaluation.get("split", "test")
        entry = {"source": source, "split": split, "n_examples": evaluation["n_examples"],
                 "iw_samples": evaluation.get("iw_samples"),
                 "log_likelihood": evaluation.get("log_likelihood"),
                 "log_likelihood_se": evaluation.get("log_likelihood_se"),
                 "same_examples": split == "test" and evaluation["n_examples"] == n_examples,
                 "same_draws": evaluation.get("iw_samples") == draws}
        if source == "evaluation.json" and split == "test":
            entry.update(_on_these_examples(folder / FILE, entry, n_examples))
        found.append(entry)
    return found


def _on_these_examples(path: Path, entry: dict, n_examples: int) -> dict:
    """``log_likelihood_on_these_examples`` from the per-example file, when it covers them."""
    if not path.exists() or entry["n_examples"] < n_examples:
        return {}
    values = PerExample.load(path)
    if values.log_likelihood is None or values.iw_samples != entry["iw_samples"] \
            or not np.array_equal(values.index[:n_examples], np.arange(n_examples)):
        return {}
    return {"log_likelihood_on_these_examples": float(values.log_likelihood[:n_examples].mean())}
