"""The torch modules a pair reaches: their mode while the engine evaluates, and their buffers.

Pyro programs hold their networks in many ways: the program is a ``PyroModule``, a
bound method of an ``nn.Module`` (``vae.model``, Pyro's examples), a function that
closes over a network, or one that registers a global network with ``pyro.module``.
The engine finds them all in two ways:

- **statically**: a program that is a module, the owner (``__self__``) of a bound
  method, and modules held in a function's closure cells;
- **by running**: every module whose ``forward`` is called while the pair is traced
  (a forward pre-hook, registered only for the duration of the engine's own call).

:func:`frozen` puts every module reached in eval mode (dropout off, BatchNorm on its
running statistics, which are then left untouched) and gives each its previous mode
back afterwards. Evaluation, sampling, figures, diagnostics and the contract check
run inside it; training never does. :func:`named_buffers` names the buffers
(BatchNorm's ``running_mean``/``running_var``/``num_batches_tracked``, any registered
buffer) of the modules found, so checkpoints keep them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from torch import nn

from ppl_vae.naming import unwrapped


def static_roots(*programs) -> dict[str, nn.Module]:
    """Modules named by the programs themselves: ``{"model": ..., "guide_owner": ...}``.

    A program that is a module is named by its role; the owner of a bound method
    ``<role>_owner`` (``owner`` when model and guide share it); modules in a
    function's closure, or a ``functools.partial``'s arguments, ``<role>_closure<i>``. The roles are ``model``, ``guide``
    (then ``program<i>`` for more programs).
    """
    found: dict[str, nn.Module] = {}
    roles = ["model", "guide", *(f"program{i}" for i in range(2, len(programs)))]
    for role, program in zip(roles, (unwrapped(p) for p in programs)):
        if isinstance(program, nn.Module):
            found[role] = program
            continue
        owner = getattr(program, "__self__", None)
        if isinstance(owner, nn.Module):
            found[f"{role}_owner"] = owner
        function = program.__func__ if inspect.ismethod(program) else program
        cells = getattr(function, "__closure__", None) or ()
        held = [c.cell_contents for c in cells if _filled(c)]
        if isinstance(program, functools.partial):  # a decorated method: the owner is an arg
            held += [*program.args, *program.keywords.values()]
        for i, module in enumerate(m for m in held if isinstance(m, nn.Module)):
            found[f"{role}_closure{i}"] = module
    owners = [k for k in found if k.endswith("_owner")]
    if len(owners) == 2 and found[owners[0]] is found[owners[1]]:
        found = {("owner" if k == owners[0] else k): v for k, v in found.items()
                 if k != owners[1]}
    return _outermost(found)


def held_modules(*programs) -> list[nn.Module]:
    """Modules held as attributes by the owner of a bound method when the owner is not a
    module itself (a plain class holding its networks, as :class:`Sequences`-style
    adapters of Pyro's examples do)."""
    held = []
    for program in (unwrapped(p) for p in programs):
        owner = getattr(program, "__self__", None)
        if owner is not None and not isinstance(owner, nn.Module):
            held += [v for v in vars(owner).values() if isinstance(v, nn.Module)]
    return held


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018  (an empty cell raises)
    except ValueError:
        return False
    return True


def _outermost(named: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Drop every module that is the same as, or inside, one listed before it."""
    kept: dict[str, nn.Module] = {}
    inside: set[int] = set()
    for name, module in named.items():
        if id(module) in inside:
            continue
        kept[name] = module
        inside.update(id(m) for m in module.modules())
    return kept


@contextlib.contextmanager
def frozen(*programs, found: list | None = None):
    """Every module the programs reach in eval mode, state untouched; modes restored after.

    ``found``: a list that receives each module called while inside, in call order.
    """
    previous: dict[int, tuple[nn.Module, bool]] = {}

    def to_eval(module: nn.Module) -> None:
        if id(module) not in previous:
            previous[id(module)] = (module, module.training)
            module.training = False

    for root in static_roots(*programs).values():
        for module in root.modules():
            to_eval(module)

    def pre_hook(module, args):
        if found is not None and id(module) not in previous:
            found.append(module)
        to_eval(module)

    handle = nn.modules.module.register_module_forward_pre_hook(pre_hook)
    try:
        yield
    finally:
        handle.remove()
        for module, training in previous.values():
            module.training = training


def roots(programs: tuple, called: list[nn.Module]) -> dict[str, nn.Module]:
    """The static roots, then each called module outside them, named ``module<i>``."""
    named = static_roots(*programs)
    named.update({f"module{i}": m for i, m in enumerate(called)})
    kept = _outermost(named)
    return {name: kept[name] for name in named if name in kept}


def named_buffers(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``{"<root>.<buffer>": tensor}`` for every buffer of the modules, each tensor once."""
    named: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for prefix, module in modules.items():
        for name, buffer in module.named_buffers():
            if id(buffer) not in seen:
                named[f"{prefix}.{name}"] = buffer
                seen.add(id(buffer))
    return named
