"""What the engine may read off a model and a guide, besides calling them.

A pair is two callables, ``model(x, **inputs)`` and ``guide(x, **inputs)``,
keeping the contract of DESIGN.md (the ``"data"`` plate, the observation
``"x"``, the same latent site names in both). Everything else is optional and
listed here: :class:`ModelHooks` and :class:`GuideHooks` are plain documented lists
(never base classes, never checked with ``isinstance``) of the *only* attributes the
engine reads (through :func:`hook`, which refuses a name they do not list), each with
what it means and who reads it. A plain function provides none of them and gets
every default.

Figures a program wants are handed over as numbers — :class:`Figure` of
:class:`Panel` — and drawn by the engine (:mod:`ppl_vae.figures`), beside the
run report's and the diagnostics' own, with their errors reported like theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


@dataclass
class Panel:
    """One axes of a figure; ``kind`` says which fields are read.

    - ``"histogram"``: ``values`` ``(n, D)``, one column per dimension, counted
      over all entries; columns where ``highlight`` is true stacked in red
      (``legend`` names the two groups); ``lines`` are vertical reference values;
      ``log_x`` bins on a log scale.
    - ``"bars"``: ``values`` ``(D,)``; ``highlight`` colours bars red; ``lines``
      are horizontal; ``cumulative`` adds the running sum; ``ylim``.
    - ``"heatmap"``: ``values`` ``(D, D)`` in [-1, 1] (a correlation matrix);
      ``ticks`` label the dimensions, ``highlight`` colours their labels red.
    - ``"scatter"``: ``values`` ``(n, 2)``, coloured by ``colour`` ``(n,)``:
      one colour per value with a legend when ``categorical``, else a colour bar.
    - ``"curves"``: ``series`` of ``(x, y, label, style)``; ``secondary``
      likewise on a second y axis (``secondary_label``).
    """

    kind: str
    values: Any = None
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    highlight: Any = None
    legend: tuple[str, str] | None = None
    lines: tuple[float, ...] = ()
    log_x: bool = False
    cumulative: bool = False
    ylim: tuple[float, float] | None = None
    ticks: list[str] | None = None
    colour: Any = None
    categorical: bool = False
    series: list = field(default_factory=list)
    secondary: list = field(default_factory=list)
    secondary_label: str = ""


@dataclass
class Figure:
    """A named figure of one or more panels side by side: written as ``{name}.png``."""

    name: str
    panels: list[Panel]
    title: str = ""


class ModelHooks(Protocol):
    """Optional attributes of a model the engine reads.

    Attributes:
        latent_site: the latent site figures, traversals and latent statistics
            describe (default: the guide's last site). Read by
            :func:`ppl_vae.traces.primary_site`.
        default_guide: the registered guide ``ppl_vae.build`` takes when none is
            named (default ``"diagonal"``). Read by :func:`ppl_vae.build`.
        latent_dim, latent_scale: the latent site's size K and the scale on its KL
            term (β; 1 for a plain VAE). Needed, with ``latent_site``, by the stock
            guides (``diagonal``, ``chain``, ``grid``, ``full``, ``iaf``, ``delta``,
            ``denoising``: :func:`ppl_vae.guides.base.single_latent`), which copy the
            scale onto their own site; a model without them brings its own guide.
    """

    latent_site: str
    default_guide: str
    latent_dim: int
    latent_scale: float

    def check_data(self, x: torch.Tensor, name: str) -> None:
        """Raise :class:`ppl_vae.PplVaeError` when ``x`` (a chunk of the ``name``
        split, e.g. "training data") is outside the likelihood's support. Read by
        ``fit`` before training."""

    def report(self, x: torch.Tensor, guide) -> dict:
        """Numbers about the trained model on test examples ``x``; scalars appear in
        ``report.md``, everything in ``report.json`` as ``model_report``. Read by the
        run report and ``diagnose``."""

    def figure_data(self, x: torch.Tensor, guide) -> list[Figure]:
        """Figures of the trained model on ``x``, as numbers; the engine draws them
        into the run's ``figures/`` and the diagnostics folder."""


class GuideHooks(Protocol):
    """Optional attributes of a guide the engine reads.

    ``report(x, model)`` and ``figure_data(x, model)`` as for the model (``guide_report``).
    """

    def collapsed(self, model) -> tuple:
        """``(model_fn, guide_fn)``: the pair with auxiliary sites integrated out in
        closed form (latent sites a subset of the pair's). Evaluation, PSIS and
        posterior moments then measure ``p(x)`` of the model rather than the
        auxiliary proposal. Read by :attr:`ppl_vae.Pair.collapsed`."""

    def report(self, x: torch.Tensor, model) -> dict:
        """As :meth:`ModelHooks.report`."""

    def figure_data(self, x: torch.Tensor, model) -> list[Figure]:
        """As :meth:`ModelHooks.figure_data`."""



def hook(program, role: type, name: str):
    """``program.<name>`` when ``role`` lists it and the program has it, else None.

    The one way the engine reads an optional attribute, so that the lists
    above stay whole.
    """
    listed = set(getattr(role, "__annotations__", {})) | {
        key for key, value in vars(role).items() if callable(value) and not key.startswith("_")}
    if name not in listed:
        raise AttributeError(f"internal: '{name}' is not a hook of {role.__name__} "
                             "(ppl_vae.contract)")
    return getattr(program, name, None)


def pair_hooks(model, guide, name: str) -> list[tuple[str, Callable[..., Any], object]]:
    """``(role, hook, other program)`` for the model's and then the guide's ``name`` hook,
    those present: each hook is called with the other program, ``hook(x, other)``."""
    found = []
    for role, label, program, other in ((ModelHooks, "model", model, guide),
                                        (GuideHooks, "guide", guide, model)):
        function = hook(program, role, name)
        if function is not None:
            found.append((label, function, other))
    return found
