"""The stages every report shares, each recording rather than raising what fails.

A :class:`Report` is made for a pair and used inside the pair's scope (eval mode):

1. :meth:`Report.latent_code`: the latent statistics of :mod:`ppl_vae.latents` over
   some examples, and the primary site's posterior means and variances the figures
   need; a guide without moments gets ``{"site": None, "reason": ...}`` instead;
2. :meth:`Report.draw`: figures (:mod:`ppl_vae.figures`), each failure in
   ``figure_errors``;
3. :meth:`Report.ask_hooks`: the numbers of the model's and guide's ``report`` hooks
   (:mod:`ppl_vae.contract`) as ``model_report`` / ``guide_report``, each failure in
   ``hook_errors``;
4. :meth:`Report.outcome`: those entries, to place in the report, which
   :func:`write_report` writes with its markdown.

A failure is ``{"figure" or "hook": name, "error": "Type: first line"}``
(:func:`ppl_vae.figures.attempt`); the rest of the report is still written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ppl_vae import runs
from ppl_vae.contract import pair_hooks
from ppl_vae.figures import attempt
from ppl_vae.latents import pair_moments, pair_statistics, too_few_unpadded
from ppl_vae.pair import Pair

NO_MOMENTS = ("the guide's distribution has no analytic mean/variance; activity statistics "
              "are n/a")


class Report:
    """What a report has gathered so far from its stages: figures, hook numbers, failures."""

    def __init__(self, pair: Pair):
        self.pair = pair
        self.figures: list[str] = []
        self.figure_errors: list[dict] = []
        self.hook_errors: list[dict] = []
        self.hook_reports: dict = {}

    def latent_code(self, x: torch.Tensor, inputs: dict) -> tuple[dict, dict]:
        """``(latents, code)``: the statistics of :func:`ppl_vae.latents.pair_statistics` over
        ``x``, and the primary ``site`` with its ``means`` and ``variances`` as numpy arrays
        ``(n, K)`` for the figures, over the examples without padding at the site, whose
        positions in ``x`` are ``rows`` (``{}`` where the guide has no moments or every example is padding there; the
        statistics are n/a, with their ``reason``, below two such examples)."""
        try:
            site, means, variances = pair_moments(self.pair, x, inputs=inputs)
        except NotImplementedError:
            return {"site": None, "reason": NO_MOMENTS}, {}
        kept = ~means.isnan().any(1)  # padding at the site (NaN) is never drawn
        code = {"site": site, "means": means[kept].double().cpu().numpy(),
                "variances": variances[kept].double().cpu().numpy(),
                "rows": kept.nonzero().squeeze(1).cpu().numpy()} if kept.any() else {}
        if kept.sum() < 2:
            return {"site": site, "reason": too_few_unpadded(site, int(kept.sum()))}, code
        return pair_statistics(self.pair, x, inputs=inputs,
                               moments=(site, means, variances)), code

    def draw(self, figures: Callable[[list[dict]], list[str]]) -> None:
        """Keep the file names ``figures(figure_errors)`` writes (a function of
        :mod:`ppl_vae.figures` that records its failures in the list it is given)."""
        self.figures += figures(self.figure_errors)

    def ask_hooks(self, x: torch.Tensor) -> None:
        """Ask the model's and guide's ``report`` hooks about ``x`` (:func:`hook_numbers`)."""
        self.hook_reports.update(hook_numbers(self.pair.model, self.pair.guide, x,
                                              self.hook_errors))

    def outcome(self, figure_folder: str = "") -> dict:
        """The hooks' numbers, ``figures`` (as ``figure_folder + name``), ``figure_errors``
        and ``hook_errors``: the entries every report ends with."""
        return {**self.hook_reports, "figures": [figure_folder + f for f in self.figures],
                "figure_errors": self.figure_errors, "hook_errors": self.hook_errors}


def hook_numbers(model, guide, x: torch.Tensor, errors: list[dict]) -> dict:
    """``{"model_report": ..., "guide_report": ...}`` from the programs' ``report`` hooks."""
    numbers = {}
    for role, report, other in pair_hooks(model, guide, "report"):
        value = attempt(f"{role}.report", lambda: report(x, other), errors, "hook")
        if value is not None:
            numbers[f"{role}_report"] = value
    return numbers


def write_report(folder: Path, report: dict, markdown: Callable[[dict], str]) -> None:
    """``folder/report.json`` and ``folder/report.md`` (``markdown(report)``), each atomically."""
    runs.write_json(folder / runs.REPORT, report)
    runs.atomic_write(folder / "report.md", lambda f: f.write(markdown(report).encode()))
