"""The old name of the run report's and the diagnostics report's pieces, now in
:mod:`ppl_vae.reporting`: :func:`finish_run` (:mod:`~ppl_vae.reporting.run_report`),
:func:`write_report` and :func:`hook_numbers` (:mod:`~ppl_vae.reporting.builder`),
:func:`run_markdown` and :func:`diagnostics_markdown` (:mod:`~ppl_vae.reporting.markdown`).
"""

from ppl_vae.reporting.builder import hook_numbers, write_report
from ppl_vae.reporting.markdown import LITERATURE, diagnostics_markdown, run_markdown
from ppl_vae.reporting.run_report import finish_run

__all__ = ["LITERATURE", "diagnostics_markdown", "finish_run", "hook_numbers", "run_markdown",
           "write_report"]
