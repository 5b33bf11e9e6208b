"""Every named figure of a run report and of ``ppl-vae diagnose``, made in one place.

What each shows is decided here, from model/guide traces and the numbers of
:mod:`ppl_vae.latents` and the diagnostics; the drawing is
:mod:`ppl_vae.plots`'. Each function writes one PNG into ``folder`` and
returns its file name, or None when the figure does not apply (examples that
are not images, fewer than two latent dimensions, ...). ``inputs`` are the
per-example keyword inputs of the pair (``model(x, y=...)``), one row per
example of ``x``.

- ``reconstructions``: inputs over the means of ``p(x | z)`` at ``z ~ q(z | x)``;
- ``prior_samples``: the means of ``p(x | z)`` at ``z ~ p(z)`` (the model run with
  its observation unconditioned; with inputs, at those of the first examples);
- ``traversals`` / ``traversals_by_kl``: one example's posterior mean with one
  latent dimension swept over [-2.5, 2.5], a row per dimension, rows ordered by
  activity ``Var_x E_q[z_d]`` (Burda et al. 2016) or by KL to the prior;
- ``loss_curve``: training objective and test ELBO, per step when logged;
- ``correlation``, ``posterior_variances``, ``latent_scatter``, ``pca_spectrum``:
  the latent statistics; ``khat``, ``worst_khat``, ``posterior_forest``: PSIS
  and ArviZ;
- the figures models and guides hand over as numbers (``figure_data``,
  :mod:`ppl_vae.contract`).

:func:`attempt` draws one figure and records, rather than raises, its failure:
a figure is never worth the report.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution, constraints

from ppl_vae.contract import Figure, Panel, pair_hooks
from ppl_vae.plots import canvas, draw, image_grid, save
from ppl_vae.traces import OBS_SITE, take

TRAVERSAL_RANGE = 2.5
CATEGORICAL_LEVELS = 10  # a factor with at most this many values is coloured by category


def attempt(name: str, make, errors: list[dict], what: str = "figure"):
    """``make()``; if it raises, None, with ``{what: name, "error": ...}`` in ``errors``.

    The error is its type and the first line of its message (Pyro appends the
    trace's shapes on later lines).
    """
    try:
        return make()
    except NoImage:
        return None
    except Exception as error:  # any failure of a figure is recorded, not raised
        text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        line = f"{type(error).__name__}: {text}" if text else type(error).__name__
        errors.append({what: name, "error": line if len(line) <= 300 else line[:297] + "..."})
        return None


@torch.no_grad()
def as_images(examples: torch.Tensor, image_shape: tuple | None) -> torch.Tensor:
    """Flat examples ``(m, D)`` in the data's image shape (``load(..., flatten=True)``)."""
    if image_shape and examples[0].numel() == math.prod(image_shape):
        return examples.reshape(len(examples), *image_shape)
    return examples


class NoImage(Exception):
    """The model has no single observation ``"x"`` to draw (several observed sites)."""


def observation_site(model, guide, x: torch.Tensor, condition: dict | None = None,
                     from_prior: bool = False, inputs: dict | None = None):
    """The distribution of the observation site, at guide draws, at given latents, or at
    prior draws.

    ``inputs`` (e.g. labels) go to both programs; under ``from_prior`` the
    latents come from the model itself, given those inputs (class-conditional
    samples of a conditional model).
    """
    inputs = inputs or {}
    if from_prior:
        program = model
    elif condition is not None:
        program = poutine.condition(model, data=condition)
    else:
        guide_trace = poutine.trace(guide).get_trace(x, **inputs)
        program = poutine.replay(model, trace=guide_trace)
    node = poutine.trace(program).get_trace(x, **inputs).nodes.get(OBS_SITE)
    if node is None:
        raise NoImage(f"the model observes no single site '{OBS_SITE}'")
    return node["fn"]


def observation_mean(model, guide, x: torch.Tensor, condition: dict | None = None,
                     from_prior: bool = False, inputs: dict | None = None) -> torch.Tensor:
    """Mean of :func:`observation_site`, in ``x``'s shape when the model observes ``x``
    flattened (Pyro's ``x.reshape(-1, 784)``)."""
    mean = observation_site(model, guide, x, condition, from_prior, inputs).mean
    if mean.shape != x.shape and mean.numel() == x.numel():
        mean = mean.reshape(x.shape)
    return mean


def reconstructions(model, guide, x: torch.Tensor, folder: Path,
                    inputs: dict | None = None, image_shape: tuple | None = None,
                    rows: torch.Tensor | None = None, rows_inputs: dict | None = None
                    ) -> str | None:
    """Inputs (top) over the means of ``p(x | z)`` at ``z ~ q(z | x)`` (bottom).

    ``rows``/``rows_inputs``: the whole batch ``x`` was cut from, for a guide with
    parameters sized by its batch (Pyro's full-batch programs), which runs on all of
    it or not at all.
    """
    path = folder / "reconstructions.png"
    try:
        recon = observation_mean(model, guide, x, inputs=inputs)
    except (RuntimeError, ValueError):
        if rows is None or rows.shape[0] == x.shape[0]:
            raise
        recon = observation_mean(model, guide, rows, inputs=rows_inputs)[:x.shape[0]]
    if recon.shape != x.shape:  # the model observes a part of x (a mask): no image to pair
        return None
    ok = image_grid(as_images(torch.cat([x, recon]), image_shape), path, 2,
                    "inputs (top), reconstructions (bottom)")
    return path.name if ok else None


def prior_samples(model, guide, x: torch.Tensor, folder: Path, n: int = 64,
                  inputs: dict | None = None, image_shape: tuple | None = None) -> str | None:
    """Means of ``p(x | z)`` at ``z ~ p(z)``; with inputs, at those of the first ``n`` examples."""
    path = folder / "prior_samples.png"
    if inputs:
        n = min(n, *(len(v) for v in inputs.values() if v is not None))
    images = observation_mean(model, guide, x[:1].expand(n, *x.shape[1:]), from_prior=True,
                              inputs=take(inputs or {}, slice(0, n)))
    ok = image_grid(as_images(images, image_shape), path, 8, "means of p(x|z), z ~ p(z)")
    return path.name if ok else None


def traversals(model, guide, x: torch.Tensor, site: str, means: np.ndarray, score: np.ndarray,
               what: str, folder: Path, name: str = "traversals", steps: int = 9,
               max_rows: int = 10, inputs: dict | None = None,
               image_shape: tuple | None = None) -> str | None:
    """Sweep each dimension of ``means[0]`` over [-2.5, 2.5], a row each, highest ``score`` first.

    A latent whose prior lives on part of the line (Gamma, a simplex) is swept inside
    its support instead: from the 2nd to the 98th percentile of the posterior means
    ``means`` over the examples, per dimension. The model decodes at the first
    example's inputs (``means[0]`` is that example's).
    """
    centres, scores = torch.as_tensor(means).to(x), torch.as_tensor(score)
    order = scores.argsort(descending=True)[:max_rows]
    repeated = {k: None if v is None else v[:1].expand(len(order) * steps, *v.shape[1:])
                for k, v in (inputs or {}).items()}
    low, high = _traversal_range(model, x[:1], site, centres, take(repeated, slice(0, 1)))
    fraction = torch.linspace(0, 1, steps, dtype=x.dtype, device=x.device)
    z = centres[:1].repeat(len(order) * steps, 1)
    for row, dim in enumerate(order):
        z[row * steps:(row + 1) * steps, dim] = low[dim] + fraction * (high[dim] - low[dim])
    images = observation_mean(model, guide, x[:1].expand(z.shape[0], *x.shape[1:]),
                              condition={site: z}, inputs=repeated)
    labels = [f"z{int(d)} ({what} {float(scores[d]):.2f})" for d in order]
    path = folder / f"{name}.png"
    span = f"-{TRAVERSAL_RANGE} to {TRAVERSAL_RANGE}" if bool((low == -TRAVERSAL_RANGE).all()) \
        else "2nd to 98th percentile of the posterior means"
    ok = image_grid(as_images(images, image_shape), path, len(order),
                    f"traversals of '{site}' by {what}, {span}", labels)
    return path.name if ok else None


def _traversal_range(model, x, site: str, means: torch.Tensor, inputs: dict) -> tuple:
    """``(low, high)`` per dimension: ±2.5 on the real line, else inside the support."""
    trace = poutine.trace(poutine.condition(model, data={site: means[:1]})).get_trace(
        x, **inputs)
    if site not in trace.nodes:  # a site the first example does not reach (a short sequence)
        raise NoImage(f"the first example has no site '{site}' to traverse")
    support = cast(TorchDistribution, trace.nodes[site]["fn"]).support  # a sample site's fn
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.real:
        full = torch.full_like(means[0], TRAVERSAL_RANGE)
        return -full, full
    quantiles = torch.quantile(means, torch.tensor([0.02, 0.98]).to(means), dim=0)
    return quantiles[0], quantiles[1]


def loss_curve(metrics: list[dict], folder: Path, steps: list[dict] | None = None) -> str:
    """Training objective and test ELBO (nats per example), per step when ``steps`` are logged.

    With step lines (``fit(log_every=...)``) the objective is drawn per logged
    window and the test ELBO at each epoch's last step; a KL warm-up's scale
    goes on a second axis. Epochs without a test ELBO (``eval_every``) are skipped.
    """
    tested = [m for m in metrics if m.get("test_elbo") is not None]
    if steps:
        series = [([s["step"] for s in steps], [s["train_objective"] for s in steps],
                   "train objective", "-"),
                  ([m.get("step", m["epoch"]) for m in tested],
                   [m["test_elbo"] for m in tested], "test ELBO", "s-")]
        warmup = [([s["step"] for s in steps], [s["warmup_scale"] for s in steps],
                   "KL warm-up scale", ":")] \
            if any(s.get("warmup_scale", 1) < 1 for s in steps) else []
        panel = Panel("curves", series=series, secondary=warmup, xlabel="step",
                      secondary_label="KL warm-up scale", ylabel="nats per example")
    else:
        epochs = [m["epoch"] for m in metrics]
        panel = Panel("curves", xlabel="epoch", ylabel="nats per example", series=[
            (epochs, [m["train_objective"] for m in metrics], "train objective", "o-"),
            ([m["epoch"] for m in tested], [m["test_elbo"] for m in tested], "test ELBO",
             "s-")])
    return draw(Figure("loss_curve", [panel]), folder)


def correlation(corr: np.ndarray, activity: np.ndarray, folder: Path) -> str | None:
    """Correlation matrix of the posterior means over the data; active units marked with *."""
    corr = np.asarray(corr)
    if corr.shape[0] < 2:
        return None
    ticks = [f"{d}{'*' if a > 0.01 else ''}" for d, a in enumerate(activity)]
    return draw(Figure("correlation", [Panel(
        "heatmap", corr, ticks=ticks,
        title="correlation of E_q[z|x] over test data (* active)")]), folder)


def posterior_variances(variances: np.ndarray, folder: Path) -> str:
    """Histogram of ``Var_q[z_d | x]`` over examples and dimensions (log scale)."""
    return draw(Figure("posterior_variances", [Panel(
        "histogram", np.clip(variances, 1e-12, None), log_x=True, lines=(0.5,),
        xlabel="posterior variance Var_q[z_d | x] (dashed: 0.5)", ylabel="count")]), folder)


def khat(khat_values: np.ndarray, folder: Path) -> str:
    """Histogram of per-example Pareto k̂ with the 0.5 and 0.7 thresholds."""
    return draw(Figure("khat", [Panel(
        "histogram", khat_values, lines=(0.5, 0.7), ylabel="examples",
        xlabel="Pareto k̂ of log p(x,z) - log q(z|x)",
        title=f"{np.mean(khat_values > 0.7):.0%} of {khat_values.size} examples above 0.7")]),
        folder)


def worst_khat(model, guide, x: torch.Tensor, khat_values: np.ndarray, test_index: np.ndarray,
               folder: Path, inputs: dict | None = None, n: int = 8,
               image_shape: tuple | None = None) -> str | None:
    """The ``n`` examples with the largest k̂ (top, labelled by test index and k̂) and their
    reconstructions (bottom)."""
    worst = [int(i) for i in np.argsort(-np.nan_to_num(khat_values, nan=np.inf))[:n]]
    recon = observation_mean(model, guide, x[worst], inputs=take(inputs or {}, worst))
    if recon.shape != x[worst].shape:  # the model observes a part of x: no image to pair
        return None
    labels = [f"#{int(test_index[i])}\nk̂ {khat_values[i]:.2f}" for i in worst]
    path = folder / "worst_khat.png"
    ok = image_grid(as_images(torch.cat([x[worst], recon]), image_shape), path, 2,
                    "largest k̂ (test index): examples, reconstructions", column_labels=labels)
    return path.name if ok else None


def latent_scatter(means: np.ndarray, colours: dict[str, np.ndarray], folder: Path) -> str | None:
    """Posterior means on the two most active dimensions, one panel per label/factor.

    A label, or a factor of at most ten values, is coloured by category; others by a
    colour bar.
    """
    if means.shape[1] < 2:
        return None
    a, b = np.argsort(-means.var(0))[:2]
    shown: dict[str, np.ndarray | None] = {**colours} if colours else {"no labels": None}
    panels = [Panel("scatter", means[:, [a, b]], colour=values, title=name,
                    categorical=values is not None and (name == "label" or len(np.unique(values))
                                                        <= CATEGORICAL_LEVELS),
                    xlabel=f"z{a}", ylabel=f"z{b}") for name, values in shown.items()]
    return draw(Figure("latent_scatter", panels), folder)


def pca_spectrum(explained: list[float] | None, folder: Path) -> str | None:
    """Share of the posterior means' variance per principal component, and its running sum."""
    if not explained:
        return None
    return draw(Figure("pca_spectrum", [Panel(
        "bars", explained, cumulative=True, xlabel="principal component of E_q[z|x] (from 0)",
        ylabel="share of variance")]), folder)


def posterior_forest(idata, site: str, examples: list, folder: Path) -> str:
    """ArviZ's own ``plot_forest`` of one site for a few examples (94 % HDI)."""
    import arviz as az

    rows = idata.posterior[site].sel(example=examples).isel(chain=0, draw=0).size
    fig, axes = canvas(1, 6, 0.25 * rows + 1.5)
    with warnings.catch_warnings():  # arviz 0.23 uses a matplotlib API deprecated in 3.11
        warnings.simplefilter("ignore")
        az.plot_forest(idata, var_names=[site], coords={"example": examples}, combined=True,
                       ax=axes[0])
    axes[0].set_title(f"guide draws of '{site}', {len(examples)} examples: 94% HDI", fontsize=9)
    save(fig, folder / "posterior_forest.png")
    return "posterior_forest.png"


def _attempt_all(named: list[tuple[str, Callable[[], str | None]]], errors: list[dict]
                 ) -> list[str]:
    """:func:`attempt` each ``(name, make)``; the file names of those that were written."""
    written = [attempt(name, make, errors) for name, make in named]
    return [w for w in written if w is not None]


def hook_figures(model, guide, x: torch.Tensor, folder: Path, errors: list[dict]) -> list[str]:
    """Draw the figures the model's and the guide's ``figure_data`` hooks hand over."""
    written = []
    for role, figure_data, other in pair_hooks(model, guide, "figure_data"):
        figures = attempt(f"{role}.figure_data", lambda: figure_data(x, other), errors) or []
        written += _attempt_all([(f.name, functools.partial(draw, f, folder)) for f in figures],
                                errors)
    return written


def _moments(site: str | None, means: np.ndarray | None, n: int
             ) -> tuple[str, np.ndarray, np.ndarray]:
    """``(site, means[:n], means.var(0))`` for the traversals, or an error without moments."""
    if site is None or means is None:
        raise ValueError("no posterior moments of a primary latent site to traverse")
    return site, means[:n], means.var(0)


def run_figures(model, guide, x: torch.Tensor, metrics: list[dict], folder: Path,
                site: str | None, means: np.ndarray | None, errors: list[dict],
                inputs: dict | None = None,
                steps: list[dict] | None = None, n: int = 16,
                image_shape: tuple | None = None) -> list[str]:
    """The run report's figures of ``x`` (its first ``n`` for images); the file names written.

    ``site`` and ``means`` are the primary latent site and its posterior means over ``x``
    (None where the pair has none: the traversals are then recorded as failed);
    ``image_shape``: the data's, when its examples are flat vectors.
    """
    folder.mkdir(parents=True, exist_ok=True)
    inputs = inputs or {}
    shown = take(inputs, slice(0, n))
    figures: list[tuple[str, Callable[[], str | None]]] = [
        ("reconstructions", lambda: reconstructions(model, guide, x[:n], folder, shown,
                                                    image_shape, x, inputs)),
        ("prior_samples", lambda: prior_samples(model, guide, x, folder, inputs=inputs,
                                                image_shape=image_shape)),
        ("traversals", lambda: traversals(model, guide, x[:n], *_moments(site, means, n),
                                          "activity", folder, inputs=shown,
                                          image_shape=image_shape)),
    ]
    if metrics:
        figures.append(("loss_curve", lambda: loss_curve(metrics, folder, steps)))
    return _attempt_all(figures, errors) + hook_figures(model, guide, x, folder, errors)


def scatter_colours(data, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The test labels and each ground-truth factor of ``data``, by name; only the test
    examples at ``rows`` where given (those whose posterior means are drawn)."""
    colours = {}
    if getattr(data, "test_labels", None) is not None:
        colours["label"] = data.test_labels.cpu().numpy()
    factors = getattr(data, "test_factors", None)
    if factors is not None:
        names = getattr(data, "factor_names", None) or range(factors.shape[1])
        for j, name in enumerate(names):
            colours[str(name)] = factors[:, j].cpu().numpy()
    return colours if rows is None else {name: values[rows] for name, values in colours.items()}


def diagnostic_figures(model, guide, x: torch.Tensor, inputs: dict, data, idata, khat_values,
                       test_index, latents: dict, code: dict, folder: Path, shown: list,
                       errors: list[dict]) -> list[str]:
    """``diagnose``'s figures; ``x``/``inputs``: the diagnosed examples, ``code``: the primary
    site's ``site``, ``means``, ``variances`` over the whole test set (empty: n/a)."""
    first = take(inputs, slice(0, 16))
    site = idata.posterior.attrs["primary_site"]
    shape = getattr(data, "image_shape", None)
    figures = [
        ("reconstructions", lambda: reconstructions(model, guide, x[:16], folder, first, shape)),
        ("prior_samples", lambda: prior_samples(model, guide, x, folder, inputs=inputs,
                                                image_shape=shape)),
        ("posterior_forest", lambda: posterior_forest(idata, site, shown, folder)),
    ]
    if khat_values is not None:  # None: no per-example importance weight (global sites)
        figures[2:2] = [
            ("khat", lambda: khat(khat_values, folder)),
            ("worst_khat", lambda: worst_khat(model, guide, x, khat_values, test_index, folder,
                                              inputs, image_shape=shape))]
    if code:
        kl = latents["kl_per_dim"]
        score, what = (code["means"].var(0), "activity") if kl is None else (np.asarray(kl), "KL")
        figures += [
            ("traversals_by_kl", lambda: traversals(model, guide, x, code["site"], code["means"],
                                                    score, what, folder, "traversals_by_kl",
                                                    inputs=inputs, image_shape=shape)),
            ("correlation", lambda: correlation(latents["correlation_all"], latents["activity"],
                                                folder)),
            ("posterior_variances", lambda: posterior_variances(code["variances"], folder)),
            ("latent_scatter", lambda: latent_scatter(
                code["means"], scatter_colours(data, code.get("rows")), folder)),
            ("pca_spectrum", lambda: pca_spectrum(latents["pca"]["explained"], folder)),
        ]
    return _attempt_all(figures, errors) + hook_figures(model, guide, x, folder, errors)
