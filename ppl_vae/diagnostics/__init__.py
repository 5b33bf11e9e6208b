"""Diagnostics of a trained model/guide pair: guide draws, PSIS, ArviZ export, metrics.

The pieces, usable alone: :func:`pair_draws` (:func:`collect_draws` with a model and a
guide), :func:`pareto_k`, :func:`to_inference_data`, :func:`posterior_summary`,
:func:`pareto_k_from_netcdf`. :func:`diagnose` (a run folder) and :func:`diagnose_pair`
(any pair in Python), which write the report, live in :mod:`ppl_vae.reporting.diagnostics`;
here are their old names, imported on first use (that module imports these pieces).
"""

from ppl_vae.diagnostics.draws import Draws, collect_draws, pair_draws
from ppl_vae.diagnostics.inference_data import (
    pareto_k_from_netcdf,
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.psis import pareto_k, summarize_k

_REPORTS = ("diagnose", "diagnose_pair")


def __getattr__(name: str):
    """The old names :func:`diagnose` and :func:`diagnose_pair` (:mod:`ppl_vae.reporting.diagnostics`)."""
    if name in _REPORTS:
        from ppl_vae.reporting import diagnostics

        return getattr(diagnostics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Draws", "collect_draws", "diagnose", "diagnose_pair", "pair_draws", "pareto_k",
           "pareto_k_from_netcdf", "posterior_summary", "summarize_k", "to_inference_data",
           "write_netcdf"]
