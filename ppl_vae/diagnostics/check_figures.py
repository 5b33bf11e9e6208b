"""The figures of the Bayesian checks: predictive check, calibration, NUTS against the guide.

Each function takes the numbers its check computed, writes one PNG into ``folder``
with :mod:`ppl_vae.plots`' canvas, and returns the file name:

- ``ppc.png`` (:mod:`~ppl_vae.diagnostics.predictive`): one row per observed site: the
  distribution over examples of the site's per-example mean (ink) observed against
  replicates; the histograms of the per-example p-values, extreme ranges shaded (the
  joint ``-log p(obs | z)`` discrepancy in the first row); the class-wise means (observed
  dot, replicated 95 % interval) where labels exist, else each example's observed mean
  against its replicated interval; with more than ``MAX_SITE_ROWS`` observed sites (a
  sequence's steps), one row with every site along its axis: the mean over examples
  observed against replicated, the share of extreme p-values per site, and the joint
  discrepancy's p-values;
- ``sbc.png`` (:mod:`~ppl_vae.diagnostics.sbc`): ECDF differences ``F̂(u) - u`` of every
  latent dimension inside the simultaneous 95 % band; the rank histogram pooled over
  dimensions with the 95 % band of a uniform count per bin; coverage of central
  intervals against their nominal level;
- ``nuts_vs_guide.png`` (:mod:`~ppl_vae.diagnostics.mcmc`): per example (rows) and
  latent dimension (columns), the guide's and NUTS's marginal histograms overlaid.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from scipy import stats

from ppl_vae.diagnostics.predictive import EXTREME, example_means, finite
from ppl_vae.plots import canvas, save

MAX_CURVES = 20
MAX_ROWS, MAX_COLUMNS = 4, 6
MAX_SITE_ROWS = 6  # observed sites drawn a row each; more share one row of panels


def ppc_figure(checks: dict, replicated_means: dict[str, np.ndarray], folder: Path) -> str:
    """``ppc.png``: one row of panels per observed site; ``replicated_means`` maps each site
    to its per-example means ``(S, N)`` (:func:`~ppl_vae.diagnostics.predictive.example_means`).

    The discrepancy ``-log p(x | z)`` is one p-value per example over every observed site
    together, so it is drawn in the first row only. With more than ``MAX_SITE_ROWS`` sites
    (a sequence's steps) every site is one position along a shared axis instead.
    """
    sites = list(replicated_means)
    if len(sites) > MAX_SITE_ROWS:
        fig, axes = canvas(3, width=14.0, height=3.8)
        _ppc_sites(axes, checks, replicated_means)
    else:
        fig = canvas(1, width=14.0, height=3.8 * len(sites))[0]
        fig.clear()
        rows = fig.subplots(len(sites), 3, squeeze=False)
        for row, site in enumerate(sites):
            _ppc_row(rows[row], checks, replicated_means[site], site, joint=row == 0,
                     together=" (all sites)" if len(sites) > 1 else "")
    save(fig, folder / "ppc.png")
    return "ppc.png"


def _ppc_sites(axes, checks: dict, replicated_means: dict[str, np.ndarray]) -> None:
    """Every observed site along one axis (a sequence's steps): the mean over examples
    observed against its replicated 95 % interval; the share of extreme p-values per site;
    the joint discrepancy's p-values."""
    sites = list(replicated_means)
    position = np.arange(len(sites))
    observed = [float(example_means(np.asarray(checks["mean"][s]["observed"], float), 0))
                for s in sites]
    interval = np.array([np.nanquantile(example_means(replicated_means[s], 1), [0.025, 0.975])
                         for s in sites])
    axes[0].vlines(position, interval[:, 0], interval[:, 1], color="C0", linewidth=3,
                   alpha=0.5, label="replicated 95 %")
    axes[0].plot(position, observed, "k.", label="observed")
    axes[0].set(title=f"mean over examples, {len(sites)} observed sites",
                xlabel="observed site", ylabel="mean of the entries")
    shares = [checks["mean"][s]["share_extreme"] for s in sites]
    axes[1].bar(position, [np.nan if v is None else v for v in shares], color="C0", alpha=0.7)
    axes[1].axhline(2 * EXTREME, color="C3", linewidth=1, label="5 % (uniform p)")
    axes[1].set(title="share of extreme p-values of each site's mean", xlabel="observed site",
                ylabel="share of examples", ylim=(0, 1))
    every = max(1, len(sites) // 12)
    for ax in axes[:2]:
        ax.set_xticks(position[::every], sites[::every], rotation=45, fontsize=6)
        ax.legend(fontsize=8)
    grid = np.linspace(0, 1, 21)
    axes[2].hist(finite(checks["log_lik"]["p_values"]), bins=grid, alpha=0.6, color="C1",
                 label=f"{_share(checks['log_lik']['share_extreme'])} extreme")
    for edge in (0, 1 - EXTREME):
        axes[2].axvspan(edge, edge + EXTREME, color="C3", alpha=0.15)
    axes[2].set(title="p-values of -log p(obs | z), all sites together", xlabel="p",
                ylabel="examples")
    axes[2].legend(fontsize=8)


def _ppc_row(axes, checks: dict, replicated_means: np.ndarray, site: str, joint: bool,
             together: str = "") -> None:
    """The three panels of one observed site: means observed against replicated, p-values,
    class-wise means (or per-example intervals without labels)."""
    entry = checks["mean"][site]
    observed = np.asarray(entry["observed"], dtype=float)
    low = np.nanmin([np.nanmin(observed), np.nanmin(replicated_means)])
    high = np.nanmax([np.nanmax(observed), np.nanmax(replicated_means)])
    bins = np.linspace(low, high, 30) if high > low else 10
    for s in range(min(20, replicated_means.shape[0])):
        axes[0].hist(replicated_means[s][np.isfinite(replicated_means[s])], bins=bins,
                     histtype="step", density=True, color="C0", alpha=0.25,
                     label="replicated" if s == 0 else None)
    axes[0].hist(observed[np.isfinite(observed)], bins=bins, histtype="step", density=True,
                 color="k", linewidth=2, label="observed")
    axes[0].set(title=f"mean of '{site}' per example", xlabel="mean of the entries",
                ylabel="density")
    axes[0].legend(fontsize=8)

    grid = np.linspace(0, 1, 21)
    axes[1].hist(finite(entry["p_values"]), bins=grid, alpha=0.6, color="C0",
                 label=f"mean of '{site}': {_share(entry['share_extreme'])} extreme")
    if joint:
        axes[1].hist(finite(checks["log_lik"]["p_values"]), bins=grid, alpha=0.6, color="C1",
                     label=f"-log p(obs|z){together}: "
                           f"{_share(checks['log_lik']['share_extreme'])} extreme")
    for edge in (0, 1 - EXTREME):
        axes[1].axvspan(edge, edge + EXTREME, color="C3", alpha=0.15)
    axes[1].set(title=f"posterior predictive p-values ('{site}')", xlabel="p",
                ylabel="examples")
    axes[1].legend(fontsize=8)

    classes = (checks.get("class_means") or {}).get(site)
    if classes is not None:
        position = np.arange(len(classes["classes"]))
        interval = np.asarray(classes["replicated_interval"])
        axes[2].vlines(position, interval[:, 0], interval[:, 1], color="C0", linewidth=4,
                       alpha=0.5, label="replicated 95 %")
        axes[2].plot(position, classes["observed"], "ko", label="observed")
        axes[2].set_xticks(position, [str(c) for c in classes["classes"]])
        axes[2].set(title=f"class-wise means of '{site}' ({_share(classes['share_extreme'])} "
                          "extreme)", xlabel="class", ylabel=f"mean of '{site}'")
    else:
        order = np.argsort(observed)[:60]
        interval = np.nanquantile(replicated_means[:, order], [0.025, 0.975], axis=0)
        axes[2].vlines(np.arange(order.size), interval[0], interval[1], color="C0",
                       linewidth=3, alpha=0.5, label="replicated 95 %")
        axes[2].plot(np.arange(order.size), observed[order], "k.", label="observed")
        axes[2].set(title=f"'{site}' per example (sorted by observed)", xlabel="example",
                    ylabel=f"mean of '{site}'")
    axes[2].legend(fontsize=8)


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def sbc_figure(result: dict, folder: Path) -> str:
    """``sbc.png`` from :func:`ppl_vae.diagnostics.sbc.simulation_based_calibration`."""
    rank = np.asarray(result["ranks"], dtype=float)
    rank[rank < 0] = np.nan
    draws, names = result["draws"], result["dimensions"]
    fig, axes = canvas(3, width=14.0, height=3.8)
    grid = np.linspace(0, 1, 101)
    u = (rank + 0.5) / (draws + 1)
    for d in range(min(MAX_CURVES, u.shape[1])):
        column = np.sort(u[:, d][np.isfinite(u[:, d])])
        axes[0].plot(grid, np.searchsorted(column, grid, side="right") / column.size - grid,
                     linewidth=1, alpha=0.7,
                     color="C3" if d in result["failing_dimensions"] else "C0")
    band = result["band"]["half_width"]
    axes[0].fill_between(grid, -band, band, color="0.85", zorder=0,
                         label=f"simultaneous {result['band']['level']:.0%} band (DKW)")
    axes[0].axhline(0, color="k", linewidth=0.5)
    axes[0].set(title=f"ECDF difference, {len(names)} dims (red: fail)",
                xlabel="normalised rank u", ylabel="F(u) - u")
    axes[0].legend(fontsize=8)

    bins = min(20, draws + 1)
    finite = u[np.isfinite(u)]
    counts, edges = np.histogram(finite, bins=bins, range=(0, 1))
    expected = finite.size / bins
    low, high = stats.binom.ppf([0.025, 0.975], finite.size, 1 / bins)
    axes[1].bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0", alpha=0.7)
    axes[1].axhspan(low, high, color="0.85", zorder=0, label="95 % of a uniform count")
    axes[1].axhline(expected, color="k", linewidth=0.5)
    axes[1].set(title="rank histogram, pooled over dimensions", xlabel="normalised rank",
                ylabel="count")
    axes[1].legend(fontsize=8)

    curve = result["coverage_curve"]
    levels, covered = np.asarray(curve["levels"]), np.asarray(curve["coverage"])
    for d in range(min(MAX_CURVES, covered.shape[0])):
        axes[2].plot(levels, covered[d], color="C0", alpha=0.4, linewidth=1)
    axes[2].plot(levels, np.median(covered, 0), color="C0", linewidth=2.5, label="median dim")
    axes[2].plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    axes[2].set(title="coverage of central guide intervals", xlabel="nominal level",
                ylabel="share of simulations covered", xlim=(0, 1), ylim=(0, 1))
    axes[2].legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(result["verdict"], 160)), fontsize=8)
    save(fig, folder / "sbc.png")
    return "sbc.png"


def nuts_figure(guide_idata, nuts_idata, site: str, folder: Path) -> str:
    """``nuts_vs_guide.png``: marginals of ``site`` per example (rows) and dimension."""
    examples = nuts_idata.posterior["example"].values[:MAX_ROWS]
    nuts = nuts_idata.posterior[site].sel(example=examples)
    guide = guide_idata.posterior[site].sel(example=examples)
    flat_nuts = nuts.values.reshape(-1, len(examples), int(np.prod(nuts.shape[3:], dtype=int)))
    flat_guide = guide.values.reshape(-1, len(examples), flat_nuts.shape[2])
    columns = min(MAX_COLUMNS, flat_nuts.shape[2])
    fig = canvas(1, width=2.3 * columns, height=1.9 * len(examples))[0]
    fig.clear()
    axes = fig.subplots(len(examples), columns, squeeze=False)
    for row, example in enumerate(examples):
        for d in range(columns):
            ax = axes[row, d]
            both = np.concatenate([flat_guide[:, row, d], flat_nuts[:, row, d]])
            bins = np.linspace(np.nanmin(both), np.nanmax(both), 30)
            ax.hist(flat_guide[:, row, d], bins=bins, density=True, alpha=0.5, color="C0",
                    label="guide")
            ax.hist(flat_nuts[:, row, d], bins=bins, density=True, histtype="step",
                    color="C1", linewidth=1.5, label="NUTS")
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.set_title(f"{site}[{d}]", fontsize=8)
            if d == 0:
                ax.set_ylabel(f"example {example}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    save(fig, folder / "nuts_vs_guide.png")
    return "nuts_vs_guide.png"
