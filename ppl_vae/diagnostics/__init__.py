"""Diagnostics of a trained model/guide pair: guide draws, PSIS, ArviZ export, metrics, and
the checks a Bayesian runs beyond the guide's draws.

The pieces, usable alone: :func:`pair_draws` (:func:`collect_draws` with a model and a
guide), :func:`pareto_k`, :func:`to_inference_data`, :func:`posterior_summary`,
:func:`pareto_k_from_netcdf`; the checks :func:`posterior_predictive` with
:func:`check_statistics` (replicated data and test statistics),
:func:`simulation_based_calibration` (SBC of the guide) and :func:`nuts_reference` with
:func:`compare_to_guide` (NUTS on a few examples, laid out as the guide's export).
:func:`diagnose` (a run folder) and :func:`diagnose_pair` (any pair in Python), with
their :class:`Checks`, write the report; they live in :mod:`ppl_vae.reporting.diagnostics`,
which imports these pieces.
"""

from ppl_vae.diagnostics.draws import Draws, collect_draws, global_log_likelihood, pair_draws
from ppl_vae.diagnostics.inference_data import (
    pareto_k_from_netcdf,
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.mcmc import compare_to_guide, nuts_reference
from ppl_vae.diagnostics.predictive import check_statistics, posterior_predictive
from ppl_vae.diagnostics.psis import pareto_k, summarize_k
from ppl_vae.diagnostics.sbc import simulation_based_calibration

__all__ = ["Draws", "check_statistics", "collect_draws", "compare_to_guide",
           "global_log_likelihood", "nuts_reference",
           "pair_draws", "pareto_k", "pareto_k_from_netcdf", "posterior_predictive",
           "posterior_summary", "simulation_based_calibration", "summarize_k",
           "to_inference_data", "write_netcdf"]
