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

The contract grows as Pyro programs do: extra inputs reach both programs as
keyword arguments (``model(x, y=...)``); sites outside the ``"data"`` plate are
*global* (they count once per data set: see :class:`ScaleGlobal`); discrete
sites marked ``infer={"enumerate": ...}`` are summed out
(:mod:`ppl_vae.enumeration`), never silently sampled.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.distributions import Delta, MaskedDistribution
from pyro.infer.autoguide import AutoContinuous, AutoGuide
from pyro.nn import PyroModule
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from ppl_vae.contract import GuideHooks, ModelHooks, hook
from ppl_vae.errors import PplVaeError
from ppl_vae.own_subsample import check_own_subsample
from ppl_vae.site_masks import unobserved_advice, warn_on_unmatched_masks

DATA_PLATE = "data"
OBS_SITE = "x"
PARTICLE_PLATE = "ppl_vae_particles"


def sample_sites(trace) -> list[dict]:
    """The ``sample`` sites of a trace (plates' subsample sites excluded), in order."""
    return [site for site in trace.nodes.values()
            if site["type"] == "sample" and not site_is_subsample(site)]


def take(inputs: dict, index) -> dict:
    """The per-example inputs of the examples ``index`` (``None`` stays ``None``)."""
    return {k: None if v is None else v[index] for k, v in inputs.items()}


def enumerates(site: dict) -> bool:
    """Whether a sample site is marked for enumeration (``infer={"enumerate": ...}``)."""
    return site["infer"].get("enumerate") in ("parallel", "sequential")


def max_plate_nesting(model, guide, x: torch.Tensor, inputs: dict | None = None) -> int:
    """The deepest plate nesting in either program, found by tracing the batch ``x`` itself.

    Never a smaller probe: a parameter a program sizes by ``x.size(0)`` is created
    from the batch it will train on. Runs with a forked RNG, so finding the nesting
    never changes later draws.
    """
    inputs = inputs or {}
    with poutine.block(), torch.random.fork_rng(devices=[]):
        guide_trace = poutine.trace(guide).get_trace(x, **inputs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            x, **inputs)
    dims = [-frame.dim for trace in (guide_trace, model_trace) for site in sample_sites(trace)
            for frame in site["cond_indep_stack"] if frame.dim is not None]
    return max(dims, default=0)


def batch_sized_params(model, guide, x: torch.Tensor, inputs: dict | None = None
                       ) -> dict[str, tuple[tuple, tuple]]:
    """Param-store parameters whose shape follows the batch: ``{name: (shape at 1 example,
    shape at 2)}``.

    Each program is run afresh on one and on two examples, each time in an empty
    param store (nothing is kept, the RNG is forked): a parameter created as
    ``pyro.param(name, init of shape (x.size(0), K))`` differs, one declared for
    every example (``(N, K)`` with ``event_dim`` in a subsampled plate) does not.
    A program that cannot run on so few examples is not judged (empty result).
    """
    if x.shape[0] < 2:
        return {}
    store, shapes = pyro.get_param_store(), []
    for n in (1, 2):
        with store.scope(), poutine.block(), torch.random.fork_rng(devices=[]), \
                torch.no_grad():
            part = take(inputs or {}, slice(0, n))
            try:
                guide_trace = poutine.trace(guide).get_trace(x[:n], **part)
                poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x[:n], **part)
            except Exception:  # noqa: BLE001 (a program free to refuse tiny batches)
                return {}
            shapes.append({name: tuple(p.shape) for name, p in store.named_parameters()})
    return {name: (shape, shapes[1][name]) for name, shape in shapes[0].items()
            if shapes[1].get(name, shape) != shape}


@functools.cache
def particle_plate(num_particles: int, dim: int) -> pyro.plate:
    """One reusable particle plate per size and dim (a plate re-enters cleanly)."""
    return pyro.plate(PARTICLE_PLATE, num_particles, dim=dim)


_NEEDS_CONTEXT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def runnable(program):
    """What to call to run ``program``: itself, or its ``forward`` when that is equivalent.

    Calling a ``PyroModule`` activates its context, and every parameter it then
    reads sends a ``param`` message through the handler stack. The engine never
    reads those messages (it optimises the pair's parameters directly), so a
    PyroModule without hooks, without ``PyroSample`` attributes and without
    ``PyroParam`` attributes declaring an ``event_dim`` (a subsampled plate indexes those through
    the message), which do need the context, is run by ``forward``: same sites, values
    and gradients (tested), less Python per step. Only with module-local parameters (the
    package default): with the global param store the context also syncs
    parameters with the store. AutoGuides make their parameters on their first call, so
    they always keep the context.
    """
    if not isinstance(program, PyroModule) or isinstance(program, AutoGuide) \
            or program._forward_hooks or program._forward_pre_hooks \
            or not pyro.settings.get("module_local_params"):
        return program
    if program not in _NEEDS_CONTEXT:
        _NEEDS_CONTEXT[program] = any(
            getattr(m, "_pyro_samples", None)
            or any(event_dim is not None
                   for _, event_dim in getattr(m, "_pyro_params", {}).values())
            for m in program.modules())
    return program if _NEEDS_CONTEXT[program] else program.forward


def particle_traces(model, guide, x: torch.Tensor, num_particles: int, nesting: int,
                    plate_one: bool = True, inputs: dict | None = None, through=None):
    """Guide and replayed model traces with ``num_particles`` draws per example.

    The particles live in a plate at dim ``-(nesting + 1)``, outside every
    plate of the pair, so sites get shape ``(K, ..., batch, ...)``. With
    ``plate_one=False`` a single particle runs without that plate: the pair
    sees its own shapes, draws the same numbers, and :func:`per_example`
    still gives ``(1, batch)``. ``inputs`` go to both programs as keywords.
    ``through``: a function of the guide trace giving the trace the model
    replays (default: the guide trace itself; :mod:`ppl_vae.estimators.pathwise`
    hands the model values whose gradients it reweights).
    """
    model, guide, inputs = runnable(model), runnable(guide), inputs or {}
    plate = particle_plate(num_particles, -(nesting + 1)) \
        if plate_one or num_particles > 1 else contextlib.nullcontext()
    with plate:
        guide_trace = poutine.trace(guide).get_trace(x, **inputs)
        replayed = guide_trace if through is None else through(guide_trace)
        model_trace = poutine.trace(poutine.replay(model, trace=replayed)).get_trace(
            x, **inputs)
    return model_trace, guide_trace


def _frames(site: dict) -> dict:
    return {f.name: f.dim for f in site["cond_indep_stack"] if f.dim is not None}


def _sum_dims(site: dict) -> tuple[int, ...]:
    """Plate dims of ``site`` to sum over: all but the particle and data plates."""
    return tuple(d for name, d in _frames(site).items() if name not in (DATA_PLATE, PARTICLE_PLATE))


def is_global(site: dict) -> bool:
    """Whether a site sits outside the ``"data"`` plate (a global latent or factor)."""
    return all(f.name != DATA_PLATE for f in site["cond_indep_stack"])


class ScaleGlobal(Messenger):
    """Multiply the scale of every site outside the ``"data"`` plate by ``factor``.

    A batch of ``m`` of a data set's ``N`` examples estimates the whole set's
    objective per example, ``(1/N) [G + Σ_n L_n]``, as ``(1/m) [(m/N) G + Σ_batch L_n]``:
    global terms ``G`` (latents and factors outside the plate) count once per
    data set, local terms once per example. The engine enters this around a
    batch with ``factor = m / N``; every estimator, Pyro's included, then sees
    the global sites scaled. (Plates are entered inside the programs, so their
    frames are on a message when it reaches this outer handler.)
    """

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and not site_is_subsample(msg) and is_global(msg):
            msg["scale"] = msg["scale"] * self.factor


class PerExample(Messenger):
    """Undo Pyro's subsampling scale ``N / B`` on sites of a subsampled ``"data"`` plate.

    ``pyro.plate("data", N, subsample=index)`` scales its sites by ``N / B`` so Pyro's
    loss estimates the whole set's sum. The engine's objective is per example (global
    sites scaled by :class:`ScaleGlobal`), so local sites must count once each:
    multiplying by ``B / N`` gives, for Pyro's own estimators as for ours,
    ``(1/B) [(B/N) G + Σ_batch L_n]``, the same value as the unsubsampled program.
    """

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and not site_is_subsample(msg):
            for frame in msg["cond_indep_stack"]:
                if _subsampled_data(frame):
                    msg["scale"] = msg["scale"] * (frame.size / frame.full_size)


def _own_scale(site: dict):
    """A site's scale less the ``N / B`` of a subsampled ``"data"`` plate, which
    :class:`PerExample` undoes: the scale the program itself asked for (β, annealing)."""
    scale = site["scale"]
    for frame in site["cond_indep_stack"]:
        if _subsampled_data(frame):
            scale = scale / (frame.full_size / frame.size)  # exactly 1 when Pyro's alone
    return scale


def _subsampled_data(frame) -> bool:
    """Whether a plate frame is the ``"data"`` plate with fewer examples than its size."""
    return frame.name == DATA_PLATE and frame.full_size not in (None, frame.size)


def subsampled(trace) -> bool:
    """Whether a trace's ``"data"`` plate is subsampled (``subsample=`` fewer than its size)."""
    return any(_subsampled_data(f) for site in sample_sites(trace)
               for f in site["cond_indep_stack"])


class ScaleLatent(Messenger):
    """Multiply the scale of every latent (unobserved) sample site by ``factor``.

    The latent site's ``log p(z)`` in the model and ``log q(z | x)`` in the guide
    are scaled alike, so ``E_q[log q - log p]`` — the KL term — is scaled and the
    likelihood is not: β-VAE's mechanism, used by the KL warm-up
    (:mod:`ppl_vae.training.schedules`).
    """

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def _process_message(self, msg) -> None:
        if msg["type"] == "sample" and not site_is_subsample(msg) and not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.factor


def is_factor(site: dict) -> bool:
    """Whether an observed site is a ``pyro.factor`` (Pyro marks it ``is_auxiliary``): a
    term of the joint density, not data."""
    return bool(site["is_observed"] and site["infer"].get("is_auxiliary"))


def is_deterministic(site: dict) -> bool:
    """Whether a site is a record with no density: ``pyro.deterministic``, or the site a
    ``poutine.reparam`` reparameterizer leaves (its value, a distribution masked out)."""
    fn = site["fn"]
    return bool(site["infer"].get("_deterministic")) or (
        isinstance(fn, MaskedDistribution) and fn._mask is False)


def observations(model_trace) -> list[dict]:
    """The observed sample sites that are observations: neither factors nor records."""
    return [s for s in sample_sites(model_trace)
            if s["is_observed"] and not is_factor(s) and not is_deterministic(s)]


def data_sites(model_trace) -> list[str]:
    """The observed sites that are the data: ``"x"`` when the model observes it, else every
    observation inside the ``"data"`` plate (a sequence model's one per step; with
    ``obs_mask``, ``x_observed``, as ``"x"`` is then a record), else an ``"x"`` the model
    only records (``pyro.deterministic``, as Pyro's CVAE does when it is not given ``y``)."""
    site = model_trace.nodes.get(OBS_SITE)
    named = site is not None and site["type"] == "sample" and site["is_observed"]
    if named and not is_deterministic(site):
        return [OBS_SITE]
    observed = [s["name"] for s in observations(model_trace) if not is_global(s)]
    return observed or ([OBS_SITE] if named else [])  # a record only: what the model made


def _check_observation(model_trace) -> None:
    """The observation site(s) exist, inside the ``"data"`` plate; one-line errors otherwise."""
    site = model_trace.nodes.get(OBS_SITE)
    if (site is None or not site["is_observed"]) and data_sites(model_trace):
        return
    observed = [s["name"] for s in sample_sites(model_trace) if s["is_observed"]]
    if site is None or site["type"] != "sample" or not site["is_observed"]:
        raise PplVaeError(
            f"the model has no observed site named '{OBS_SITE}' nor any inside "
            f"pyro.plate('{DATA_PLATE}') (observed: {observed or 'none'}); write "
            f"pyro.sample('{OBS_SITE}', ..., obs=x) in the model")
    if is_global(site):
        plates = [f.name for f in site["cond_indep_stack"] if f.name != PARTICLE_PLATE]
        if plates:
            raise PplVaeError(
                f"the observation '{OBS_SITE}' is in plate(s) {plates} but not in "
                f"'{DATA_PLATE}'; rename your plate to '{DATA_PLATE}': "
                f"pyro.plate('{DATA_PLATE}', x.shape[0])")
        raise PplVaeError(
            f"the observation '{OBS_SITE}' is in no plate; the model/guide contract wraps "
            f"per-example sites in `with pyro.plate('{DATA_PLATE}', x.shape[0]):` in model and guide")


def _check_enumerated(site: dict) -> None:
    """Enumerated sites are summed per example: directly in the data plate, discrete."""
    others = [f.name for f in site["cond_indep_stack"]
              if f.name not in (DATA_PLATE, PARTICLE_PLATE)]
    if is_global(site) or others:
        raise PplVaeError(
            f"site '{site['name']}' is marked for enumeration in plate(s) {others or 'none'}; "
            f"ppl-vae sums enumerated sites per example, directly inside '{DATA_PLATE}' only: "
            "pass pyro.infer.TraceEnum_ELBO(...) as elbo= for other layouts")
    if site["fn"].has_rsample or not site["fn"].has_enumerate_support:
        raise PplVaeError(f"site '{site['name']}' is marked for enumeration but its "
                          f"{type(site['fn']).__name__} has no finite support; drop the mark")


def _is_one(scale) -> bool:
    """Whether a site's scale (a number or a tensor) is exactly 1 everywhere."""
    return bool((torch.as_tensor(scale) == 1).all()) if torch.is_tensor(scale) else scale == 1.0


def _is_delta(fn) -> bool:
    """Whether a distribution is a ``Delta``: a point mass, or (with ``log_density``) the
    value an AutoGuide's auxiliary site drew; Pyro's registered ``KL(Delta || p) =
    -log p(v)`` leaves that density out, so such sites are never given an analytic KL."""
    return isinstance(getattr(fn, "base_dist", fn), Delta)


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
        observed, latent: ``(name, sum_dims)`` of model sites, observed or not
            (``pyro.deterministic`` records, which carry no density, left out).
        factors: ``(name, sum_dims)`` of the model's ``pyro.factor`` sites: terms of the
            joint (counted with the prior in every bound and weight), not data.
        guide: ``(name, sum_dims)`` of guide sites (the model's latent sites,
            less those summed out in the model only).
        auxiliary: ``(name, sum_dims)`` of the guide's own sites, marked
            ``infer={"is_auxiliary": True}`` (an AutoGuide's ``z_unconstrained``): their
            ``log q`` belongs to the guide's density, as in Pyro's ELBOs.
        analytic_kl: latent sites whose ``KL(guide || model)`` is registered.
        scaled_sites: names and scales of sites carrying a scale ≠ 1 (β, annealing).
        reparameterized: whether every guide site that is sampled has ``rsample``.
        global_sites: sites outside the ``"data"`` plate (model or guide).
        enumerated: sites summed out: guide sites marked for enumeration and
            model latent sites the guide does not sample (marked too).
        vectorized: whether the pair runs with several particles at once
            (a model written with ``reshape(x.shape)`` runs only with one).
        batch_params: param-store parameters sized by the batch
            (:func:`batch_sized_params`): one value per example of *this* batch.
        key: the node names of the traces the plan was made from.
        variants: plans of the same pair for other site sets (:meth:`for_traces`).
        point_mass: a guide site is a ``Delta`` and no auxiliary site gives it a density
            (no density to weight by: no IS estimate).
        subsampled: the ``"data"`` plate was subsampled (``pyro.plate("data", N,
            subsample=index)``): estimators enter :class:`PerExample`.
    """

    observed: tuple
    latent: tuple
    guide: tuple
    analytic_kl: frozenset
    scaled_sites: dict
    reparameterized: bool
    global_sites: frozenset = frozenset()
    enumerated: frozenset = frozenset()
    vectorized: bool = True
    batch_params: dict = field(default_factory=dict, compare=False)
    key: tuple = ()
    variants: dict = field(default_factory=dict, compare=False, repr=False)
    subsampled: bool = False
    point_mass: bool = False
    auxiliary: tuple = ()
    factors: tuple = ()

    @property
    def joint(self) -> tuple:
        """``(name, sum_dims)`` of every model site with a density: ``log p(x, z)`` is
        their sum (observations, latents, factors)."""
        return self.observed + self.latent + self.factors

    def for_traces(self, model_trace, guide_trace) -> Plan:
        """The plan of the sites these traces hold: this one, or the (checked) plan of another
        site set — a program whose sites follow the batch (one per step of the batch's
        longest sequence) gets one plan per site set, made once."""
        key = trace_key(model_trace, guide_trace)
        if key == self.key:
            return self
        if key not in self.variants:
            self.variants[key] = make_plan(model_trace, guide_trace, self.vectorized,
                                           self.batch_params)
        return self.variants[key]

    @property
    def model_enumerated(self) -> frozenset:
        """Enumerated latent sites of the model that the guide does not sample."""
        return self.enumerated - {name for name, _ in self.guide}


def trace_key(model_trace, guide_trace) -> tuple:
    """What identifies a pair's site set: the node names of its two traces, in order."""
    return tuple(model_trace.nodes), tuple(guide_trace.nodes)


def make_plan(model_trace, guide_trace, vectorized: bool = True,
              batch_params: dict | None = None) -> Plan:
    """Check the traces against the contract and summarise them."""
    _check_observation(model_trace)
    model_sites = sample_sites(model_trace)
    drawn = [s for s in sample_sites(guide_trace) if not s["is_observed"]]
    auxiliary = [s for s in drawn if s["infer"].get("is_auxiliary")]
    guide_sites = [s for s in drawn if not s["infer"].get("is_auxiliary")]
    observed = observations(model_trace)
    factors = [s for s in model_sites if is_factor(s)]
    latent = [s for s in model_sites if not s["is_observed"]]
    guide_names = {s["name"] for s in guide_sites}
    summed = {s["name"] for s in latent if s["name"] not in guide_names and enumerates(s)}
    if {s["name"] for s in latent} - summed != guide_names:
        missing = {s["name"] for s in latent} - summed - guide_names
        raise PplVaeError(
            f"model latent sites {sorted(s['name'] for s in latent)} and guide sites "
            f"{sorted(guide_names)} differ; the guide must sample exactly the model's latent "
            "sites, with the same names (or the model marks a discrete site it sums out "
            "with infer={'enumerate': 'parallel'})" + unobserved_advice(missing, model_trace))
    warn_on_unmatched_masks(model_trace, guide_trace, guide_names)
    enumerated = [s for s in guide_sites if enumerates(s)] + \
        [s for s in latent if s["name"] in summed]
    for site in enumerated:
        _check_enumerated(site)
    if enumerated and auxiliary:
        raise PplVaeError(
            f"the guide's auxiliary site(s) {sorted(s['name'] for s in auxiliary)} and the "
            f"enumerated site(s) {sorted(s['name'] for s in enumerated)} cannot be combined "
            "here; write the guide without is_auxiliary sites, or train with Pyro's SVI")
    by_name = {s["name"]: s for s in guide_sites}
    return Plan(
        observed=tuple((s["name"], _sum_dims(s)) for s in observed),
        latent=tuple((s["name"], _sum_dims(s)) for s in latent),
        guide=tuple((s["name"], _sum_dims(s)) for s in guide_sites),
        analytic_kl=frozenset(s["name"] for s in latent if s["name"] in by_name
                              and not _is_delta(by_name[s["name"]]["fn"])
                              and _has_kl(by_name[s["name"]]["fn"], s["fn"])),
        auxiliary=tuple((s["name"], _sum_dims(s)) for s in auxiliary),
        factors=tuple((s["name"], _sum_dims(s)) for s in factors),
        scaled_sites={s["name"]: _own_scale(s) for s in model_sites + drawn
                      if not _is_one(_own_scale(s))},
        reparameterized=all(s["fn"].has_rsample for s in drawn if not enumerates(s)),
        global_sites=frozenset(s["name"] for s in model_sites + drawn if is_global(s)),
        enumerated=frozenset(s["name"] for s in enumerated),
        vectorized=vectorized, batch_params=batch_params or {},
        key=trace_key(model_trace, guide_trace),
        subsampled=subsampled(model_trace) or subsampled(guide_trace),
        point_mass=not auxiliary and any(_is_delta(s["fn"]) for s in guide_sites))


def _check_same_examples(model, guide_trace, x: torch.Tensor, inputs: dict) -> None:
    """Refuse a guide whose ``"data"`` plate draws its own subsample while the model's is
    given (``subsample=index``): replayed, the model would take the guide's rows, whose
    values belong to other examples than ``x``. (A model drawing its own rows never gets
    here: :func:`~ppl_vae.own_subsample.check_own_subsample` refused it.) Run only when the
    guide's plate is subsampled."""
    drawn = guide_trace.nodes.get(DATA_PLATE)
    if drawn is None or not site_is_subsample(drawn):
        return
    own = poutine.trace(runnable(model)).get_trace(x, **inputs).nodes.get(DATA_PLATE)
    if own is not None and not torch.equal(own["value"], drawn["value"]):
        raise PplVaeError(
            f"the guide's pyro.plate('{DATA_PLATE}') draws its own subsample of examples, but "
            "the model's is given (subsample=index): give the guide the same subsample= (an "
            f"AutoGuide: create_plates=lambda x, index: pyro.plate('{DATA_PLATE}', N, "
            "subsample=index))")


def _check_autoguide(model, guide, plan: Plan, x: torch.Tensor, inputs: dict,
                     nesting: int) -> None:
    """Refuse a Pyro AutoGuide where its parameters cannot follow the batches.

    Global latents are fine. An AutoGuide keeps one value per example of a local latent:
    that follows minibatches only when the model's ``"data"`` plate is subsampled by the
    examples' indices (seen on a one-example probe: the plate keeps its full size) and the
    guide enters the same plate (``create_plates``); ``AutoContinuous`` guides put every
    latent in one vector, which cannot be subsampled.
    """
    if not isinstance(guide, AutoGuide):
        return
    local = sorted(name for name, _ in plan.latent if name not in plan.global_sites)
    if not local:
        return
    name = type(guide).__name__
    if isinstance(guide, AutoContinuous):
        raise PplVaeError(
            f"{name} puts every latent in one vector, which cannot follow a batch of the "
            f"local site(s) {local}; use AutoNormal with create_plates, or an encoder guide")
    try:
        probe, _ = particle_traces(model, guide, x[:1], 1, nesting, plate_one=False,
                                   inputs=take(inputs, slice(0, 1)))
    except (RuntimeError, ValueError, IndexError):  # parameters sized by another batch
        probe = None
    if guide.create_plates is None or probe is None or not subsampled(probe):
        raise PplVaeError(
            f"{name} keeps one value per example of the local site(s) {local}: give the model "
            f"pyro.plate('{DATA_PLATE}', N, subsample=index) with fit(..., inputs=['index']) "
            f"and the guide create_plates=lambda x, index: pyro.plate('{DATA_PLATE}', N, "
            "subsample=index), or write a guide with an encoder")


def _runs_vectorized(model, guide, x, nesting: int, inputs: dict, whole: bool) -> bool:
    """Whether two particles run at once (the pair broadcasts over a leading dim), tried on
    two examples (the same answer whatever the batch: a BatchNorm1d over a ``(2, B, C)``
    input would pass when ``B`` happens to equal its features), or on the whole batch when
    parameters are sized by it (``whole``)."""
    rows = slice(None) if whole else slice(0, 2)
    try:
        with torch.no_grad():
            particle_traces(model, guide, x[rows], 2, nesting, inputs=take(inputs, rows))
    except (RuntimeError, ValueError, IndexError):
        return False
    return True


def prepare(model, guide, x: torch.Tensor, inputs: dict | None = None) -> tuple[int, Plan]:
    """Plate nesting and checked :class:`Plan` of a pair, from one draw for each of ``x``.

    Uses a forked RNG, so preparing never changes later draws.
    """
    inputs = inputs or {}
    check_own_subsample(model, guide, x, inputs, DATA_PLATE)
    batch_params = batch_sized_params(model, guide, x, inputs)
    nesting = max_plate_nesting(model, guide, x, inputs)
    with torch.random.fork_rng(devices=[]):
        model_trace, guide_trace = particle_traces(model, guide, x, 1, nesting, plate_one=False,
                                                   inputs=inputs)
        plan = make_plan(model_trace, guide_trace,
                         vectorized=_runs_vectorized(model, guide, x, nesting, inputs,
                                                     bool(batch_params)),
                         batch_params=batch_params)
        _check_autoguide(model, guide, plan, x, inputs, nesting)
        _check_same_examples(model, guide_trace, x, inputs)
    return nesting, plan


def primary_site(model, plan: Plan) -> str:
    """The latent site figures and statistics describe: ``model.latent_site``, else the
    guide's last site."""
    names = [name for name, _ in plan.guide]
    wanted = hook(model, ModelHooks, "latent_site")
    return wanted if wanted in names else names[-1]


def site_log_prob(site: dict, sum_dims: tuple, scaled: bool = False) -> torch.Tensor:
    """``log_prob`` of a site per particle and example (mask applied, scale if asked)."""
    log_prob = per_example(site["fn"].log_prob(site["value"]), site, sum_dims)
    return times_scale(log_prob, site) if scaled else log_prob


def times_scale(value: torch.Tensor, site: dict) -> torch.Tensor:
    """``value`` times the site's scale (no operation for the plain number 1)."""
    scale = site["scale"]
    return value if isinstance(scale, (int, float)) and scale == 1 else value * scale


def per_example(value: torch.Tensor, site: Mapping[str, Any], sum_dims: tuple) -> torch.Tensor:
    """Reduce a tensor of ``site``'s batch shape to ``(K, batch)``, mask applied.

    After summing ``sum_dims`` only the particle and data dims can be larger
    than 1, so the result is a reshape to ``(-1, size of the data plate)``; an
    unsized plate (``pyro.plate("data")``, size -1) takes its size from the value.
    """
    if site["mask"] is not None:
        value = value * site["mask"]
    if sum_dims:
        value = value.sum(sum_dims, keepdim=True)
    frame = next(f for f in site["cond_indep_stack"] if f.name == DATA_PLATE)
    batch = frame.size if frame.size > 0 else value.shape[frame.dim]  # pyro.plate("data")
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


def collapsed_pair(model, guide) -> tuple | None:
    """The pair with auxiliary sites integrated out, where the guide declares one.

    A guide may provide ``collapsed(model) -> (model_fn, guide_fn)``: two programs
    keeping the contract whose latent sites are a subset of the pair's, with the
    others marginalised in closed form (NGVAE's precisions λ: Student-t marginals).
    Evaluation, PSIS and posterior moments use it; the engine never knows why.
    """
    collapse = hook(guide, GuideHooks, "collapsed")
    return collapse(model) if callable(collapse) else None


def check_local(plan: Plan, what: str) -> None:
    """Refuse global sites where a per-example weight is needed (IS, Rényi, PSIS)."""
    if plan.global_sites:
        raise PplVaeError(
            f"{what} needs one importance weight per example, but site(s) "
            f"{sorted(plan.global_sites)} sit outside pyro.plate('{DATA_PLATE}') and couple the "
            "examples; use elbo='trace' or 'meanfield' (they count global sites once per data set)")


def log_weights(model, guide, x: torch.Tensor, num_particles: int, nesting: int,
                plan: Plan, inputs: dict | None = None) -> LogWeights:
    """Run the pair on ``x`` with ``num_particles`` draws and split ``log w`` by kind of site.

    A pair that is not vectorized over particles (``plan.vectorized``) runs
    its particles one at a time. Enumerated sites are *sampled* here (summed in
    :mod:`ppl_vae.enumeration`): a guide site is drawn from ``q(y | x)``; a
    model-only site ``c`` is drawn by the model from ``p(c | ...)``, so its
    term counts in ``log_guide`` too (it is part of the proposal) — a valid,
    noisier importance sampler. Sites outside the data plate are refused.
    """
    check_local(plan, "an importance-weighted estimate")
    if not plan.vectorized and num_particles > 1:
        parts = [log_weights(model, guide, x, 1, nesting, plan, inputs)
                 for _ in range(num_particles)]
        return LogWeights(*(torch.cat([getattr(p, k) for p in parts])
                            for k in ("log_likelihood", "log_prior", "log_guide")))
    model_trace, guide_trace = particle_traces(model, guide, x, num_particles, nesting,
                                               plate_one=False, inputs=inputs)
    plan = plan.for_traces(model_trace, guide_trace)
    shape = (num_particles, x.shape[0])

    def total(trace, sites):
        terms = [site_log_prob(trace.nodes[name], dims) for name, dims in sites]
        return functools.reduce(torch.add, terms) if terms else x.new_zeros(shape)

    # a model-only discrete site is drawn by the model from p(c | ...): part of the proposal
    drawn_by_model = [(n, d) for n, d in plan.latent if n in plan.model_enumerated]
    return LogWeights(total(model_trace, plan.observed),
                      total(model_trace, plan.latent + plan.factors),
                      total(guide_trace, plan.guide + plan.auxiliary)
                      + total(model_trace, drawn_by_model))
