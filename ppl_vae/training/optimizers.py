"""The optimizer: fused Adam by default, or any ``pyro.optim`` / ``torch.optim`` optimizer.

A run records its optimizer as a name and options (``config.json``'s ``optimizer``
section: :class:`~ppl_vae.config.TrainConfig`'s ``optim`` and ``optim_args``):

- ``adam`` (the default): ``torch.optim.Adam`` with fused kernels
  (:func:`ppl_vae.training.speedups.adam`), stepping on the per-example loss;
- any other class of ``torch.optim`` or one of Pyro's own optimizers, by its
  name in any spelling (``sgd``, ``clipped_adam``, ``AdagradRMSProp``; recorded
  as ``sgd``, ``clippedadam``, ``adagradrmsprop``), or ``package.module:Class``
  for a user's ``torch.optim.Optimizer``.

``fit(optim=...)`` also takes the objects a Pyro user has: a ``pyro.optim``
optimizer (``pyro.optim.ClippedAdam({"lr": 0.01, "lrd": 0.999})``) or a torch
optimizer class (with ``optim_args=``).

What Pyro's ``SVI`` does with a ``PyroOptim``, and what is done here: SVI makes
one torch optimizer per parameter tensor, each built with the wrapper's options
(a dict, or a function of the tensor's name), clips that tensor's gradient by
the wrapper's ``clip_args`` and steps it. Here one torch optimizer holds every
tensor (one parameter group per tensor where the options are a function of
its name), and a step pre-hook clips each tensor alone in the same way; the
optimizers named here update each tensor on its own, so every tensor gets the
update SVI gives it. The gradient is SVI's too: every optimizer but the default steps on the
loss SVI differentiates, the batch's summed negative objective ``B · loss``
(``loss`` is the reported per-example value), so options tuned for Pyro
(SGD's ``lr``, ClippedAdam's ``clip_norm``, weight decay) carry over. Adam is
invariant to that scale up to its ``ε``, and the default keeps the per-example
loss (``pyro.optim.Adam`` with one dict of options runs as the default). One
difference remains: SVI steps only the tensors a step's trace reached, while
here a group whose tensor got no gradient still decays ClippedAdam's learning
rate (``lrd``).

``--lr``, ``--betas`` and ``--eps`` fill the constructor's arguments of those
names; ``optim_args`` holds the rest. ``pyro.optim``'s learning-rate schedulers
are refused (use ``--lr-schedule``), as is ``LBFGS`` (it needs a closure).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import pyro.optim
import torch
from pyro.optim.adagrad_rmsprop import AdagradRMSProp
from pyro.optim.clipped_adam import ClippedAdam
from pyro.optim.dct_adam import DCTAdam
from pyro.params.param_store import normalize_param_name
from torch.nn.utils import clip_grad_norm_, clip_grad_value_

from ppl_vae.config import DEFAULT_OPTIM, FILLED_OPTIM_ARGS, TrainConfig, optim_key
from ppl_vae.errors import PplVaeError
from ppl_vae.training import speedups

_REFUSED = {"lbfgs": "it needs a closure that re-evaluates the loss, which an SVI step has not",
            "optimizer": "it is the base class, not an optimizer"}


def known() -> dict[str, type]:
    """Recorded name -> class: Pyro's own optimizers and those of ``torch.optim``."""
    table: dict[str, type] = {optim_key(kind.__name__): kind
                              for kind in (ClippedAdam, AdagradRMSProp, DCTAdam)}
    for name in torch.optim.__all__:
        kind = getattr(torch.optim, name)
        if isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer) \
                and optim_key(name) not in _REFUSED:
            table[optim_key(name)] = kind
    return table


def constructor(name: str) -> type:
    """The optimizer class a recorded name stands for, or a one-line error."""
    if name in _REFUSED:
        raise PplVaeError(f"--optim {name} is not taken: {_REFUSED[name]}")
    if ":" not in name:
        if name not in known():
            raise PplVaeError(f"unknown --optim {name!r}; give adam (the default), a torch.optim "
                              f"or pyro.optim optimizer ({', '.join(sorted(known()))}) or "
                              "package.module:Class")
        return known()[name]
    module, _, attribute = name.partition(":")
    try:
        kind = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise PplVaeError(f"cannot import the optimizer {name} ({error}); check --optim") from None
    if not (isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer)):
        raise PplVaeError(f"--optim {name} is not a torch.optim.Optimizer subclass")
    return kind


@dataclasses.dataclass(frozen=True)
class Choice:
    """An optimizer handed to ``fit`` as objects: its class, options (a dict, or Pyro's
    function of a tensor's name) and per-tensor clipping (Pyro's ``clip_args``)."""

    constructor: type
    options: dict | Callable = dataclasses.field(default_factory=dict)
    clip: dict | Callable = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, optim, optim_args: dict | None) -> Choice:
        """A ``pyro.optim`` optimizer, or a torch optimizer class with ``optim_args``."""
        if isinstance(optim, pyro.optim.lr_scheduler.PyroLRScheduler):
            raise PplVaeError(_scheduler_advice(optim))
        if isinstance(optim, pyro.optim.PyroOptim):
            if optim_args:
                raise PplVaeError("optim_args= goes with an optimizer name or class; a "
                                  "pyro.optim optimizer carries its own options")
            for what in (optim.pt_optim_args, optim.pt_clip_args):
                if callable(what) and len(inspect.signature(what).parameters) != 1:
                    raise PplVaeError("a per-tensor function of (module_name, param_name) "
                                      "(Pyro's deprecated form) is not taken; give a function "
                                      "of the tensor's name, or one dict")
            # Pyro types the constructor as any callable; every pyro.optim wrapper holds a class.
            constructor: type = optim.pt_optim_constructor  # type: ignore[assignment]
            return cls(constructor, optim.pt_optim_args, optim.pt_clip_args or {})
        if isinstance(optim, type) and issubclass(optim, torch.optim.Optimizer):
            return cls(optim, dict(optim_args or {}))
        raise PplVaeError(f"optim= takes a name ('adam', 'clipped_adam', 'sgd', ...), a "
                          f"pyro.optim optimizer or a torch.optim.Optimizer class, not "
                          f"{type(optim).__name__}")

    @property
    def name(self) -> str:
        """The recorded name of :attr:`constructor` (``torch.optim.Adam``: ``adam``)."""
        found = [name for name, kind in known().items() if kind is self.constructor]
        return found[0] if found else \
            f"{self.constructor.__module__}:{self.constructor.__qualname__}"

    def settings(self) -> dict:
        """What :class:`~ppl_vae.config.TrainConfig` records of it: ``optim``, ``optim_args``,
        and ``lr``, ``betas``, ``eps`` where the options give them."""
        options, clip = self.options, self.clip
        for what in (options, clip):
            if not isinstance(what, dict):
                return {"optim": self.name,
                        "optim_args": {"per_tensor": f"{what.__module__}:{what.__qualname__}"}}
        assert isinstance(options, dict) and isinstance(clip, dict)  # both checked above
        args = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
        if clip:
            args["clip_args"] = dict(clip)
        own = {k: tuple(args.pop(k)) if k == "betas" else args.pop(k)
               for k in FILLED_OPTIM_ARGS if k in args}
        return {"optim": self.name, "optim_args": args or None, **own}


def resolve(config: TrainConfig, optim, optim_args: dict | None, given: dict
            ) -> tuple[TrainConfig, Choice | None]:
    """``config`` with the optimizer ``fit`` was handed recorded in it, and that
    :class:`Choice` (None for a name: ``config`` alone rebuilds it). ``given``: the settings
    passed explicitly, which the optimizer's own ``lr``/``betas``/``eps`` may not contradict."""
    if optim is None or isinstance(optim, str):
        changes: dict[str, Any] = {"optim": optim} if optim else {}
        if optim_args is not None:
            changes["optim_args"] = optim_args
        return dataclasses.replace(config, **changes), None
    choice = Choice.of(optim, optim_args)
    recorded = choice.settings()
    clash = [k for k in FILLED_OPTIM_ARGS if k in recorded and k in given
             and _same(given[k]) != _same(recorded[k])]
    if clash:
        raise PplVaeError(f"the optimizer's own {', '.join(clash)} contradict(s) the setting(s) "
                          f"given beside it ({', '.join(f'{k}={given[k]}' for k in clash)}); "
                          "give each once")
    return dataclasses.replace(config, **recorded), choice


def _same(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _is_default(config: TrainConfig) -> bool:
    """The default fused Adam: ``adam`` without Pyro's per-tensor options or clipping."""
    return config.optim == DEFAULT_OPTIM and \
        not {"per_tensor", "clip_args"} & set(config.optim_args or {})


def loss_scale(config: TrainConfig, batch_size: int) -> float:
    """From the per-example loss to the one the optimizer steps on (module docstring)."""
    return 1.0 if _is_default(config) else float(batch_size)


def build(params: dict[str, torch.Tensor], config: TrainConfig,
          choice: Choice | None = None) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over the named ``params``; ``choice``: the objects ``fit``
    was handed, for what a name cannot rebuild (Pyro's per-tensor functions)."""
    stored = dict(config.optim_args or {})
    if _is_default(config):
        return _built(config, lambda: speedups.adam(params.values(), config.lr, config.betas,
                                                    config.eps, **stored))
    if choice is None:
        if "per_tensor" in stored:
            raise PplVaeError(f"this run's optimizer takes per-tensor options from "
                              f"{stored['per_tensor']}; resume it from Python with "
                              "fit(..., optim=the same pyro.optim optimizer)")
        clip = stored.pop("clip_args", {})
        choice = Choice(constructor(config.optim), stored, clip)
    kind = choice.constructor
    takes = inspect.signature(kind).parameters
    filled = {k: tuple(getattr(config, k)) if k == "betas" else getattr(config, k)
              for k in FILLED_OPTIM_ARGS if k in takes}
    options = choice.options
    if not isinstance(options, dict):  # one group per tensor, each with its own options
        groups = [{"params": [p], **filled, **_options(options, name)}
                  for name, p in params.items()]
        for group in groups:
            _check_options(config.optim, takes, group)
        optimizer = _built(config, lambda: kind(groups))
    else:
        optimizer = _built(config, lambda: kind(list(params.values()),
                                                **{**filled, **options}))
    if choice.clip:
        clips = {id(p): _options(choice.clip, name) for name, p in params.items()}
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: _clip(opt, clips))
    return optimizer


def _built(config: TrainConfig, make: Callable[[], torch.optim.Optimizer]
           ) -> torch.optim.Optimizer:
    """``make()``, an option the class refuses turned into one line."""
    try:
        return make()
    except (TypeError, ValueError, KeyError) as error:
        raise PplVaeError(f"cannot build the optimizer {config.optim} with options "
                          f"{config.optim_args or {}}: {error}") from None


def _check_options(name: str, takes, options: dict) -> None:
    """Refuse an option the class does not take (a parameter group would keep it unread)."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes.values()):
        return
    unknown = sorted(set(options) - set(takes) - {"params"})
    if unknown:
        known = ", ".join(k for k in takes if k not in ("params", "self"))
        raise PplVaeError(f"the optimizer {name} takes no option {', '.join(unknown)}; its "
                          f"options: {known}")


def _options(options, name: str) -> dict:
    """A tensor's options: the dict, or Pyro's per-tensor function called with the name Pyro
    would give it (``decoder.fc.weight``: our ``model.``/``guide.``/``store.`` prefix off)."""
    return options(normalize_param_name(name.split(".", 1)[1])) if callable(options) \
        else options


def _clip(optimizer: torch.optim.Optimizer, clips: dict) -> None:
    """Pyro's ``clip_args`` on each tensor alone: its gradient's norm, then its values."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            clip = clips[id(p)]
            if p.grad is not None and clip.get("clip_norm") is not None:
                clip_grad_norm_(p, clip["clip_norm"])
            if p.grad is not None and clip.get("clip_value") is not None:
                clip_grad_value_(p, clip["clip_value"])


def _scheduler_advice(scheduler) -> str:
    """One line for a ``pyro.optim`` scheduler: what to give instead, stepped once an epoch
    as Pyro's examples step theirs (``StepLR``/``ExponentialLR`` to ``"step"``,
    ``MultiStepLR`` to ``"multistep"``)."""
    kind, args = scheduler.pt_scheduler_constructor.__name__, scheduler.kwargs
    optimizer = f"pyro.optim.{scheduler.pt_optim_constructor.__name__}({scheduler.pt_optim_args})"
    gamma = args.get("gamma", 0.1)
    same = {"ExponentialLR": f"lr_schedule='step', lr_step_epochs=1, lr_gamma={gamma}",
            "StepLR": f"lr_schedule='step', lr_step_epochs={args.get('step_size')}, "
                      f"lr_gamma={gamma}",
            "MultiStepLR": f"lr_schedule='multistep', lr_milestones={args.get('milestones')}, "
                           f"lr_gamma={gamma}"}.get(kind)
    told = (f"; stepped once an epoch, {kind} is optim={optimizer}, {same}" if same else
            f"; give optim={optimizer} and lr_schedule= (constant, cosine, step, multistep)")
    return f"pyro.optim.{kind} is not taken: fit steps the learning rate itself{told}"
