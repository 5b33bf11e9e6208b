"""Guide draws as an ArviZ ``InferenceData``, written as netCDF.

Groups and variables (``S`` draws in one chain, ``N`` examples):

- ``posterior``: every guide site, dims ``(chain, draw, example, <latent dims>)``;
  the primary site's single latent dimension is called ``latent``, other
  dimensions ``<site>_dim_<i>``, each with integer coordinates; a global site
  (outside the ``"data"`` plate) has no ``example`` dim; masked entries are NaN;
- ``sample_stats``: ``log_weight`` = ``log p(x_n, z_s) - log q(z_s | x_n)`` (the
  importance log weights: PSIS is recomputed from the file alone with
  ``az.psislw(idata.sample_stats.log_weight.stack(__sample__=("chain", "draw")))``),
  and its parts ``log_p_x_given_z``, ``log_prior``, ``log_guide`` (with global
  sites only ``log_p_x_given_z``: there is no per-example weight);
- ``posterior_predictive`` (when replicated data are given): every observed site
  replicated from guide draws, ``(chain, draw, example, <dims>)``, and
  ``<site>_mean``, each replicate's mean over its entries (ink per image), so
  ``az.plot_ppc(idata, var_names=["x_mean"])`` and ``az.plot_bpv`` compare something
  meaningful (:mod:`ppl_vae.diagnostics.predictive`); ``observed_data`` then holds
  each observed site as the model sees it and its ``<site>_mean``;
- ``log_likelihood`` (pairs whose latents are all global, when given): ``log p(x_n |
  θ_s)`` per observed site and training example (dim ``observation``), the
  pointwise log-likelihood ``az.loo`` / ``az.waic`` need;
- ``observed_data``: the examples ``x``;
- ``constant_data``: ``test_index`` (row in the test set), and ``factors`` /
  ``labels`` when the dataset has them.

The coordinate ``example`` holds the examples' rows in the test set. Guide
draws are independent, so one chain is the honest layout (ESS ≈ S).

For amortized local latents there is deliberately no ``log_likelihood`` group: these
are draws of a *different* posterior for every example (the amortized guide's ``q(z | x_n)``),
not of one posterior shared by all examples, so ``az.loo`` / ``az.waic`` would
return an elpd that means nothing; they refuse the file ("log likelihood not
found"). What is valid: ``az.summary`` / ``az.plot_forest`` / ``az.plot_pair``
per example (``coords={"example": [...]}``: one example's guide posterior),
``az.psislw`` on ``sample_stats.log_weight`` per example (k̂ of the guide as an
importance proposal for ``p(z | x_n)``) and ``az.plot_khat`` of those k̂.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np

from ppl_vae.diagnostics.draws import Draws
from ppl_vae.diagnostics.predictive import example_means, statistic_name
from ppl_vae.diagnostics.psis import pareto_k
from ppl_vae.errors import PplVaeError

ENGINE = "h5netcdf"  # a dependency of arviz 0.2x: nothing more to install


def site_dims(name: str, shape: tuple, primary: str) -> list[str]:
    """Names of a site's latent dimensions (after ``draw`` and ``example``): ``latent`` for
    the primary site's one dimension (``latent_dim`` when the site itself is called
    ``latent``, as in Pyro's VAE: a variable and a dimension cannot share a name)."""
    if name == primary and len(shape) == 1:
        return ["latent_dim" if name == "latent" else "latent"]
    return [f"{name}_dim_{i}" for i in range(len(shape))]


def to_inference_data(draws: Draws, x: np.ndarray, test_index: np.ndarray, primary: str,
                      factors: np.ndarray | None = None,
                      labels: np.ndarray | None = None, predictive: Draws | None = None,
                      log_likelihood: dict[str, np.ndarray] | None = None
                      ) -> az.InferenceData:
    """Build the ``InferenceData`` of the module docstring (``az.from_dict``).

    Args:
        draws: the guide draws (:func:`ppl_vae.diagnostics.pair_draws`).
        x: the examples ``(N, *event_shape)``.
        test_index: their rows in the test set (the ``example`` coordinate).
        primary: the site whose one dimension is called ``latent``.
        factors: ground-truth factors of the examples, kept in ``constant_data``.
        labels: labels of the examples, kept in ``constant_data``.
        predictive: draws with replicated data (``replicate=True``) for the same examples:
            the ``posterior_predictive`` group.
        log_likelihood: observed site -> ``(S, M)`` pointwise log-likelihood of ``M``
            observations under the posterior draws: the ``log_likelihood`` group.
    """
    dims, coords = {}, {"example": np.asarray(test_index)}
    posterior = {}
    for name, values in {**draws.global_sites, **draws.sites}.items():
        local = name in draws.sites
        names = site_dims(name, values.shape[1 + local:], primary)
        posterior[name] = values[None]
        dims[name] = ["example", *names] if local else names
        coords.update({d: np.arange(size) for d, size in zip(names, values.shape[1 + local:])})
    given = {"log_weight": draws.log_weight, "log_p_x_given_z": draws.log_likelihood,
             "log_prior": draws.log_prior, "log_guide": draws.log_guide}
    stats = {k: v for k, v in given.items() if v is not None}
    for key in stats:
        dims[key] = ["example"]
    observed = {"x": np.asarray(x)}
    groups: dict[str, Any] = {}
    if predictive is not None:
        observed, groups["posterior_predictive"] = _predictive(predictive, dims, coords)
    for name, values in observed.items():
        if name not in dims:
            event = [f"{name}_dim_{i}" for i in range(values.ndim - 1)]
            coords.update({d: np.arange(size) for d, size in zip(event, values.shape[1:])})
            dims[name] = ["example", *event]
    constant = {"test_index": np.asarray(test_index)}
    dims["test_index"] = ["example"]
    if factors is not None:
        constant["factors"] = np.asarray(factors)
        dims["factors"] = ["example", "factor"]
    if labels is not None:
        constant["labels"] = np.asarray(labels)
        dims["labels"] = ["example"]
    idata = az.from_dict(
        posterior=posterior,
        sample_stats={k: v[None] for k, v in stats.items()},
        observed_data=observed,
        constant_data=constant,
        coords=coords, dims=dims, **groups,
    )
    if log_likelihood:  # its own dims: the same site names run over training observations
        idata.add_groups(log_likelihood=az.dict_to_dataset(
            {k: v[None] for k, v in log_likelihood.items()},
            dims={k: ["observation"] for k in log_likelihood}))
    idata.posterior.attrs["primary_site"] = primary
    if draws.log_weight is not None:
        idata.sample_stats.attrs["log_weight"] = "log p(x, z) - log q(z | x), unscaled, nats"
    return idata


def _compact(values: np.ndarray) -> np.ndarray:
    """Binary data (Bernoulli images) as ``uint8``, a quarter of float32's size on disk;
    anything else unchanged."""
    return values.astype(np.uint8) if np.isin(values, (0, 1)).all() else values


def _predictive(predictive: Draws, dims: dict, coords: dict) -> tuple[dict, dict]:
    """``(observed_data, posterior_predictive)`` variables of replicated data, with each
    site's per-example mean; fills ``dims`` and ``coords``."""
    observed, replicated = {}, {}
    taken = set(predictive.replicated) | set(dims)
    for name, values in predictive.replicated.items():
        event = [f"{name}_dim_{i}" for i in range(values.ndim - 2)]
        coords.update({d: np.arange(size) for d, size in zip(event, values.shape[2:])})
        dims[name] = ["example", *event]
        statistic = statistic_name(name, taken)
        dims[statistic] = ["example"]
        replicated[name] = _compact(values)[None]
        observed[name] = _compact(predictive.observed[name])
        replicated[statistic] = example_means(values, 2)[None]
        observed[statistic] = example_means(predictive.observed[name], 1)
    return observed, replicated


def posterior_summary(idata: az.InferenceData, site: str, examples: list | None) -> list[dict]:
    """``az.summary`` (kind ``stats``) of one site for a few examples (None: a global site,
    without an ``example`` dim), as table rows.

    Guide draws are one chain of independent draws: ArviZ's warning that two chains
    are needed for R-hat does not apply, and is silenced for this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Shape validation failed")
        summary = az.summary(idata, var_names=[site], kind="stats",
                             coords=None if examples is None else {"example": examples})
    # a DataFrame (fmt="wide"); arviz's annotation also allows an xarray Dataset
    table = summary.reset_index()  # type: ignore[call-arg]
    return table.rename(columns={"index": "variable"}).to_dict("records")


def write_netcdf(idata: az.InferenceData, path: Path) -> Path:
    """Write ``idata`` to ``path`` (netCDF4 format through h5netcdf)."""
    path = Path(path)
    try:
        idata.to_netcdf(str(path), engine=ENGINE)
    except (OSError, ValueError) as error:
        raise PplVaeError(f"could not write {path}: {error}; check the folder is writable") \
            from None
    return path


def pareto_k_from_netcdf(path: Path) -> np.ndarray:
    """Per-example k̂ recomputed from a written ``posterior.nc`` alone."""
    try:
        idata = az.from_netcdf(str(path), engine=ENGINE)
    except (OSError, ValueError, FileNotFoundError) as error:
        raise PplVaeError(f"cannot read {path} as ArviZ netCDF ({type(error).__name__}); run "
                          "`ppl-vae diagnose` again") from None
    log_weight = idata.sample_stats["log_weight"].stack(__sample__=("chain", "draw"))
    return pareto_k(log_weight.transpose("__sample__", "example").values)
