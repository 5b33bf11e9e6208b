"""Drawing primitives: a grid of images, and a :class:`~ppl_vae.contract.Figure` of panels.

Nothing here knows a model: :mod:`ppl_vae.figures` decides what each named
figure shows and hands numbers to :func:`image_grid` and :func:`draw`, and so
do models and guides through their ``figure_data`` hook. Figures are
matplotlib ``Figure`` objects saved straight to PNG, never pyplot's: no backend
is chosen and no window or global figure is ever made.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure as Canvas

from ppl_vae.contract import Figure, Panel

DPI = 80
HIGHLIGHT, OTHER = "C3", "C7"


def _images(x: torch.Tensor) -> torch.Tensor | None:
    """``(n, H, W)`` or ``(n, H, W, 3)`` images from examples, or None if not images."""
    x = x.detach().cpu().float()
    if x.dim() == 4 and x.shape[1] in (1, 3):
        return x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    if x.dim() == 3:
        return x
    side = math.isqrt(x[0].numel())
    return x.reshape(-1, side, side) if side * side == x[0].numel() else None


def image_grid(x: torch.Tensor, path: Path, rows: int, title: str = "",
               row_labels: list[str] | None = None,
               column_labels: list[str] | None = None) -> bool:
    """Save examples ``x`` as a ``rows``-row grid; False when they are not images."""
    images = _images(x)
    if images is None:
        return False
    cols = math.ceil(images.shape[0] / rows)
    fig = Canvas(figsize=(cols * 0.9, rows * 0.9 + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([]), ax.set_yticks([])
        if i < images.shape[0]:
            ax.imshow(images[i].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.axis("off")
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    for c, label in enumerate(column_labels or []):
        axes[0, c].set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=10)
    save(fig, path)
    return True


def canvas(panels: int = 1, width: float = 5.0, height: float = 3.6):
    """A figure of ``panels`` axes side by side, outside pyplot: ``(figure, axes)``."""
    fig = Canvas(figsize=(width, height))
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _histogram(ax, panel: Panel, fig) -> None:
    values = np.asarray(panel.values, dtype=float)
    values = values.reshape(values.shape[0], -1) if values.ndim > 1 else values[:, None]
    finite = values[np.isfinite(values)]
    if panel.log_x:
        low, high = min([finite.min(), *panel.lines]), max([finite.max(), *panel.lines])
        bins: np.ndarray | int = np.logspace(math.log10(low / 1.5), math.log10(high * 1.5), 50)
        ax.set_xscale("log")
    else:
        bins = 30 if finite.size < 2000 else 60
    if panel.highlight is None:
        ax.hist(finite, bins=bins, color="C0")
    else:
        mask = np.asarray(panel.highlight, dtype=bool)
        groups = [values[:, mask].ravel(), values[:, ~mask].ravel()]
        groups = [g[np.isfinite(g)] for g in groups]
        names = panel.legend or ("highlighted", "other")
        ax.hist(groups, bins=bins, stacked=True, color=[HIGHLIGHT, OTHER],
                label=[f"{names[0]} ({int(mask.sum())} dims)", f"{names[1]} "
                       f"({int((~mask).sum())} dims)"])
        ax.legend(fontsize=8)
    for value in panel.lines:
        ax.axvline(value, color="k", ls="--", lw=0.8)


def _bars(ax, panel: Panel, fig) -> None:
    values = np.asarray(panel.values, dtype=float)
    colours = "C2" if panel.highlight is None else \
        [HIGHLIGHT if h else OTHER for h in np.asarray(panel.highlight, dtype=bool)]
    ax.bar(range(len(values)), values, color=colours)
    if panel.cumulative:
        ax.plot(range(len(values)), np.cumsum(values), "k.-", label="cumulative")
        ax.legend(fontsize=8)
    for value in panel.lines:
        ax.axhline(value, color="k", ls="--", lw=0.8)


def _heatmap(ax, panel: Panel, fig) -> None:
    values = np.asarray(panel.values, dtype=float)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    ticks = panel.ticks or [str(d) for d in range(values.shape[0])]
    ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
    ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
    if panel.highlight is not None:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            for label, on in zip(labels, np.asarray(panel.highlight, dtype=bool)):
                label.set_color(HIGHLIGHT if on else OTHER)
    fig.colorbar(image, ax=ax)


def _scatter(ax, panel: Panel, fig) -> None:
    points = np.asarray(panel.values, dtype=float)
    colour = np.zeros(len(points)) if panel.colour is None else np.asarray(panel.colour)
    if panel.categorical:
        levels = np.unique(colour)
        palette = matplotlib.colormaps["tab10" if len(levels) <= 10 else "tab20"]
        for i, level in enumerate(levels):
            chosen = colour == level
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=palette(i % palette.N),
                       label=f"{level:g}" if np.issubdtype(type(level), np.number) else level)
        ax.legend(fontsize=6, markerscale=2, ncol=2 if len(levels) > 5 else 1)
    else:
        drawn = ax.scatter(points[:, 0], points[:, 1], c=colour, s=4, cmap="viridis")
        fig.colorbar(drawn, ax=ax)


def _curves(ax, panel: Panel, fig) -> None:
    for x, y, label, style in panel.series:
        ax.plot(x, y, style, lw=1, label=label)
    ax.legend(loc="lower right", fontsize=8)
    if panel.secondary:
        other = ax.twinx()
        for x, y, label, style in panel.secondary:
            other.plot(x, y, style, color="grey", label=label)
        other.set_ylabel(panel.secondary_label, color="grey")


# panel kind -> (width in inches, drawing function)
_KINDS = {"histogram": (5, _histogram), "bars": (5, _bars), "heatmap": (4.8, _heatmap),
          "scatter": (3.4, _scatter), "curves": (6, _curves)}


def draw(figure: Figure, folder: Path) -> str:
    """Draw ``figure``'s panels side by side into ``folder/{name}.png``; returns the file name."""
    unknown = [p.kind for p in figure.panels if p.kind not in _KINDS]
    if unknown:
        raise ValueError(f"panel kind '{unknown[0]}' is not one of {', '.join(_KINDS)} "
                         "(ppl_vae.contract.Panel)")
    fig, axes = canvas(len(figure.panels), sum(_KINDS[p.kind][0] for p in figure.panels))
    for ax, panel in zip(axes, figure.panels):
        _KINDS[panel.kind][1](ax, panel, fig)
        ax.set_xlabel(panel.xlabel), ax.set_ylabel(panel.ylabel)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        if panel.title:
            ax.set_title(panel.title, fontsize=9)
    if figure.title:
        fig.suptitle(figure.title, fontsize=10)
    path = Path(folder) / f"{figure.name}.png"
    save(fig, path)
    return path.name
