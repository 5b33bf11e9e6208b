"""Simulation-based calibration of a guide (Talts et al. 2018; Säilynoja et al. 2022).

Draw ``M`` simulations from the model itself, ``z_m ~ p(z)`` and ``x_m ~ p(x | z_m)``
(every observed site unconditioned), then ``L`` guide draws ``z_ml ~ q(z | x_m)``.
For each latent dimension ``d`` the rank of the truth among the guide's draws::

    r_md = #{l : z_mld < z_md}   ∈ {0, …, L}

is uniform on ``{0, …, L}`` for every ``m`` when ``q(z | x) = p(z | x)``, since then
``z_m`` and the ``z_ml`` are exchangeable draws of one posterior. A guide too narrow
(over-confident) puts the truth in the tails: a U-shaped rank histogram; too wide,
a hump; biased, a slope. Ties (discrete latents) are broken at random.

The numbers, per dimension, use the randomised probability integral transform
``u_md = (r_md + U(0, 1)) / (L + 1)``, exactly Uniform(0, 1) under calibration:

- a Kolmogorov–Smirnov test of uniformity of ``u_·d``;
- coverage of the central guide interval at level ``a``: the share of
  simulations with ``|u_md - ½| < a/2`` (expected ``a``);
- the ECDF difference ``F̂(u) - u`` with a simultaneous 95 % band from the
  Dvoretzky–Kiefer–Wolfowitz inequality, ``ε = sqrt(log(2/0.05) / (2M))``
  (conservative; it holds for every ``u`` at once).

The verdict is *calibrated* unless some dimension fails the KS test at 5 %
Bonferroni-corrected over the dimensions; a failing guide is called too narrow
or too wide by its coverage at the highest level, and biased by the mean of ``u``.

SBC is defined for amortized guides of local latents: a global site's guide
``q(θ)`` is fitted to the training data, not a function of ``x``, so it cannot be
re-run on simulated data (refused). Every observed site's simulated value reaches
the guide as the pair's data: a site named like one of the pair's inputs becomes
that input; any other site is put back into the entries of ``x`` it observes, found
by running the model on numbered data (:func:`data_places`), so a program with
several observed sites (one per time step of a sequence, ``obs=x[:, t]``, or two
parts of one example) is calibrated as it is written. Masked entries (padding) keep
the template's values. A site whose observation is computed from ``x`` otherwise
(``obs=2 * x``) or is data of the model's own is refused in one line.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from pyro import poutine
from scipy import stats

from ppl_vae.diagnostics.draws import laid_out, pair_draws, pair_of, site_mask
from ppl_vae.errors import PplVaeError
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair
from ppl_vae.traces import runnable

if TYPE_CHECKING:
    from ppl_vae.trained import Run

LEVELS = (0.5, 0.9)
ALPHA = 0.05
CURVE_LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


def simulate(pair: Pair, template: torch.Tensor, inputs: dict) -> tuple[torch.Tensor, dict, dict]:
    """One simulation per row of ``template``: ``(x_sim, inputs_sim, truth)``.

    ``template`` and ``inputs`` give the shapes (and any conditioning input the
    model does not observe); ``truth`` maps each guide site to ``(M, *shape)``,
    NaN where masked. Each observed site's simulated value goes back where the model
    reads its observation: into the input of its name, or into the entries of ``x``
    it observes (:func:`data_places`); entries no site observes, and masked ones,
    keep the template's values.
    """
    nesting, plan = pair.plan(template, inputs)
    if plan.global_sites:
        raise PplVaeError(f"SBC needs a guide that is a function of x, but site(s) "
                          f"{sorted(plan.global_sites)} are global: their q is fitted to the "
                          "training data and cannot be re-run on simulated data")
    if plan.factors:
        raise PplVaeError(f"SBC simulates from the model's generative steps, but its "
                          f"pyro.factor site(s) {[n for n, _ in plan.factors]} reweight the "
                          "joint, so the simulations would not come from it")
    observed = [name for name, _ in plan.observed]
    places = data_places(pair, template, inputs, [n for n in observed if n not in inputs])
    trace = poutine.trace(poutine.uncondition(runnable(pair.model))).get_trace(template,
                                                                             **inputs)
    simulated, x_sim = dict(inputs), template.clone()
    for name in observed:
        value = trace.nodes[name]["value"]
        if name in inputs:
            like = inputs[name]
            if value.numel() != like.numel():
                raise PplVaeError(f"the simulated '{name}' has shape {tuple(value.shape)}, "
                                  f"which cannot be put back as the input's "
                                  f"{tuple(like.shape)}")
            simulated[name] = value.reshape(like.shape).to(like.dtype)
            continue
        index = _broadcast(places[name], value, name)
        mask = site_mask(trace.nodes[name])
        keep = torch.ones_like(index, dtype=torch.bool) if mask is None else mask
        x_sim.view(-1)[index[keep]] = value[keep].to(x_sim.dtype)
    truth = {name: laid_out(trace.nodes[name], nesting, 1)[0] for name, _ in plan.guide}
    return x_sim, simulated, truth


def data_places(pair: Pair, x: torch.Tensor, inputs: dict, names: list[str]
                ) -> dict[str, torch.Tensor]:
    """For each observed site in ``names``, the flat index into ``x`` of each entry of its
    observation (a tensor shaped like the observation).

    The model is run on ``x`` numbered ``0, 1, 2, …`` (entry by entry) and again numbered
    backwards; an observation that is a part of ``x`` (a slice, a step of a sequence, a
    reshape or a gather) reads the same places both times. One that the model computes
    from ``x`` otherwise (scaled, thresholded, multiplied by a mask) does not, and is
    refused in one line: its simulated value cannot be written back into ``x``.
    """
    if not names:
        return {}
    n = x.numel()
    exact = 2 / torch.finfo(x.dtype).eps if x.is_floating_point() else 0
    dtype = x.dtype if n <= exact else torch.float64  # every index a distinct number
    forward = torch.arange(n, dtype=dtype, device=x.device).reshape(x.shape)
    runs = [poutine.trace(runnable(pair.model)).get_trace(numbered, **inputs)
            for numbered in (forward, (n - 1) - forward)]
    places = {}
    for name in names:
        up, down = (run.nodes[name]["value"].double() for run in runs)
        if not _numbered_alike(up, down, n):
            raise PplVaeError(f"SBC hands the guide the simulated observations as its data, "
                              f"but observed site '{name}' is not a part of x (the model "
                              "observes a function of x, or data of its own); observe x or "
                              "parts of it, or pass the observed value as an input "
                              "(fit(..., inputs=[...]))")
        places[name] = up.long()
    return places


def _numbered_alike(up: torch.Tensor, down: torch.Tensor, n: int) -> bool:
    """Whether two observations read the same entries of ``x`` numbered ``0..n-1`` forwards
    (``up``) and backwards (``down``)."""
    if up.shape != down.shape or not torch.equal(up, (n - 1) - down):
        return False
    return bool(torch.equal(up, up.round()) and ((up >= 0) & (up < n)).all())


def _broadcast(index: torch.Tensor, value: torch.Tensor, name: str) -> torch.Tensor:
    """The places of an observation, broadcast to the shape of its simulated value."""
    try:
        return torch.broadcast_to(index, value.shape)
    except RuntimeError:
        raise PplVaeError(f"the simulated '{name}' has shape {tuple(value.shape)}, which "
                          f"cannot be put back as the observation's {tuple(index.shape)}"
                          ) from None


def ranks(truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of ``truth`` ``(M, D)`` among ``draws`` ``(L, M, D)``, ties broken at random."""
    below = (draws < truth).sum(0)
    ties = (draws == truth).sum(0)
    return below + np.floor(rng.random(below.shape) * (ties + 1)).astype(below.dtype)


def calibration(rank: np.ndarray, draws: int, rng: np.random.Generator,
                levels: tuple = LEVELS, names: list[str] | None = None) -> dict:
    """The numbers of the module docstring from ranks ``(M, D)`` out of ``draws`` guide draws.

    Dimensions whose truth is masked (NaN) in a simulation leave that simulation out.
    """
    rank = np.asarray(rank, dtype=np.float64)
    u = (rank + rng.random(rank.shape)) / (draws + 1)
    dims = u.shape[1]
    coverage: dict[str, list] = {f"{a:g}": [] for a in levels}
    ks, curve, mean_u, counts = [], [], [], []
    for d in range(dims):
        column = u[:, d][np.isfinite(u[:, d])]
        counts.append(int(column.size))
        ks.append(float(stats.kstest(column, "uniform").pvalue) if column.size else float("nan"))
        for a in levels:
            coverage[f"{a:g}"].append(float(np.mean(np.abs(column - 0.5) < a / 2)))
        curve.append([float(np.mean(np.abs(column - 0.5) < a / 2)) for a in CURVE_LEVELS])
        mean_u.append(float(column.mean()))
    m = min(counts)
    failing = [d for d in range(dims) if ks[d] < ALPHA / dims]
    out = {
        "simulations": int(rank.shape[0]), "draws": draws, "dimensions": names or
        [str(d) for d in range(dims)], "ks_p_value": ks, "coverage": coverage,
        "coverage_median": {a: float(np.median(v)) for a, v in coverage.items()},
        "coverage_curve": {"levels": list(map(float, CURVE_LEVELS)), "coverage": curve},
        "mean_u": mean_u, "failing_dimensions": failing,
        "band": {"kind": "DKW, simultaneous", "level": 1 - ALPHA,
                 "half_width": math.sqrt(math.log(2 / ALPHA) / (2 * m))},
        "ranks": np.nan_to_num(rank, nan=-1).astype(np.int64).tolist(),
    }
    out["verdict"] = verdict(out, levels)
    return out


def verdict(result: dict, levels: tuple) -> str:
    """One line: calibrated or not, and how (too narrow, too wide, biased)."""
    dims, failing = len(result["ks_p_value"]), result["failing_dimensions"]
    top = f"{max(levels):g}"
    covered = result["coverage_median"][top]
    m = result["simulations"]
    where = (f"nominal {float(top):.0%} intervals cover a median {covered:.0%} over the "
             f"{dims} dimension(s) ({m} simulations × {result['draws']} guide draws)")
    if not failing:
        return (f"calibrated: no dimension's ranks depart from uniform (KS, {ALPHA:.0%} "
                f"Bonferroni over {dims}); {where}")
    slack = 3 * math.sqrt(float(top) * (1 - float(top)) / m)
    shapes = []
    if covered < float(top) - slack:
        shapes.append("too narrow (over-confident: U-shaped ranks)")
    elif covered > float(top) + slack:
        shapes.append("too wide (under-confident: humped ranks)")
    off = [abs(v - 0.5) > 3 * math.sqrt(1 / (12 * m)) for v in result["mean_u"]]
    if any(off):
        shapes.append(f"biased in {sum(off)} dimension(s) (sloped ranks)")
    return (f"miscalibrated: {len(failing)} of {dims} dimension(s) depart from uniform ranks "
            f"(KS, {ALPHA:.0%} Bonferroni); {where}"
            + (f"; the guide is {' and '.join(shapes)}" if shapes else ""))


@torch.no_grad()
def simulation_based_calibration(run: Run | Pair, x: torch.Tensor, simulations: int = 200, draws: int = 99,
                                 inputs: dict | None = None, levels: tuple = LEVELS,
                                 seed: int = 0, budget: int = 8192, quiet: bool = True) -> dict:
    """SBC of the pair's guide; see the module docstring.

    Args:
        run: a :class:`ppl_vae.Run` or :class:`ppl_vae.Pair`.
        x: template examples (their shape; rows cycled to ``simulations``); a model
            conditioning on part of ``x`` conditions on these.
        simulations: M, draws ``(z, x)`` from the model.
        draws: L, guide draws per simulation (ranks take ``L + 1`` values).
        inputs: the pair's per-example inputs for the rows of ``x`` (cycled alike).
        levels: central-interval levels whose coverage is reported.
        seed: seeds the simulations, the guide draws and the tie-breaking.
        budget: most draw-examples alive at once.
        quiet: hide the progress bar.

    Returns:
        ``{"verdict", "sites": {site: numbers of calibration()}, ...}`` where the
        top-level numbers pool every guide site's dimensions.
    """
    pair = pair_of(run)
    for name, value in (("simulations", simulations), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise PplVaeError(f"SBC {name} must be an integer of at least 2, got {value!r}")
    if any(not 0 < a < 1 for a in levels):
        raise PplVaeError(f"SBC levels must lie strictly between 0 and 1, got {levels}")
    device = pair.device
    rows = torch.arange(simulations) % x.shape[0]
    template = x[rows].to(device)
    given = {k: None if v is None else v[rows].to(device) for k, v in (inputs or {}).items()}
    rng = np.random.default_rng(seed)
    with pair.evaluation(), frozen(pair.model, pair.guide), \
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        x_sim, inputs_sim, truth = simulate(pair, template, given)
        drawn = pair_draws(pair, x_sim, draws, budget, quiet, inputs_sim)
    per_site, pooled, names = {}, [], []
    for site, true in truth.items():
        true = true.double().cpu().numpy().reshape(simulations, -1)
        rank = ranks(true, drawn.sites[site].reshape(draws, simulations, -1), rng)
        rank = np.where(np.isnan(true), np.nan, rank)
        labels = [f"{site}[{d}]" for d in range(true.shape[1])]
        per_site[site] = calibration(rank, draws, np.random.default_rng(seed), levels, labels)
        pooled.append(rank)
        names += labels
    result = calibration(np.concatenate(pooled, 1), draws, np.random.default_rng(seed), levels,
                         names)
    return {**result, "sites": {k: {key: v[key] for key in ("verdict", "coverage_median",
                                                            "failing_dimensions")}
                                for k, v in per_site.items()},
            "levels": list(levels), "seed": seed}
