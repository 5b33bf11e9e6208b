"""Guide draws, importance log weights and per-dimension KL for a few examples.

One pass of :func:`ppl_vae.traces.log_weights` per chunk gives, for ``S`` draws
``z_s ~ q(z | x_n)`` of each example::

    log w_sn = log p(x_n | z_s) + log p(z_s) - log q(z_s | x_n)

and, recorded on the way by a small messenger around the guide and around the
model, every guide site's value and distribution and every prior site's
distribution. Values come back as ``(S, N, *latent shape)``: the particle axis,
the ``"data"`` plate's axis, then any other plate of the site and its event
dimensions. Per-example inputs (``model(x, y=...)``) go to both programs, the
rows of each chunk with its examples.

With ``replicate=True`` the same pass also draws replicated data: the model is
run again on the guide's draws with every observed site unconditioned
(``poutine.uncondition`` over ``poutine.replay``), so ``x_rep_sn ~ p(x | z_sn)``
for every observed site, jointly when one observed site depends on another.
These are the posterior predictive draws of :mod:`ppl_vae.diagnostics.predictive`.

Masked entries (``poutine.mask`` or ``dist.mask``: the padding of sequences) are
NaN in the site draws and in the replicated data, so no statistic is taken from
padding; their log-densities are already zero.

Three kinds of pair need a word:

- sites outside the ``"data"`` plate (global latents) couple the examples:
  there is no per-example weight ``w_sn``. Their draws come without an example
  axis (``Draws.global_sites``, ``(S, *shape)``), the local sites' draws per
  example given the same global draw, one particle at a time over every example
  at once; ``log_weight``, ``log_prior``, ``log_guide`` and the KL are ``None``
  (PSIS is not defined) and ``log_likelihood`` is ``log p(x_n | z_sn, θ_s)``;
- discrete sites marked for enumeration are *sampled* here, not summed:
  a guide site ``y`` is drawn from ``q(y | x)`` and counted in ``log q`` and
  ``log p``; a model-only site ``c`` (the guide does not sample it) is drawn
  from its prior conditional ``p(c | ...)`` when the model is replayed, and
  ``log p(c | ...)`` is then added to ``log q`` too, since it is part of the
  proposal. Both give a valid importance sampler of ``p(x)`` over ``(z, y, c)``,
  noisier than the exact sum of :mod:`ppl_vae.enumeration` (``ppl-vae evaluate``).

Per-dimension KL (a Monte Carlo estimate over the same draws)::

    KL_d = E_n E_{q(z|x_n)} [ log q_d(z_d | x_n) - log p_d(z_d) ]

exists when the guide and the prior site are both ``Independent`` over
univariate base distributions (``Normal(...).to_event(1)``): ``q_d`` and
``p_d`` are the base distributions' ``log_prob`` per element. Otherwise the
dimensions are not separable and the entry is ``None`` (n/a). The scale of a
site (β) is ignored: these are the unscaled densities. The mean is over the
entries that count: padding (masked entries) is left out of it, not counted as 0.

:func:`pair_draws` takes the :class:`~ppl_vae.Pair`; :func:`collect_draws` is its
``(model, guide)`` form, for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from pyro import poutine
from pyro.distributions import Distribution, MaskedDistribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent
from tqdm.auto import tqdm

from ppl_vae.chunks import chunks
from ppl_vae.errors import PplVaeError
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair

if TYPE_CHECKING:
    from ppl_vae.trained import Run

from ppl_vae.traces import (
    DATA_PLATE,
    PARTICLE_PLATE,
    Plan,
    is_global,
    log_weights,
    particle_plate,
    particle_traces,
    per_example,
    take,
)


class _Record(Messenger):
    """Keep each sample site's message (value, fn, plates) as it leaves the program."""

    def __init__(self):
        super().__init__()
        self.sites: dict[str, dict] = {}

    def _postprocess_message(self, msg) -> None:
        if msg["type"] == "sample" and not site_is_subsample(msg):
            self.sites[msg["name"]] = msg


@dataclass
class Draws:
    """Per-example results of :func:`collect_draws`, numpy, draws first.

    Attributes:
        sites: guide site name -> draws ``(S, N, *latent shape)``, in guide order
            (sites inside the ``"data"`` plate); masked entries NaN.
        log_weight: ``log p(x, z) - log q(z | x)``, ``(S, N)``; None with global sites.
        log_likelihood: ``log p(x | z)``, ``(S, N)``.
        log_prior: ``log p(z)``, ``(S, N)``; None with global sites.
        log_guide: ``log q(z | x)``, ``(S, N)`` (the proposal's density: with a
            model-only enumerated site, its prior term too; see the module docstring);
            None with global sites.
        kl_per_dim: site -> per-dimension KL ``(D,)`` averaged over draws and
            examples, or None where the dimensions are not separable.
        global_sites: guide sites outside the ``"data"`` plate -> draws ``(S, *shape)``.
        replicated: observed site -> replicated data ``(S, N, *shape)`` (``replicate=True``).
        replicated_log_likelihood: ``log p(x_rep | z)``, ``(S, N)`` (``replicate=True``).
        observed: observed site -> the data as the model sees it ``(N, *shape)``, laid
            out like ``replicated`` (``replicate=True``).
        pointwise: observed site -> ``log p(x_n | z_sn)`` ``(S, N)``, with global sites.
    """

    sites: dict[str, np.ndarray]
    log_weight: np.ndarray | None
    log_likelihood: np.ndarray
    log_prior: np.ndarray | None
    log_guide: np.ndarray | None
    kl_per_dim: dict[str, np.ndarray | None] = field(default_factory=dict)
    global_sites: dict[str, np.ndarray] = field(default_factory=dict)
    replicated: dict[str, np.ndarray] = field(default_factory=dict)
    replicated_log_likelihood: np.ndarray | None = None
    observed: dict[str, np.ndarray] = field(default_factory=dict)
    pointwise: dict[str, np.ndarray] = field(default_factory=dict)


def pair_of(run: Run | Pair) -> Pair:
    """The pair of a :class:`ppl_vae.Run` (its ``pair``), or ``run`` itself when a pair."""
    return run if isinstance(run, Pair) else run.pair


def per_example_layout(value: torch.Tensor, event_dim: int, frames: dict, nesting: int,
                       num_particles: int) -> torch.Tensor:
    """``value`` (batch dims from the plates, then event dims) as ``(K, N, *rest)``.

    ``frames`` maps the site's plate names to their dims; ``rest`` is the
    site's other plates (outer first) followed by its event dimensions.
    """
    width = nesting + 1
    batch_ndim = value.dim() - event_dim
    if batch_ndim > width or DATA_PLATE not in frames:
        raise PplVaeError(f"a latent site has batch shape {tuple(value.shape[:batch_ndim])} not "
                          f"declared by plates inside pyro.plate('{DATA_PLATE}'); use .to_event()")
    value = value.reshape((1,) * (width - batch_ndim) + tuple(value.shape))
    value = value.expand(num_particles, *value.shape[1:])
    data_axis = width + frames[DATA_PLATE]
    others = sorted(width + d for name, d in frames.items()
                    if name not in (DATA_PLATE, PARTICLE_PLATE))
    dropped = [a for a in range(1, width) if a != data_axis and a not in others]
    order = [0, data_axis, *others, *dropped, *range(width, value.dim())]
    value = value.permute(order)
    return value.reshape(value.shape[:2 + len(others)] + value.shape[2 + len(others)
                                                                     + len(dropped):])


def site_mask(msg) -> torch.Tensor | None:
    """Where a site's value counts, broadcast to the value's shape; None when unmasked.

    Combines the site's ``mask`` (``poutine.mask``, over its batch shape) and a
    ``MaskedDistribution`` (``dist.mask``) under any ``Independent`` wrappers.
    """
    value, masks = msg["value"], []
    if msg["mask"] is not None:
        masks.append(_over_events(msg["mask"], msg["fn"].event_dim))
    fn = msg["fn"]
    while isinstance(fn, Independent):
        fn = fn.base_dist
    if isinstance(fn, MaskedDistribution):
        masks.append(_over_events(fn._mask, fn.event_dim))
    if not masks:
        return None
    mask = torch.ones((), dtype=torch.bool, device=value.device)
    for part in masks:
        mask = mask & part
    return mask.expand(value.shape)


def _over_events(mask, event_dim: int) -> torch.Tensor:
    """A batch-shaped mask (or a bool) with ``event_dim`` trailing singleton dims."""
    mask = torch.as_tensor(mask, dtype=torch.bool)
    return mask.reshape(tuple(mask.shape) + (1,) * event_dim)


def laid_out(msg, nesting: int, k: int) -> torch.Tensor:
    """A site's value as ``(K, N, *rest)`` (:func:`per_example_layout`), NaN where masked."""
    value, mask = msg["value"], site_mask(msg)
    if mask is not None:
        value = torch.where(mask, value.to(torch.get_default_dtype()),
                            torch.tensor(float("nan"), device=value.device))
    return per_example_layout(value, msg["fn"].event_dim, _frames(msg), nesting, k)


def _frames(msg) -> dict:
    return {f.name: f.dim for f in msg["cond_indep_stack"] if f.dim is not None}


def _separable(fn) -> bool:
    """Whether ``fn`` is an ``Independent`` over a univariate base distribution."""
    return isinstance(fn, torch.distributions.Independent) and fn.base_dist.event_dim == 0


def _kl_terms(guide_msg, model_msg, nesting: int, k: int) -> torch.Tensor | None:
    """``log q_d - log p_d`` per draw, example and flattened dimension, or None (n/a)."""
    q, p = guide_msg["fn"], model_msg["fn"]
    if not (_separable(q) and _separable(p)):
        return None
    value = guide_msg["value"]
    terms = q.base_dist.log_prob(value) - p.base_dist.log_prob(value)
    terms = terms.expand(torch.broadcast_shapes(terms.shape, value.shape))
    mask = site_mask(guide_msg)
    if mask is not None:  # padding counts nothing, as in the ELBO
        terms = terms * mask
    laid = per_example_layout(terms, q.event_dim, _frames(guide_msg), nesting, k)
    return laid.reshape(laid.shape[0], laid.shape[1], -1)


def _counted(msg, nesting: int, k: int) -> torch.Tensor | None:
    """Where a site's entries count (1) or are padding (0), laid out as its KL terms
    ``(k, n, D)``; None when its KL is n/a."""
    if not _separable(msg["fn"]):
        return None
    mask = site_mask(msg)
    mask = torch.ones_like(msg["value"]) if mask is None else mask
    laid = per_example_layout(mask.float(), msg["fn"].event_dim, _frames(msg), nesting, k)
    return laid.reshape(laid.shape[0], laid.shape[1], -1)


def _mean_over_counted(terms: torch.Tensor, counted: torch.Tensor | None) -> np.ndarray:
    """Per-dimension mean of KL terms ``(S, N, D)`` over draws and examples, padding left out
    (a dimension that is padding everywhere is NaN)."""
    terms = terms.double()
    if counted is None:
        return terms.mean((0, 1)).cpu().numpy()
    counted = counted.double().expand_as(terms)
    return (terms.sum((0, 1)) / counted.sum((0, 1))).cpu().numpy()


def prepare_draws(pair: Pair, x: torch.Tensor, inputs: dict | None = None
                  ) -> tuple[int, Plan]:
    """Plate nesting and plan of the pair (:meth:`ppl_vae.Pair.plan`)."""
    return pair.plan(x, inputs or {})


def global_note(plan: Plan) -> str | None:
    """Why PSIS, the IS estimate and the KL are missing for a pair with global sites (None
    without any)."""
    if not plan.global_sites:
        return None
    return (f"site(s) {sorted(plan.global_sites)} sit outside pyro.plate('{DATA_PLATE}') and "
            "couple the examples: there is no per-example importance weight, so Pareto k-hat, "
            "the IS log-likelihood and the per-dimension KL are not defined; the draws of the "
            "global sites have no 'example' dimension, the local sites are drawn per example "
            "given the same global draw")


def enumeration_note(plan: Plan) -> str | None:
    """One sentence on how enumerated sites are drawn here (None without any)."""
    if not plan.enumerated:
        return None
    return (f"site(s) {sorted(plan.enumerated)} are marked for enumeration; these diagnostics "
            "sample them instead of summing (guide sites from q(y|x), model-only sites from "
            "their prior conditional, counted in the proposal): a valid importance sampler, so "
            "k-hat and the IS estimate include the discrete draws; ppl-vae evaluate sums them "
            "exactly")


@torch.no_grad()
def pair_draws(pair: Pair, x: torch.Tensor, draws: int = 1000, budget: int = 8192,
               quiet: bool = True, inputs: dict | None = None,
               replicate: bool = False) -> Draws:
    """Draw ``draws`` times from the guide for every example of ``x``; see the module docstring.

    Args:
        pair: a pair keeping the contract (call inside its ``scope()``).
        x: examples ``(N, *event_shape)`` on the pair's device.
        draws: S, draws per example (importance samples for PSIS).
        budget: most draw-examples alive at once (bounds memory).
        quiet: hide the progress bar.
        inputs: per-example keyword inputs of both programs, ``N`` rows each.
        replicate: also draw replicated data ``x_rep ~ p(x | z)`` at each draw.
    """
    if draws < 2:
        raise PplVaeError(f"--draws must be at least 2, got {draws}")
    inputs = inputs or {}
    model, guide = pair.model, pair.guide
    with frozen(model, guide):
        nesting, plan = prepare_draws(pair, x, inputs)
        if plan.global_sites:
            return _global_draws(model, guide, x, draws, nesting, plan, inputs, replicate,
                                 quiet)
        blocks = []
        for rows, counts in chunks(x.shape[0], draws, budget, "guide draws", quiet):
            parts = [_one_pass(model, guide, x[rows], k, nesting, plan, take(inputs, rows),
                               replicate) for k in counts]
            blocks.append({key: _cat([p[key] for p in parts], 0) for key in parts[0]})
    out = {key: _cat([block[key] for block in blocks], 1) for key in blocks[0]}
    return _as_draws(out)


def collect_draws(model, guide, x: torch.Tensor, draws: int = 1000, budget: int = 8192,
                  quiet: bool = True, inputs: dict | None = None,
                  replicate: bool = False) -> Draws:
    """:func:`pair_draws` of ``(model, guide)``."""
    return pair_draws(Pair(model, guide), x, draws, budget, quiet, inputs, replicate)


def _as_draws(out: dict) -> Draws:
    """The :class:`Draws` of concatenated pass results (torch, keyed as :func:`_one_pass`)."""
    def numpy(key):
        value = out.get(key)
        return None if value is None else value.double().cpu().numpy()

    def group(prefix):
        return {name[len(prefix):]: value.cpu().numpy() for name, value in out.items()
                if name.startswith(prefix)}

    kl = {name[3:]: None if value is None else _mean_over_counted(value, out[f"counted:{name[3:]}"])
          for name, value in out.items() if name.startswith("kl:")}
    return Draws(group("site:"), numpy("log_weight"), numpy("log_likelihood"),
                 numpy("log_prior"), numpy("log_guide"), kl, group("global:"), group("rep:"),
                 numpy("rep_log_likelihood"), {name: value[0] for name, value in
                                               group("obs:").items()}, group("ll:"))


def _cat(tensors: list, dim: int):
    """``torch.cat`` that passes through a list of Nones (a site with KL n/a)."""
    return None if tensors[0] is None else torch.cat(tensors, dim)


def _one_pass(model, guide, x: torch.Tensor, k: int, nesting: int, plan: Plan,
              inputs: dict, replicate: bool) -> dict:
    """One chunk: log-weight parts ``(k, n)``, site draws ``(k, n, ...)``, KL terms, and the
    replicated data where asked.

    A pair that runs one particle at a time (``plan.vectorized`` false) makes
    ``k`` passes here, so that every draw is recorded, not only the last.
    """
    if not plan.vectorized and k > 1:
        parts = [_one_pass(model, guide, x, 1, nesting, plan, inputs, replicate)
                 for _ in range(k)]
        return {key: _cat([p[key] for p in parts], 0) for key in parts[0]}
    guide_record, model_record = _Record(), _Record()
    weights = log_weights(model_record(model), guide_record(guide), x, k, nesting, plan, inputs)
    if weights.total.shape != (k, x.shape[0]):
        raise PplVaeError(f"internal: log weights came back with shape {tuple(weights.total.shape)}"
                          f", not (draws, examples) = {(k, x.shape[0])}; a site's log-density was "
                          "not reduced to one number per example (ppl_vae.traces)")
    out: dict[str, torch.Tensor | None] = {
        "log_weight": weights.total, "log_likelihood": weights.log_likelihood,
        "log_prior": weights.log_prior, "log_guide": weights.log_guide}
    for name, msg in guide_record.sites.items():
        if name not in model_record.sites:
            continue  # the guide's auxiliary site: its density is in log_guide already
        out[f"site:{name}"] = laid_out(msg, nesting, k)
        out[f"kl:{name}"] = _kl_terms(msg, model_record.sites[name], nesting, k)
        out[f"counted:{name}"] = _counted(msg, nesting, k)
    if replicate:
        plate = particle_plate(k, -(nesting + 1)) if k > 1 else None
        out.update(_replicate(model, _as_trace(guide_record), x, inputs, nesting, plan, k,
                              plate))
    return out


def _as_trace(record: _Record) -> poutine.Trace:
    """A trace of the recorded sites, for ``poutine.replay``."""
    trace = poutine.Trace()
    for name, msg in record.sites.items():
        trace.add_node(name, **msg)
    return trace


def _replicate(model, guide_trace, x, inputs, nesting: int, plan: Plan, k: int,
               plate) -> dict:
    """Replicated data of every observed site at the guide's draws, and its log-density.

    The model replays ``guide_trace`` with its observed sites unconditioned
    (``poutine.uncondition``), inside the particle ``plate`` when there is one.
    """
    program = poutine.uncondition(poutine.replay(model, trace=guide_trace))
    if plate is None:
        trace = poutine.trace(program).get_trace(x, **inputs)
    else:
        with plate:
            trace = poutine.trace(program).get_trace(x, **inputs)
    out, total = {}, x.new_zeros(k, x.shape[0])
    for name, dims in plan.observed:
        msg = trace.nodes[name]
        if is_global(msg):
            continue  # an observation shared by all examples is not per-example data
        out[f"rep:{name}"] = laid_out(msg, nesting, k)
        observed = msg["infer"]["obs"].expand(msg["value"].shape)
        out[f"obs:{name}"] = laid_out({**msg, "value": observed}, nesting, k)[:1]
        total = total + per_example(msg["fn"].log_prob(msg["value"]), msg, dims)
    out["rep_log_likelihood"] = total
    return out


def _global_draws(model, guide, x, draws: int, nesting: int, plan: Plan, inputs: dict,
                  replicate: bool, quiet: bool) -> Draws:
    """Draws of a pair with global sites: one particle at a time over every example at once,
    so that the local sites of all examples share each global draw."""
    parts = []
    for _ in tqdm(range(draws), desc="guide draws", leave=False, disable=quiet or None):
        model_trace, guide_trace = particle_traces(model, guide, x, 1, nesting,
                                                   plate_one=False, inputs=inputs)
        out = {f"ll:{name}": per_example(model_trace.nodes[name]["fn"].log_prob(
            model_trace.nodes[name]["value"]), model_trace.nodes[name], dims)
            for name, dims in plan.observed if name not in plan.global_sites}
        out["log_likelihood"] = sum(out.values(), x.new_zeros(1, x.shape[0]))
        for name, _ in plan.guide:
            msg = guide_trace.nodes[name]
            if name in plan.global_sites:
                out[f"global:{name}"] = msg["value"].detach()[None]
            else:
                out[f"site:{name}"] = laid_out(msg, nesting, 1)
        if replicate:
            out.update(_replicate(model, guide_trace, x, inputs, nesting, plan, 1, None))
        parts.append(out)
    return _as_draws({key: torch.cat([p[key] for p in parts]) for key in parts[0]})


@torch.no_grad()
def global_log_likelihood(pair: Pair, global_sites: dict[str, np.ndarray], x: torch.Tensor,
                          inputs: dict | None = None, budget: int = 8192,
                          quiet: bool = True) -> dict[str, np.ndarray]:
    """``log p(x_n | θ_s)`` per observed site, draw and example, for a pair whose latents are
    all global: the model conditioned on each draw ``θ_s`` of ``global_sites``
    (``(S, *shape)``), run over ``x`` in chunks of ``budget`` examples.

    Returns ``{site: (S, N)}``: the pointwise log-likelihood of ``az.loo`` / ``az.waic``.
    """
    inputs = inputs or {}
    nesting, plan = pair.plan(x, inputs)
    draws = next(iter(global_sites.values())).shape[0]
    out: dict[str, list[torch.Tensor]] = {
        name: [] for name, _ in plan.observed if name not in plan.global_sites}
    for s in tqdm(range(draws), desc="pointwise log-likelihood", leave=False,
                  disable=quiet or None):
        values = {name: torch.as_tensor(v[s], device=x.device) for name, v in global_sites.items()}
        rows: dict[str, list[torch.Tensor]] = {name: [] for name in out}
        for start in range(0, x.shape[0], budget):
            chunk = slice(start, start + budget)
            trace = poutine.trace(poutine.condition(pair.model, data=values)).get_trace(
                x[chunk], **take(inputs, chunk))
            for name, dims in plan.observed:
                if name in rows:
                    site = trace.nodes[name]
                    fn = cast(Distribution, site["fn"])  # an observed site's distribution
                    rows[name].append(per_example(fn.log_prob(site["value"]), site, dims)[0])
        for name in out:
            out[name].append(torch.cat(rows[name]))
    return {name: torch.stack(v).double().cpu().numpy() for name, v in out.items()}
