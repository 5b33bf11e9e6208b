"""Diagnostics of a trained model/guide pair: guide draws, PSIS, ArviZ export, metrics.

The pieces, usable alone: :func:`pair_draws` (:func:`collect_draws` with a model and a
guide), :func:`pareto_k`, :func:`to_inference_data`, :func:`posterior_summary`,
:func:`pareto_k_from_netcdf`. The report that puts them together (``diagnose`` for a run
folder, ``diagnose_pair`` for any pair in Python) is :mod:`ppl_vae.reporting.diagnostics`,
which imports these pieces.
"""

from ppl_vae.diagnostics.draws import Draws, collect_draws, pair_draws
from ppl_vae.diagnostics.inference_data import (
    pareto_k_from_netcdf,
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.psis import pareto_k, summarize_k

__all__ = ["Draws", "collect_draws", "pair_draws", "pareto_k", "pareto_k_from_netcdf",
           "posterior_summary", "summarize_k", "to_inference_data", "write_netcdf"]
