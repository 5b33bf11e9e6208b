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
"""

from __future__ import annotations

import sys
from pathlib import Path

from ppl_vae import runs
from ppl_vae.figures import attempt, run_figures
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
