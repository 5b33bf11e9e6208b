"""Per-example log-densities read off model and guide traces.

Everything the engine knows about a model/guide pair comes from here: it runs
the guide (vectorized over ``K`` particles by an outer ``pyro.plate``), replays
the model on the guide's draws, and reduces each site's ``log_prob`` to one
number per particle and example by summing every plate dimension except the
particle plate's and the ``"data"`` plate's. Site names and shapes are
discovered, never assumed (apart from the contract's ``"data"`` plate and
``"x"`` observation). The first traces of a pair are checked against the
contract and summarised in a :class:`Plan`; later steps reuse the plan and do
no per-site bookkeeping beyond ``log_prob`` and a sum.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.nn import PyroModule
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from ppl_vae.errors import PplVaeError

DATA_PLATE = "data"
OBS_SITE = "x"
PARTICLE_PLATE = "ppl_vae_particles"


def sample_sites(trace) -> list[dict]:
    """The ``sample`` sites of a trace (plates' subsample sites excluded), in order."""
    return [site for site in trace.nodes.values()
            if site["type"] == "sample" and not site_is_subsample(site)]


def max_plate_nesting(model, guide, x: torch.Tensor) -> int:
    """The deepest plate nesting in either program, found by tracing one example.

    Runs with a forked RNG, so finding the nesting never changes later draws.
    """
    with poutine.block(), torch.random.fork_rng(devices=[]):
        guide_trace = poutine.trace(guide).get_trace(x[:1])
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x[:1])
    dims = [-frame.dim for trace in (guide_trace, model_trace) for site in sample_sites(trace)
            for frame in site["cond_indep_stack"] if frame.dim is not None]
    return max(dims, default=0)


@functools.cache
def _particle_plate(num_particles: int, dim: int) -> pyro.plate:
    """One reusable particle plate per size and dim (a plate re-enters cleanly)."""
    return pyro.plate(PARTICLE_PLATE, num_particles, dim=dim)


_HAS_PYRO_SAMPLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _runnable(program):
    """What to call to run ``program``: itself, or its ``forward`` when that is equivalent.

    Calling a ``PyroModule`` activates its context, and every parameter it then
    reads sends a ``param`` message through the handler stack. The engine never
    reads those messages (it optimises the pair's parameters directly), so a
    PyroModule without hooks and without ``PyroSample`` attributes, which do
    need the context, is run by ``forward``: same sites, values and gradients
    (tested), less Python per step. Only with module-local parameters (the
    package default): with the global param store the context also syncs
    parameters with the store.
    """
    if not isinstance(program, PyroModule) or program._forward_hooks \
            or program._forward_pre_hooks or not pyro.settings.get("module_local_params"):
        return program
    if program not in _HAS_PYRO_SAMPLES:
        _HAS_PYRO_SAMPLES[program] = any(getattr(m, "_pyro_samples", None)
                                           for m in program.modules())
    return program if _HAS_PYRO_SAMPLES[program] else program.forward


def particle_traces(model, guide, x: torch.Tensor, num_particles: int, nesting: int,
                    plate_one: bool = True):
    """Guide and replayed model traces with ``num_particles`` draws per example.

    The particles live in a plate at dim ``-(nesting + 1)``, outside every
    plate of the pair, so sites get shape ``(K, ..., batch, ...)``. With
    ``plate_one=False`` a single particle runs without that plate: the pair
    sees its own shapes, draws the same numbers, and :func:`per_example`
    still gives ``(1, batch)``.
    """
    model, guide = _runnable(model), _runnable(guide)
    plate = _particle_plate(num_particles, -(nesting + 1)) \
        if plate_one or num_particles > 1 else contextlib.nullcontext()
    with plate:
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    return model_trace, guide_trace


def _sum_dims(site: dict) -> tuple[int, ...]:
    """Plate dims of ``site`` to sum over: all but the particle and data plates."""
    frames = {f.name: f.dim for f in site["cond_indep_stack"] if f.dim is not None}
    if DATA_PLATE not in frames:
        raise PplVaeError(
            f"site '{site['name']}' is outside the pyro.plate('{DATA_PLATE}', batch) plate; "
            "per-example bounds need every site inside it (see the model/guide contract)")
    return tuple(d for name, d in frames.items() if name not in (DATA_PLATE, PARTICLE_PLATE))


def _is_one(scale) -> bool:
    """Whether a site's scale (a number or a tensor) is exactly 1 everywhere."""
    return bool((torch.as_tensor(scale) == 1).all()) if torch.is_tensor(scale) else scale == 1.0


def _has_kl(guide_fn, model_fn) -> bool:
    """Whether ``kl_divergence(guide_fn, model_fn)`` is registered and evaluates here."""
    try:
        kl_divergence(guide_fn, model_fn)
    except (NotImplementedError, RuntimeError, IndexError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Plan:
    """What the first (checked) traces of a pair taught the engine.

    Attributes:
        observed, latent: ``(name, sum_dims)`` of model sites, observed or not.
        guide: ``(name, sum_dims)`` of guide sites (the same names as ``latent``).
        analytic_kl: latent sites whose ``KL(guide || model)`` is registered.
        scaled_sites: names and scales of sites carrying a scale ≠ 1 (β, annealing).
        reparameterized: whether every guide site has ``rsample``.
    """

    observed: tuple
    latent: tuple
    guide: tuple
    analytic_kl: frozenset
    scaled_sites: dict
    reparameterized: bool


def make_plan(model_trace, guide_trace) -> Plan:
    """Check the traces against the contract and summarise them."""
    model_sites, guide_sites = sample_sites(model_trace), sample_sites(guide_trace)
    observed = [s for s in model_sites if s["is_observed"]]
    if OBS_SITE not in [s["name"] for s in observed]:
        raise PplVaeError(
            f"the model has no observed site named '{OBS_SITE}' (observed: "
            f"{[s['name'] for s in observed] or 'none'}); write pyro.sample('{OBS_SITE}', ..., "
            "obs=x) in the model")
    latent = [s for s in model_sites if not s["is_observed"]]
    if {s["name"] for s in latent} != {s["name"] for s in guide_sites}:
        raise PplVaeError(
            f"model latent sites {sorted(s['name'] for s in latent)} and guide sites "
            f"{sorted(s['name'] for s in guide_sites)} differ; the guide must sample exactly "
            "the model's latent sites, with the same names")
    by_name = {s["name"]: s for s in guide_sites}
    return Plan(
        observed=tuple((s["name"], _sum_dims(s)) for s in observed),
        latent=tuple((s["name"], _sum_dims(s)) for s in latent),
        guide=tuple((s["name"], _sum_dims(s)) for s in guide_sites),
        analytic_kl=frozenset(s["name"] for s in latent
                              if _has_kl(by_name[s["name"]]["fn"], s["fn"])),
        scaled_sites={s["name"]: s["scale"] for s in model_sites + guide_sites
                      if not _is_one(s["scale"])},
        reparameterized=all(s["fn"].has_rsample for s in guide_sites))


def prepare(model, guide, x: torch.Tensor) -> tuple[int, Plan]:
    """Plate nesting and checked :class:`Plan` of a pair, from one draw for each of ``x``.

    Uses a forked RNG, so preparing never changes later draws.
    """
    nesting = max_plate_nesting(model, guide, x)
    with torch.random.fork_rng(devices=[]):
        plan = make_plan(*particle_traces(model, guide, x, 1, nesting))
    return nesting, plan


def site_log_prob(site: dict, sum_dims: tuple, scaled: bool = False) -> torch.Tensor:
    """``log_prob`` of a site per particle and example (mask applied, scale if asked)."""
    log_prob = per_example(site["fn"].log_prob(site["value"]), site, sum_dims)
    return times_scale(log_prob, site) if scaled else log_prob


def times_scale(value: torch.Tensor, site: dict) -> torch.Tensor:
    """``value`` times the site's scale (no operation for the plain number 1)."""
    scale = site["scale"]
    return value if isinstance(scale, (int, float)) and scale == 1 else value * scale


def per_example(value: torch.Tensor, site: dict, sum_dims: tuple) -> torch.Tensor:
    """Reduce a tensor of ``site``'s batch shape to ``(K, batch)``, mask applied.

    After summing ``sum_dims`` only the particle and data dims can be larger
    than 1, so the result is a reshape to ``(-1, size of the data plate)``.
    """
    if site["mask"] is not None:
        value = value * site["mask"]
    if sum_dims:
        value = value.sum(sum_dims, keepdim=True)
    batch = next(f.size for f in site["cond_indep_stack"] if f.name == DATA_PLATE)
    return value.reshape(-1, batch)


@dataclass
class LogWeights:
    """Per-particle, per-example pieces of ``log w = log p(x, z) - log q(z | x)``.

    Attributes:
        log_likelihood: ``log p(x | z)`` summed over observed sites, ``(K, batch)``.
        log_prior: ``log p(z)`` summed over latent sites, ``(K, batch)``.
        log_guide: ``log q(z | x)`` summed over guide sites, ``(K, batch)``.
    """

    log_likelihood: torch.Tensor
    log_prior: torch.Tensor
    log_guide: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """``log w = log p(x | z) + log p(z) - log q(z | x)`` (unscaled)."""
        return self.log_likelihood + self.log_prior - self.log_guide


def log_weights(model, guide, x: torch.Tensor, num_particles: int, nesting: int,
                plan: Plan | None = None) -> LogWeights:
    """Run the pair on ``x`` with ``num_particles`` draws and split ``log w`` by kind of site.

    Without a ``plan`` the traces are checked against the contract first.
    """
    model_trace, guide_trace = particle_traces(model, guide, x, num_particles, nesting)
    plan = plan or make_plan(model_trace, guide_trace)
    shape = (num_particles, x.shape[0])

    def total(trace, sites):
        terms = [site_log_prob(trace.nodes[name], dims) for name, dims in sites]
        return functools.reduce(torch.add, terms) if terms else x.new_zeros(shape)

    return LogWeights(total(model_trace, plan.observed), total(model_trace, plan.latent),
                      total(guide_trace, plan.guide))
