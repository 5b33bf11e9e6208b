"""A pair's own ``pyro.param`` entries, written to a checkpoint and created again from it.

Pyro keeps a parameter as its unconstrained tensor and its constraint. A
checkpoint holds tensors only (``weights_only``), so each constraint is written as
a small JSON value — the name of one of Pyro's constraint objects, or
``[name, bound, ...]`` for the parametrised ones (``greater_than``, ``interval``,
...) — and read back to the same object. With both, a reloaded pair's
parameters exist before it is ever called: no probe batch invents their shapes
(a per-example parameter of ``N`` rows stays ``(N, K)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pyro.distributions import constraints
from pyro.params.param_store import StateDict

MODULE_SEPARATOR = "$$$"  # pyro.module's names: the entry is the module's own tensor
_BOUNDED = {"greater_than": ("lower_bound",), "greater_than_eq": ("lower_bound",),
            "less_than": ("upper_bound",), "interval": ("lower_bound", "upper_bound"),
            "half_open_interval": ("lower_bound", "upper_bound")}


def _singletons() -> dict[str, constraints.Constraint]:
    return {name: value for name, value in vars(constraints).items()
            if isinstance(value, constraints.Constraint)}


def constraint_to_json(constraint) -> str | list | None:
    """A constraint as JSON (a name, or ``[name, bounds...]``); None when it has no spelling."""
    for name, value in _singletons().items():
        if value is constraint:
            return name
    for name, fields in _BOUNDED.items():
        kind = getattr(constraints, name, None)
        if isinstance(kind, type) and type(constraint) is kind:
            return [name, *(float(getattr(constraint, f)) for f in fields)]
    return None


def constraint_from_json(spelled) -> constraints.Constraint | None:
    """The constraint :func:`constraint_to_json` spelled, or None."""
    if isinstance(spelled, str):
        return _singletons().get(spelled)
    if isinstance(spelled, list) and spelled and spelled[0] in _BOUNDED:
        return getattr(constraints, spelled[0])(*spelled[1:])
    return None


def store_constraints(store: Mapping[str, Any]) -> dict[str, str | list]:
    """The spelled constraints of a pair's param store (``Pair.store``), where they have one."""
    spelled = {name: constraint_to_json(c) for name, c in store["constraints"].items()}
    return {name: value for name, value in spelled.items() if value is not None}


def restore(store: StateDict, saved: dict[str, torch.Tensor], spelled: dict, device,
            modules: list[torch.nn.Module] | None = None) -> None:
    """Create the store's entries from a checkpoint's ``store.<name>`` tensors and constraints.

    Entries of ``pyro.module(prefix, module)`` (named ``prefix$$$param``) hold the
    module's own tensors: they are registered as Pyro would, from the one module of
    ``modules`` (those the pair reaches, and their submodules) whose parameters have exactly those names and
    shapes, its values loaded; a prefix no module matches is left to a call.
    """
    registered: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in saved.items():
        name = key.removeprefix("store.")
        if key == name:
            continue
        if MODULE_SEPARATOR in name:
            prefix, _, param = name.partition(MODULE_SEPARATOR)
            registered.setdefault(prefix, {})[param] = tensor
            continue
        constraint = constraint_from_json(spelled.get(name))
        if constraint is not None:
            store["params"][name] = tensor.to(device).clone().requires_grad_(True)
            store["constraints"][name] = constraint
    for prefix, tensors in registered.items():
        module = _module_with(tensors, modules or [])
        if module is None:
            continue
        with torch.no_grad():
            for param, value in module.named_parameters():
                value.copy_(tensors[param].to(value.device))
                store["params"][f"{prefix}{MODULE_SEPARATOR}{param}"] = value
                store["constraints"][f"{prefix}{MODULE_SEPARATOR}{param}"] = constraints.real


def _module_with(tensors: dict[str, torch.Tensor], modules: list[torch.nn.Module]):
    """The module (or submodule) whose parameters are exactly ``tensors`` by name and shape."""
    for root in modules:
        for module in root.modules():
            own = dict(module.named_parameters())
            if own.keys() == tensors.keys() and all(
                    own[k].shape == tensors[k].shape for k in own):
                return module
    return None
