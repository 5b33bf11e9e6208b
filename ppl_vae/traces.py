"""Per-example log-densities read off model and guide traces.

Everything the engine knows about a model/guide pair comes from here: it runs
the guide (vectorized over ``K`` particles by an outer ``pyro.plate``), replays
the model on the guide's draws, and reduces each site's ``log_prob`` to one
number per particle and example by summing every dimension except the
particle dimension and the ``"data"`` plate's dimension. Site names and shapes
are discovered, never assumed (apart from the contract's ``"data"`` plate and
``"x"`` observation).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

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


def particle_traces(model, guide, x: torch.Tensor, num_particles: int, nesting: int):
    """Guide and replayed model traces with ``num_particles`` draws per example.

    The particles live in a plate at dim ``-(nesting + 1)``, outside every
    plate of the pair, so sites get shape ``(K, ..., batch, ...)``.
    """
    with pyro.plate(PARTICLE_PLATE, num_particles, dim=-(nesting + 1)):
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    return model_trace, guide_trace


def per_example(site: dict, nesting: int, num_particles: int, batch: int) -> torch.Tensor:
    """``log_prob`` of ``site`` as a ``(K, batch)`` tensor, unscaled, mask applied."""
    frames = {f.name: f.dim for f in site["cond_indep_stack"] if f.dim is not None}
    if DATA_PLATE not in frames:
        raise PplVaeError(
            f"site '{site['name']}' is outside the pyro.plate('{DATA_PLATE}', batch) plate; "
            "per-example bounds need every site inside it (see the model/guide contract)"
        )
    log_prob = site["fn"].log_prob(site["value"])
    if site["mask"] is not None and site["mask"] is not True:
        log_prob = log_prob * site["mask"]
    width = nesting + 1
    log_prob = log_prob.reshape((1,) * (width - log_prob.dim()) + log_prob.shape)
    data_axis = width + frames[DATA_PLATE]
    other = [d for d in range(1, width) if d != data_axis]
    if other:
        log_prob = log_prob.sum(dim=other, keepdim=True)
    return log_prob.reshape(log_prob.shape[0], -1).expand(num_particles, batch)


@dataclass
class LogWeights:
    """Per-particle, per-example pieces of ``log w = log p(x, z) - log q(z | x)``.

    Attributes:
        log_likelihood: ``log p(x | z)`` summed over observed sites, ``(K, batch)``.
        log_prior: ``log p(z)`` summed over latent sites, ``(K, batch)``.
        log_guide: ``log q(z | x)`` summed over guide sites, ``(K, batch)``.
        scaled_sites: names and scales of sites (model or guide) carrying a scale ≠ 1.
        reparameterized: whether every guide site has ``rsample``.
    """

    log_likelihood: torch.Tensor
    log_prior: torch.Tensor
    log_guide: torch.Tensor
    scaled_sites: dict
    reparameterized: bool

    @property
    def total(self) -> torch.Tensor:
        """``log w = log p(x | z) + log p(z) - log q(z | x)`` (unscaled)."""
        return self.log_likelihood + self.log_prior - self.log_guide


def log_weights(model, guide, x: torch.Tensor, num_particles: int, nesting: int) -> LogWeights:
    """Run the pair on ``x`` with ``num_particles`` draws and split ``log w`` by kind of site."""
    model_trace, guide_trace = particle_traces(model, guide, x, num_particles, nesting)
    check_sites(model_trace, guide_trace)
    batch = x.shape[0]
    zero = x.new_zeros(num_particles, batch)
    parts = {"obs": zero, "prior": zero, "guide": zero}
    for site in sample_sites(model_trace):
        key = "obs" if site["is_observed"] else "prior"
        parts[key] = parts[key] + per_example(site, nesting, num_particles, batch)
    for site in sample_sites(guide_trace):
        parts["guide"] = parts["guide"] + per_example(site, nesting, num_particles, batch)
    sites = sample_sites(model_trace) + sample_sites(guide_trace)
    scaled = {s["name"]: s["scale"] for s in sites if not _is_one(s["scale"])}
    reparameterized = all(s["fn"].has_rsample for s in sample_sites(guide_trace))
    return LogWeights(parts["obs"], parts["prior"], parts["guide"], scaled, reparameterized)


def _is_one(scale) -> bool:
    """Whether a site's scale (a number or a tensor) is exactly 1 everywhere."""
    return bool((torch.as_tensor(scale) == 1).all()) if torch.is_tensor(scale) else scale == 1.0


def check_sites(model_trace, guide_trace) -> None:
    """Raise a :class:`PplVaeError` when the pair breaks the model/guide contract."""
    observed = [s["name"] for s in sample_sites(model_trace) if s["is_observed"]]
    if OBS_SITE not in observed:
        raise PplVaeError(
            f"the model has no observed site named '{OBS_SITE}' (observed: {observed or 'none'}); "
            f"write pyro.sample('{OBS_SITE}', ..., obs=x) in the model"
        )
    latent = {s["name"] for s in sample_sites(model_trace) if not s["is_observed"]}
    guided = {s["name"] for s in sample_sites(guide_trace)}
    if latent != guided:
        raise PplVaeError(
            f"model latent sites {sorted(latent)} and guide sites {sorted(guided)} differ; "
            "the guide must sample exactly the model's latent sites, with the same names"
        )
