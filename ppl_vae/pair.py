"""Building a model/guide pair by name, collecting its parameters, reloading a run.

A pair is two callables keeping the contract (DESIGN.md). Pairs built here
are ``PyroModule``s that also carry ``ppl_vae_spec`` — the registry names and
options — so a run folder can rebuild them; user-written pairs need not.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch

from ppl_vae.errors import PplVaeError
from ppl_vae.registry import GUIDES, MODELS


@dataclass
class Pair:
    """A model, its guide, how they were built, and their own Pyro param store.

    ``store`` isolates parameters registered through ``pyro.param`` /
    ``pyro.module`` (plain-function pairs): run the pair inside ``scope()``.
    """

    model: object
    guide: object
    spec: dict | None = None
    store: dict = field(default_factory=lambda: {"params": {}, "constraints": {}})

    @contextmanager
    def scope(self):
        """Make this pair's parameters the global Pyro param store for a while."""
        with pyro.get_param_store().scope(self.store):
            yield self

    def modules(self) -> list[torch.nn.Module]:
        return [p for p in (self.model, self.guide) if isinstance(p, torch.nn.Module)]

    def named_parameters(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor: module parameters, then param-store entries (call in scope)."""
        named, seen = {}, set()
        for prefix, program in (("model", self.model), ("guide", self.guide)):
            if isinstance(program, torch.nn.Module):
                for name, param in program.named_parameters():
                    named[f"{prefix}.{name}"], _ = param, seen.add(id(param))
        for name, param in pyro.get_param_store().named_parameters():
            if id(param) not in seen:
                named[f"store.{name}"] = param
        return named


def _split_options(factory, options: dict, fixed: set[str]) -> dict:
    """The subset of ``options`` that ``factory`` accepts (minus the fixed arguments)."""
    accepted = set(inspect.signature(factory).parameters) - fixed
    return {k: v for k, v in options.items() if k in accepted}


def build(model: str, guide: str | None = None, *, data=None, event_shape=None,
          seed: int | None = 0, **options) -> Pair:
    """Build the registered ``model`` and ``guide`` (default: the model's own choice).

    Args:
        model: a registered model name (``ppl-vae list``).
        guide: a registered guide name; ``None`` takes ``model.default_guide``.
        data: a dataset, whose ``event_shape`` is used; or give ``event_shape``.
        seed: seeds the initial weights (``None`` leaves the RNG alone).
        **options: model and guide options (``latent_dim``, ``beta``, ``net``, ...);
            each goes to whichever factory accepts it, an unknown one is an error.
    """
    if event_shape is None:
        if data is None:
            raise PplVaeError("build() needs data= or event_shape= to size the networks")
        event_shape = data.event_shape
    model_factory = MODELS.get(model).factory
    if seed is not None:
        pyro.set_rng_seed(seed)
    model_options = _split_options(model_factory, options, {"event_shape"})
    built_model = model_factory(event_shape, **model_options)
    guide = guide or getattr(built_model, "default_guide", None) or "diagonal"
    guide_factory = GUIDES.get(guide).factory
    guide_options = _split_options(guide_factory, options, {"model", "event_shape"})
    unknown = set(options) - set(model_options) - set(guide_options)
    if unknown:
        raise PplVaeError(f"unknown option(s) {sorted(unknown)} for model '{model}' with guide "
                          f"'{guide}'; see `ppl-vae train --help`")
    built_guide = guide_factory(built_model, event_shape, **guide_options)
    spec = {"model": model, "guide": guide, "event_shape": list(event_shape),
            "options": dict(options)}
    built_model.ppl_vae_spec = spec
    return Pair(built_model, built_guide, spec)


def load_run(folder, model=None, guide=None, device: str = "cpu"):
    """Rebuild the pair of a run folder and load its last checkpoint.

    Pairs built by name are rebuilt from ``config.json``; a user-written pair
    must be passed as ``model`` and ``guide`` (fresh instances).
    """
    from ppl_vae.runs import load_checkpoint, read_config, read_metrics
    from ppl_vae.train import Run, load_parameters, resolve_device

    folder = Path(folder)
    config = read_config(folder)
    spec = config.get("pair")
    if model is None or guide is None:
        if spec is None:
            raise PplVaeError(f"{folder} was trained with a user-written pair; pass model= and "
                              "guide= to load_run")
        pair = build(spec["model"], spec["guide"], event_shape=tuple(spec["event_shape"]),
                     **spec["options"])
    else:
        pair = Pair(model, guide, spec)
    device = resolve_device(device)
    for module in pair.modules():
        module.to(device)
    state = load_checkpoint(folder, map_location=device)
    example = torch.zeros(1, *config["event_shape"], device=device)  # creates lazy parameters
    load_parameters(pair, state["params"], device, example)
    return Run(pair, folder, config, read_metrics(folder))
