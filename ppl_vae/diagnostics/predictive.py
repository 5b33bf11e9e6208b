"""Posterior predictive checks: replicated data from the guide's draws, and test statistics.

For each example ``x_n`` and guide draw ``z_s ~ q(z | x_n)`` the model is run again
with its observed sites unconditioned, giving ``x_rep_sn ~ p(x | z_s)``
(:func:`ppl_vae.diagnostics.draws.pair_draws` with ``replicate=True``). A test
statistic ``T`` then compares each example with its replicates through the
posterior predictive p-value (mid-p for ties, since binary data make ties common)::

    p_n = P_s[T(x_rep_sn) > T(x_n)] + ½ P_s[T(x_rep_sn) = T(x_n)]

Statistics that mean something for images and most other data:

- ``mean``: the mean of an example's entries (for binary images the ink per image);
- ``log_lik``: the discrepancy ``T(x, z) = -log p(x | z)``, compared draw by draw
  (``-log p(x_rep_s | z_s)`` against ``-log p(x_n | z_s)``): a p-value near 0 says
  the example is *less* likely under its own reconstruction than the model's own
  replicates are (the decoder does not explain it);
- with labels, the class-wise means of ``mean`` (one p-value per class).

A p-value outside [0.025, 0.975] is *extreme*. Posterior predictive p-values are
not uniform even for a true model (they concentrate near ½), so a share of extreme
values well above 5 % is a warning, and one below it is no proof of fit. Pooled
pixels (``az.plot_ppc`` on ``x`` itself) give two spikes for binary images; use the
``<site>_mean`` variables the export adds (``az.plot_ppc(idata, var_names=["x_mean"])``,
``az.plot_bpv(idata, var_names=["x_mean"])``: the u-values are these p-values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppl_vae.diagnostics.draws import Draws, pair_draws, pair_of
from ppl_vae.errors import PplVaeError

if TYPE_CHECKING:
    from ppl_vae.pair import Pair
    from ppl_vae.trained import Run

EXTREME = 0.025


def posterior_predictive(run: Run | Pair, x: torch.Tensor, draws: int = 100, inputs: dict | None = None,
                         budget: int = 8192) -> Draws:
    """Replicated data for the examples ``x``: every observed site, at ``draws`` guide draws.

    Args:
        run: a :class:`ppl_vae.Run` (``load_run``/``fit``) or a :class:`ppl_vae.Pair`.
        x: examples ``(N, *event_shape)``.
        draws: replicates per example.
        inputs: the pair's per-example keyword inputs, ``N`` rows each.
        budget: most draw-examples alive at once.

    Returns:
        :class:`~ppl_vae.diagnostics.draws.Draws` whose ``replicated[site]`` is
        ``(draws, N, *shape)`` (masked entries NaN), ``observed[site]`` the data as the
        model sees it ``(N, *shape)``, ``replicated_log_likelihood`` and
        ``log_likelihood`` ``log p(x_rep | z_s)`` and ``log p(x | z_s)`` ``(draws, N)``,
        and ``sites`` the guide draws ``z_s`` that made them.
    """
    pair = pair_of(run)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise PplVaeError(f"posterior predictive draws must be an integer of at least 2, got "
                          f"{draws!r}")
    device = pair.device
    inputs = {k: None if v is None else v.to(device) for k, v in (inputs or {}).items()}
    with pair.evaluation(), torch.no_grad():
        return pair_draws(pair, x.to(device), draws, budget, inputs=inputs, replicate=True)


def p_values(replicated: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Mid-p ``P(T_rep > T_obs) + ½ P(T_rep = T_obs)`` over the first axis of ``replicated``.

    ``observed`` broadcasts against ``replicated`` (one value per example, or one per
    draw and example for a discrepancy). NaN where the example is padding throughout
    (no observed or no replicated value).
    """
    above = (replicated > observed).mean(0)
    ties = (replicated == observed).mean(0)
    missing = np.isnan(replicated).all(0) | np.isnan(np.broadcast_to(observed,
                                                                      replicated.shape)).all(0)
    return np.where(missing, np.nan, above + 0.5 * ties)


def example_means(values: np.ndarray, leading: int) -> np.ndarray:
    """The mean over every axis after the first ``leading`` ones, NaN (masked) entries left out."""
    flat = values.reshape(values.shape[:leading] + (-1,)).astype(np.float64)
    if not np.isnan(flat).any():
        return flat.mean(-1)
    counted = np.isfinite(flat).sum(-1)
    total = np.where(np.isfinite(flat), flat, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def finite(values) -> np.ndarray:
    """The finite entries of ``values`` (p-values of padding are NaN)."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _summary(p: np.ndarray) -> dict:
    """Share of extreme p-values and their median over the examples that have one (padding
    throughout has none: NaN), and the p-values themselves."""
    defined = finite(p)
    if not defined.size:
        return {"share_extreme": None, "median": None, "p_values": p.tolist()}
    return {"share_extreme": float(np.mean((defined < EXTREME) | (defined > 1 - EXTREME))),
            "median": float(np.median(defined)), "p_values": p.tolist()}


def check_statistics(draws: Draws, labels: np.ndarray | None = None) -> dict:
    """The test statistics of the module docstring, their p-values and shares of extreme ones.

    Args:
        draws: from :func:`posterior_predictive` (``replicated`` and ``observed`` filled).
        labels: class of each example ``(N,)``, for the class-wise means.

    Returns:
        ``{"mean": {site: {...}}, "log_lik": {...}, "class_means": {site: {...}} | None,
        "draws": S}``; each entry holds ``share_extreme``, ``median`` and ``p_values``
        (per example, or per class with ``classes``, ``observed`` and ``replicated_interval``).
    """
    if not draws.replicated or draws.replicated_log_likelihood is None:
        raise PplVaeError("no replicated data: draw it with posterior_predictive(...) or "
                          "pair_draws(..., replicate=True)")
    out: dict[str, Any] = {"draws": int(draws.replicated_log_likelihood.shape[0]), "mean": {},
           "class_means": None, "extreme_range": [EXTREME, 1 - EXTREME]}
    for site, replicated in draws.replicated.items():
        t_rep = example_means(replicated, 2)
        t_obs = example_means(draws.observed[site], 1)
        out["mean"][site] = {**_summary(p_values(t_rep, t_obs)), "observed": t_obs.tolist()}
        if labels is not None:
            out["class_means"] = {**(out["class_means"] or {}),
                                  site: _class_means(t_rep, t_obs, np.asarray(labels))}
    out["log_lik"] = _summary(p_values(-draws.replicated_log_likelihood,
                                       -draws.log_likelihood))
    return out


def _class_means(t_rep: np.ndarray, t_obs: np.ndarray, labels: np.ndarray) -> dict:
    """Per class: the observed mean of ``T`` over its examples, the replicated 95 % interval,
    and the p-value of that class mean (examples that are padding throughout left out)."""
    classes = np.unique(labels)
    observed = np.array([example_means(t_obs[labels == c], 0) for c in classes])
    replicated = np.stack([example_means(t_rep[:, labels == c], 1) for c in classes], 1)
    p = p_values(replicated, observed)
    return {**_summary(p), "classes": classes.tolist(), "observed": observed.tolist(),
            "replicated_interval": np.quantile(replicated, [0.025, 0.975], axis=0).T.tolist()}


def statistic_name(site: str, taken: set[str]) -> str:
    """The export's variable for a site's per-example mean: ``<site>_mean`` (``<site>__mean``
    when a site already has that name)."""
    name = f"{site}_mean"
    return name if name not in taken else f"{site}__mean"
