"""Diagnostics of a trained model/guide pair: ArviZ export, PSIS, latent activity, metrics.

Public entry points: :func:`diagnose` (a run folder) and :func:`diagnose_pair`
(any pair in Python). The pieces are usable alone: :func:`collect_draws`,
:func:`pareto_k`, :func:`to_inference_data`, :func:`posterior_summary`,
:func:`pareto_k_from_netcdf`.
"""

from ppl_vae.diagnostics.draws import Draws, collect_draws
from ppl_vae.diagnostics.inference_data import (
    pareto_k_from_netcdf,
    posterior_summary,
    to_inference_data,
    write_netcdf,
)
from ppl_vae.diagnostics.pipeline import diagnose, diagnose_pair
from ppl_vae.diagnostics.psis import pareto_k, summarize_k

__all__ = ["Draws", "collect_draws", "diagnose", "diagnose_pair", "pareto_k",
           "pareto_k_from_netcdf", "posterior_summary", "summarize_k", "to_inference_data", "write_netcdf"]
