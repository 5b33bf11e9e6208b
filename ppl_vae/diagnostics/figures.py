"""Diagnostic figures (PNG); images are drawn with :mod:`ppl_vae.plots`.

Each function writes one file and returns its name, or None when the figure
does not apply (examples that are not images, fewer than two latent
dimensions, ...). ``inputs`` are the per-example keyword inputs of the pair
(``model(x, y=...)``), one row per example of ``x``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import torch

from ppl_vae.plots import image_grid, observation_mean, plt, traversal_grid
from ppl_vae.traces import take

DPI = 80


def attempt(name: str, draw, errors: list[dict]) -> str | None:
    """``draw()``; if it raises, None, with ``{"figure": name, "error": ...}`` in ``errors``.

    The error is its type and the first line of its message (Pyro appends the
    trace's shapes on later lines).

    A figure is never worth the report: the diagnostics go on without it, and
    any figure it left open is closed.
    """
    before = set(plt.get_fignums())
    try:
        return draw()
    except Exception as error:  # any failure of a figure is recorded, not raised
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
        text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        line = f"{type(error).__name__}: {text}" if text else type(error).__name__
        errors.append({"figure": name, "error": line if len(line) <= 300 else line[:297] + "..."})
        return None


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path.name


def reconstructions(model, guide, x: torch.Tensor, folder: Path,
                    inputs: dict | None = None) -> str | None:
    """Inputs over the means of ``p(x | z)`` at ``z ~ q(z | x)``."""
    path = folder / "reconstructions.png"
    recon = observation_mean(model, guide, x, inputs=inputs)
    ok = image_grid(torch.cat([x, recon]), path, 2, "inputs (top), reconstructions (bottom)")
    return path.name if ok else None


def prior_samples(model, guide, x: torch.Tensor, folder: Path, n: int = 32,
                  inputs: dict | None = None) -> str | None:
    """Means of ``p(x | z)`` at ``z ~ p(z)``; with inputs, at those of the first ``n`` examples."""
    path = folder / "prior_samples.png"
    if inputs:
        n = min(n, *(len(v) for v in inputs.values() if v is not None))
    images = observation_mean(model, guide, x[:1].expand(n, *x.shape[1:]), from_prior=True,
                              inputs=take(inputs or {}, slice(0, n)))
    return path.name if image_grid(images, path, 4, "means of p(x|z), z ~ p(z)") else None


def traversals_by_kl(model, guide, x: torch.Tensor, site: str, means: np.ndarray,
                     kl: np.ndarray | None, folder: Path,
                     inputs: dict | None = None) -> str | None:
    """One example's posterior mean with each dimension swept over [-2.5, 2.5].

    Rows are ordered by per-dimension KL (largest first), or by activity
    ``Var_x E_q[z_d]`` when the KL is n/a. The model decodes at the first
    example's inputs (``means[0]`` is that example's).
    """
    path = folder / "traversals_by_kl.png"
    score = kl if kl is not None else means.var(0)
    ok = traversal_grid(model, guide, x, site, torch.as_tensor(means), torch.as_tensor(score),
                        "KL" if kl is not None else "activity", path, inputs=inputs)
    return path.name if ok else None


def correlation_heatmap(corr: np.ndarray, activity: np.ndarray, folder: Path) -> str | None:
    """Correlation matrix of the posterior means; active units marked with *."""
    corr = np.asarray(corr)
    if corr.shape[0] < 2:
        return None
    fig, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [f"{d}{'*' if a > 0.01 else ''}" for d, a in enumerate(activity)]
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title("correlation of E_q[z|x] over test data (* active)", fontsize=9)
    fig.colorbar(image, ax=ax)
    return _save(fig, folder / "correlation.png")


def variance_histogram(variances: np.ndarray, folder: Path) -> str:
    """Histogram of ``log10 Var_q[z_d | x]`` over examples and dimensions."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    logs = np.log10(np.clip(variances, 1e-12, None))
    ax.hist(logs.ravel(), bins=60, color="C0")
    ax.axvline(np.log10(0.5), color="k", ls="--", lw=1, label="0.5")
    ax.set_xlabel("log10 posterior variance Var_q[z_d | x]"), ax.set_ylabel("count")
    ax.legend(fontsize=8)
    return _save(fig, folder / "posterior_variances.png")


def khat_histogram(khat: np.ndarray, folder: Path) -> str:
    """Histogram of per-example Pareto k̂ with the 0.5 and 0.7 thresholds."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    finite = khat[np.isfinite(khat)]
    ax.hist(finite, bins=30, color="C1")
    for threshold in (0.5, 0.7):
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel("Pareto k̂ of log p(x,z) - log q(z|x)"), ax.set_ylabel("examples")
    ax.set_title(f"{np.mean(khat > 0.7):.0%} of {khat.size} examples above 0.7", fontsize=9)
    return _save(fig, folder / "khat.png")


def worst_khat(model, guide, x: torch.Tensor, khat: np.ndarray, worst: list[int],
               folder: Path, inputs: dict | None = None) -> str | None:
    """The examples with the largest k̂ (top) and their reconstructions (bottom)."""
    path = folder / "worst_khat.png"
    examples = x[worst]
    recon = observation_mean(model, guide, examples, inputs=take(inputs or {}, worst))
    title = "largest k̂: " + ", ".join(f"{khat[i]:.2f}" for i in worst)
    return path.name if image_grid(torch.cat([examples, recon]), path, 2, title) else None


def latent_scatter(means: np.ndarray, colours: dict[str, np.ndarray], folder: Path) -> str | None:
    """Posterior means on the two most active dimensions, one panel per label/factor."""
    if means.shape[1] < 2:
        return None
    a, b = np.argsort(-means.var(0))[:2]
    colours = colours or {"none": np.zeros(len(means))}
    fig, axes = plt.subplots(1, len(colours), figsize=(3.2 * len(colours), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], colours.items()):
        points = ax.scatter(means[:, a], means[:, b], c=values, s=4, cmap="viridis")
        ax.set_xlabel(f"z{a}"), ax.set_ylabel(f"z{b}"), ax.set_title(name, fontsize=9)
        fig.colorbar(points, ax=ax)
    return _save(fig, folder / "latent_scatter.png")


def pca_spectrum(explained: list[float] | None, folder: Path) -> str | None:
    """Share of the posterior means' variance per principal component."""
    if not explained:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(range(1, len(explained) + 1), explained, color="C2")
    ax.plot(range(1, len(explained) + 1), np.cumsum(explained), "k.-", label="cumulative")
    ax.set_xlabel("principal component of E_q[z|x]"), ax.set_ylabel("share of variance")
    ax.legend(fontsize=8)
    return _save(fig, folder / "pca_spectrum.png")


def posterior_forest(idata, site: str, examples: list, folder: Path) -> str:
    """ArviZ's own ``plot_forest`` of one site for a few examples."""
    rows = idata.posterior[site].sel(example=examples).isel(chain=0, draw=0).size
    with warnings.catch_warnings():  # arviz 0.23 uses a matplotlib API deprecated in 3.11
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        axes = az.plot_forest(idata, var_names=[site], coords={"example": examples},
                              combined=True, figsize=(6, 0.25 * rows + 1.5))
    fig = np.ravel(axes)[0].figure
    fig.suptitle(f"guide draws of '{site}' for {len(examples)} examples (94% HDI)", fontsize=9)
    return _save(fig, folder / "posterior_forest.png")
