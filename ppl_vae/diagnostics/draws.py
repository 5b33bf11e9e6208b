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

Two kinds of pair need a word:

- sites outside the ``"data"`` plate (global latents) couple the examples:
  there is no per-example weight ``w_sn``, so :func:`prepare_draws` refuses
  such a pair, naming the sites;
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
site (β) is ignored: these are the unscaled densities.

:func:`pair_draws` takes the :class:`~ppl_vae.Pair`; :func:`collect_draws` is its
``(model, guide)`` form, for scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppl_vae.chunks import chunks
from ppl_vae.errors import PplVaeError
from ppl_vae.modules import frozen
from ppl_vae.pair import Pair
from ppl_vae.traces import DATA_PLATE, PARTICLE_PLATE, Plan, log_weights, take


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
        sites: guide site name -> draws ``(S, N, *latent shape)``, in guide order.
        log_weight: ``log p(x, z) - log q(z | x)``, ``(S, N)``.
        log_likelihood: ``log p(x | z)``, ``(S, N)``.
        log_prior: ``log p(z)``, ``(S, N)``.
        log_guide: ``log q(z | x)``, ``(S, N)`` (the proposal's density: with a
            model-only enumerated site, its prior term too; see the module docstring).
        kl_per_dim: site -> per-dimension KL ``(D,)`` averaged over draws and
            examples, or None where the dimensions are not separable.
    """

    sites: dict[str, np.ndarray]
    log_weight: np.ndarray
    log_likelihood: np.ndarray
    log_prior: np.ndarray
    log_guide: np.ndarray
    kl_per_dim: dict[str, np.ndarray | None] = field(default_factory=dict)


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
    laid = per_example_layout(terms, q.event_dim, _frames(guide_msg), nesting, k)
    return laid.reshape(laid.shape[0], laid.shape[1], -1)


def prepare_draws(pair: Pair, x: torch.Tensor, inputs: dict | None = None
                  ) -> tuple[int, Plan]:
    """Plate nesting and plan of the pair (:meth:`ppl_vae.Pair.plan`), refusing global sites
    (no per-example weight)."""
    nesting, plan = pair.plan(x, inputs or {})
    if plan.global_sites:
        raise PplVaeError(
            f"PSIS and importance sampling need one weight per example, which a pair with "
            f"global site(s) {sorted(plan.global_sites)} (outside pyro.plate('{DATA_PLATE}')) "
            "does not have: those sites couple the examples; use ppl-vae evaluate for its ELBO")
    return nesting, plan


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
               quiet: bool = True, inputs: dict | None = None) -> Draws:
    """Draw ``draws`` times from the guide for every example of ``x``; see the module docstring.

    Args:
        pair: a pair keeping the contract (call inside its ``scope()``).
        x: examples ``(N, *event_shape)`` on the pair's device.
        draws: S, draws per example (importance samples for PSIS).
        budget: most draw-examples alive at once (bounds memory).
        quiet: hide the progress bar.
        inputs: per-example keyword inputs of both programs, ``N`` rows each.
    """
    if draws < 2:
        raise PplVaeError(f"--draws must be at least 2, got {draws}")
    inputs = inputs or {}
    model, guide = pair.model, pair.guide
    with frozen(model, guide):
        nesting, plan = prepare_draws(pair, x, inputs)
        blocks = []
        for rows, counts in chunks(x.shape[0], draws, budget, "guide draws", quiet):
            parts = [_one_pass(model, guide, x[rows], k, nesting, plan, take(inputs, rows))
                     for k in counts]
            blocks.append({key: _cat([p[key] for p in parts], 0) for key in parts[0]})
    out = {key: _cat([block[key] for block in blocks], 1) for key in blocks[0]}
    sites = {name[5:]: value.cpu().numpy() for name, value in out.items()
             if name.startswith("site:")}
    kl = {name[3:]: None if value is None else value.double().mean((0, 1)).cpu().numpy()
          for name, value in out.items() if name.startswith("kl:")}
    return Draws(sites, *(out[k].double().cpu().numpy() for k in
                          ("log_weight", "log_likelihood", "log_prior", "log_guide")), kl)


def collect_draws(model, guide, x: torch.Tensor, draws: int = 1000, budget: int = 8192,
                  quiet: bool = True, inputs: dict | None = None) -> Draws:
    """:func:`pair_draws` of ``(model, guide)``."""
    return pair_draws(Pair(model, guide), x, draws, budget, quiet, inputs)


def _cat(tensors: list, dim: int):
    """``torch.cat`` that passes through a list of Nones (a site with KL n/a)."""
    return None if tensors[0] is None else torch.cat(tensors, dim)


def _one_pass(model, guide, x: torch.Tensor, k: int, nesting: int, plan: Plan,
              inputs: dict) -> dict:
    """One chunk: log-weight parts ``(k, n)``, site draws ``(k, n, ...)``, KL terms.

    A pair that runs one particle at a time (``plan.vectorized`` false) makes
    ``k`` passes here, so that every draw is recorded, not only the last.
    """
    if not plan.vectorized and k > 1:
        parts = [_one_pass(model, guide, x, 1, nesting, plan, inputs) for _ in range(k)]
        return {key: _cat([p[key] for p in parts], 0) for key in parts[0]}
    guide_record, model_record = _Record(), _Record()
    weights = log_weights(model_record(model), guide_record(guide), x, k, nesting, plan, inputs)
    if weights.total.shape != (k, x.shape[0]):
        raise PplVaeError(f"internal: log weights came back with shape {tuple(weights.total.shape)}"
                          f", not (draws, examples) = {(k, x.shape[0])}; a site's log-density was "
                          "not reduced to one number per example (ppl_vae.traces)")
    out = {"log_weight": weights.total, "log_likelihood": weights.log_likelihood,
           "log_prior": weights.log_prior, "log_guide": weights.log_guide}
    for name, msg in guide_record.sites.items():
        out[f"site:{name}"] = per_example_layout(msg["value"], msg["fn"].event_dim,
                                                 _frames(msg), nesting, k)
        out[f"kl:{name}"] = _kl_terms(msg, model_record.sites[name], nesting, k)
    return out
