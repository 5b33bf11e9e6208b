"""Building a model/guide pair, collecting its parameters, reloading a run.

A pair is two callables keeping the contract (DESIGN.md). Its ``spec``, a
:class:`~ppl_vae.config.PairSpec`, says how a run folder can rebuild it: from the
registry (:func:`build`), a user factory returning a :class:`Pair` or ``(model,
guide)``, the importable paths of programs handed to ``fit`` directly (module-level
functions, or instances of classes built without arguments), or not at all (a
lambda or closure: reloading needs ``model=`` and ``guide=``).

A run folder is data, not code: :func:`ppl_vae.trained.load_run` imports a recorded path only
when asked to (``trust_code=True``, ``--trust-run-code``), the way checkpoints
load with ``weights_only``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import weakref
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyro
import torch
from pyro.params.param_store import StateDict

import ppl_vae.guides  # noqa: F401  (registers the built-in guides)
import ppl_vae.models  # noqa: F401  (registers the built-in models)
from ppl_vae.config import PairSpec
from ppl_vae.contract import ModelHooks, hook
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.modules import frozen, named_buffers, roots
from ppl_vae.naming import Names, renamed
from ppl_vae.registry import GUIDES, MODELS
from ppl_vae.traces import Plan, collapsed_pair, particle_traces, prepare, primary_site, take

if TYPE_CHECKING:
    from ppl_vae.data.dataset import Dataset

PROBE_ROWS = 256  # examples a plan is found on, outside training (memoized: found once)


@dataclass(eq=False)
class Pair:
    """A model, its guide, how they were built, and their own Pyro param store.

    ``store`` isolates parameters registered through ``pyro.param`` /
    ``pyro.module`` (plain-function pairs): run the pair inside ``scope()``.
    The facts the engine needs about a pair are asked of it, and found once:
    :attr:`device`, :meth:`plan`, :meth:`primary_site` and :attr:`collapsed`. ``plans``
    is the engine's one memo (trainer, estimators, evaluation and diagnostics ask
    :meth:`plan`), and it goes when the pair does. ``site``: the latent site the user
    asked statistics and figures to describe (``diagnose --site``), else None.
    """

    model: Callable[..., Any]
    guide: Callable[..., Any]
    spec: PairSpec | None = None
    store: StateDict = field(default_factory=lambda: StateDict(params={}, constraints={}))
    called: list | None = field(default=None, repr=False)
    site: str | None = None
    plans: dict = field(default_factory=dict, init=False, repr=False)
    _in_scope: bool = field(default=False, init=False, repr=False)

    @contextmanager
    def scope(self):
        """The engine's settings, with this pair's parameters as Pyro's param store, for a while.

        Re-entrant: inside it, Pyro's live store holds parameters that ``store`` receives
        only on leaving, so a nested call keeps the live one.
        """
        if self._in_scope:
            yield self
            return
        self._in_scope = True
        try:
            with engine_settings(self.model, self.guide), \
                    pyro.get_param_store().scope(self.store):
                yield self
        finally:
            self._in_scope = False

    @contextmanager
    def evaluation(self):
        """:meth:`scope` with every module the pair reaches in eval mode (dropout off,
        BatchNorm on its running statistics); their modes are restored after."""
        with self.scope(), frozen(self.model, self.guide):
            yield self

    def check(self, x: torch.Tensor, inputs: dict | None = None) -> None:
        """Trace the pair, checked against the contract; creates lazy parameters.

        Call inside :meth:`scope`. Runs with a forked RNG, validation on and every
        module in eval mode (no state changes: BatchNorm's statistics stay as they
        were); the plan found is the one :meth:`plan` returns from then on, and the
        modules called are remembered (:meth:`reached_modules`).
        """
        found: list = []
        with torch.no_grad(), pyro.validation_enabled(True), \
                frozen(self.model, self.guide, found=found), _user_errors(x, inputs):
            nesting, _ = self.plan(x, inputs, probe_rows=None)
            if self.called is None:
                with pyro.poutine.block(), torch.random.fork_rng(devices=[]):
                    particle_traces(self.model, self.guide, x, 1, nesting, plate_one=False,
                                    inputs=inputs)
                self.called = found

    def reached_modules(self) -> dict[str, torch.nn.Module]:
        """Every module the pair reaches, named (:func:`ppl_vae.modules.roots`): the
        programs, owners of bound methods, closures, and those called in :meth:`check`."""
        return roots((self.model, self.guide), self.called or [])

    def named_buffers(self) -> dict[str, torch.Tensor]:
        """The buffers of :meth:`reached_modules` (BatchNorm statistics, ...), by name."""
        return named_buffers(self.reached_modules())

    def plan(self, x: torch.Tensor, inputs: dict | None = None,
             probe_rows: int | None = PROBE_ROWS) -> tuple[int, Plan]:
        """``(plate nesting, Plan)`` (:func:`~ppl_vae.traces.prepare`), found once per pattern
        of inputs: which are given, which ``None`` (M2's labelled and unlabelled parts).

        Found on the first ``probe_rows`` of ``x`` (all of them when None, as
        :meth:`check` does on a training batch, so parameters sized by the batch are
        created from it); a pair whose parameters exist for exactly ``x``'s rows (per-example
        parameters of a full-batch program) fails on fewer and is prepared on all of them.
        """
        inputs = inputs or {}
        pattern = tuple((name, value is None) for name, value in sorted(inputs.items()))
        if pattern not in self.plans:
            rows = slice(0, probe_rows)
            try:
                self.plans[pattern] = prepare(self.model, self.guide, x[rows], take(inputs, rows))
            except (RuntimeError, ValueError, IndexError):
                if probe_rows is None or x.shape[0] <= probe_rows:
                    raise
                self.plans[pattern] = prepare(self.model, self.guide, x, inputs)
        return self.plans[pattern]

    def primary_site(self, x: torch.Tensor, inputs: dict | None = None) -> str:
        """The latent site figures and statistics describe: :attr:`site` where the user named
        one, else ``model.latent_site`` or the guide's last."""
        plan = self.plan(x, inputs)[1]
        names = [name for name, _ in plan.guide]
        if self.site is not None and self.site not in names:
            raise PplVaeError(f"site '{self.site}' is not sampled by the guide; name one of "
                              f"{names}")
        return self.site or primary_site(self.model, plan)

    @functools.cached_property
    def collapsed(self) -> Pair | None:
        """The pair with auxiliary sites integrated out (:func:`ppl_vae.traces.collapsed_pair`),
        or None; made once, so its plan is found once too."""
        collapsed = collapsed_pair(self.model, self.guide)
        if collapsed is None:
            return None
        model, guide = collapsed
        return Pair(model, guide, self.spec, self.store)

    @property
    def device(self) -> torch.device:
        """Where the pair's parameters live (CPU for a pair without parameters)."""
        first = next(iter(self._tensors()), None)
        return torch.device("cpu") if first is None else first.device

    def _tensors(self):
        for module in self.modules():
            yield from module.parameters()
        yield from self.store["params"].values()

    def modules(self) -> list[torch.nn.Module]:
        return [p for p in (self.model, self.guide) if isinstance(p, torch.nn.Module)]

    def named_parameters(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor: module parameters, then param-store entries (call in scope)."""
        named: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for prefix, program in (("model", self.model), ("guide", self.guide)):
            if isinstance(program, torch.nn.Module):
                for name, param in program.named_parameters():
                    if id(param) not in seen:  # a network shared by model and guide: once
                        named[f"{prefix}.{name}"] = param
                        seen.add(id(param))
        for name, tensor in pyro.get_param_store().named_parameters():
            if id(tensor) not in seen:
                named[f"store.{name}"] = tensor
        return named


@contextmanager
def _user_errors(x: torch.Tensor, inputs: dict | None):
    """One line for the two mistakes a Pyro example meets first: a keyword the programs call
    otherwise, and a network written for flat vectors."""
    try:
        yield
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise PplVaeError(f"{error}: the programs call this input otherwise; map it, e.g. "
                          "fit(..., inputs={'ys': 'y'}) (CLI --inputs ys=y; 'y:onehot' for "
                          "one-hot rows)") from None
    except RuntimeError as error:
        if "cannot be multiplied" not in str(error):
            raise
        raise PplVaeError(f"a network of the pair cannot take x of shape {tuple(x.shape)} "
                          f"({str(error).splitlines()[0]}); a network written for flat "
                          "vectors flattens first: x.reshape(x.shape[0], -1)") from None


def with_names(pair: Pair, names: Names) -> Pair:
    """``pair`` with both programs seen through ``names`` (:mod:`ppl_vae.naming`), recorded
    in its spec so a run folder rebuilds it; ``pair`` itself when nothing is renamed."""
    if names.is_contract:
        return pair
    spec = None if pair.spec is None else replace(pair.spec, names=names.to_json())
    return Pair(renamed(pair.model, names), renamed(pair.guide, names), spec, pair.store)


def _split_options(factory, options: dict, fixed: set[str]) -> dict:
    """The subset of ``options`` that ``factory`` accepts (minus the fixed arguments)."""
    accepted = set(inspect.signature(factory).parameters) - fixed
    return {k: v for k, v in options.items() if k in accepted}


def _defaults(factory, fixed: set[str]) -> dict:
    """The keyword defaults of ``factory`` (what a run used for the options not given)."""
    return {name: p.default for name, p in inspect.signature(factory).parameters.items()
            if name not in fixed and p.default is not p.empty}


def import_path(path: str):
    """The object named ``"package.module:qualified.name"``; one-line errors."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise PplVaeError(f"'{path}' is not of the form package.module:name")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise PplVaeError(f"cannot import '{module_name}' ({error}); put it on PYTHONPATH or "
                          "install it") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise PplVaeError(f"module '{module_name}' has no '{qualname}'")
        obj = getattr(obj, part)
    return obj


def importable_path(program) -> tuple[str | None, str]:
    """``("module:name", "")`` for a module-level function, a no-argument class instance, or
    a method bound to one (``"module:Class.model"``).

    Otherwise ``(None, why)``. Nothing is imported: the module is already loaded.
    """
    if isinstance(program, functools.partial):
        return None, ("a functools.partial (a decorated method, config_enumerate(...)) cannot "
                      "be named again; mark the sites inside the program, or pass model= and "
                      "guide= to load_run")
    if inspect.ismethod(program):
        owner, why = importable_path(program.__self__)
        if owner is None:
            return None, f"the owner of {program.__name__}(): {why}"
        return f"{owner}.{program.__name__}", ""
    target = program if inspect.isfunction(program) else type(program)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if module in (None, "__main__") or "<" in qualname:
        where = "in __main__" if module == "__main__" else f"'{qualname}', a lambda or closure"
        return None, (f"{type(program).__name__} {where} cannot be imported again; define it "
                      "in an importable module")
    resolved: object = sys.modules.get(module)
    for part in qualname.split("."):
        resolved = getattr(resolved, part, None)
    if resolved is not target:
        return None, f"'{module}:{qualname}' does not name it"
    if target is type(program):
        required = [p.name for p in inspect.signature(target).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if required:
            return None, (f"{qualname}() needs the argument(s) {required}; build it with a "
                          "factory (ppl_vae.build('package.module:factory', ...)) to record them")
    return f"{module}:{qualname}", ""


def _import_program(path: str, owners: dict):
    """The program ``path`` names: a function, a fresh instance of a class, or a method bound
    to a fresh instance of its class (one instance per class, shared by model and guide)."""
    module_name, _, qualname = path.partition(":")
    obj = import_path(path)
    if isinstance(obj, type):
        return owners.setdefault(path, obj())
    owner_name, _, method = qualname.rpartition(".")
    owner_path = f"{module_name}:{owner_name}"
    if owner_name and isinstance(import_path(owner_path), type):
        return getattr(owners.setdefault(owner_path, import_path(owner_path)()), method)
    return obj


def objects_spec(model, guide, event_shape) -> PairSpec:
    """The spec of a pair handed to ``fit`` directly: importable paths, or why not."""
    (model_path, why_model), (guide_path, why_guide) = importable_path(model), \
        importable_path(guide)
    if model_path and guide_path:
        return PairSpec("objects", model_path, guide_path, tuple(event_shape))
    return PairSpec("unimportable", "user-written", "user-written",
                    why="; ".join(w for w in (why_model, why_guide) if w))


def _from_factory(path: str, data, options: dict) -> Pair:
    """Call the user factory ``path`` as ``factory(data, **options)``; a class with ``model``
    and ``guide`` methods (Pyro's examples) is built as ``Class(**options)``."""
    if data is None:
        raise PplVaeError(f"the factory '{path}' takes the dataset: pass data=")
    factory = import_path(path)
    if isinstance(factory, type):
        if not (hasattr(factory, "model") and hasattr(factory, "guide")):
            raise PplVaeError(f"--model takes a factory 'package.module:make_pair' (called as "
                              f"make_pair(data, **options), returning (model, guide)) or a class "
                              f"with model and guide methods; '{path}' is a class without them")
        try:
            owner = factory(**options)
        except TypeError as error:
            raise PplVaeError(f"cannot build {path}({', '.join(options)}): {error}; give only "
                              "the options its constructor takes") from None
        built = (owner.model, owner.guide)
    else:
        built = factory(data, **options)
    if isinstance(built, Pair):
        pair = Pair(built.model, built.guide, store=built.store)
    elif isinstance(built, tuple) and len(built) == 2:
        pair = Pair(*built)
    else:
        raise PplVaeError(f"the factory '{path}' returned {type(built).__name__}; return a "
                          "ppl_vae.Pair or a (model, guide) tuple")
    pair.spec = PairSpec("factory", path, f"from {path}", tuple(data.event_shape), dict(options))
    _remember(pair)
    return pair


_SPECS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _remember(pair: Pair) -> Pair:
    """Note how ``pair.model`` was built, for :func:`built_spec` (nothing is written onto it)."""
    try:
        _SPECS[pair.model] = pair.spec
    except TypeError:  # not weakly referable: fit(pair=...) still carries the spec
        pass
    return pair


def built_spec(model) -> PairSpec | None:
    """The spec :func:`build` or a factory recorded for ``model``: how
    ``fit(pair.model, pair.guide, data)`` knows how a run folder rebuilds the pair."""
    try:
        return _SPECS.get(model)
    except TypeError:
        return None


def build(model: str, guide: str | None = None, *, data: Dataset | None = None,
          event_shape: tuple[int, ...] | None = None, seed: int | None = 0,
          **options: Any) -> Pair:
    """Build the registered ``model`` and ``guide`` (default: the model's own choice).

    Args:
        model: a registered model name (``ppl-vae list``), or a user factory
            ``"package.module:factory"`` called as ``factory(data, **options)``.
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
    if seed is not None:
        pyro.set_rng_seed(seed)
    if ":" in model:
        if guide is not None:
            raise PplVaeError(f"the factory '{model}' builds its own guide; drop --guide {guide}")
        return _from_factory(model, data, options)
    model_factory = MODELS.get(model).factory
    model_options = _split_options(model_factory, options, {"event_shape"})
    built_model = model_factory(event_shape, **model_options)
    guide = guide or hook(built_model, ModelHooks, "default_guide") or "diagonal"
    guide_factory = GUIDES.get(guide).factory
    guide_options = _split_options(guide_factory, options, {"model", "event_shape"})
    unknown = set(options) - set(model_options) - set(guide_options)
    if unknown:
        raise PplVaeError(f"unknown option(s) {sorted(unknown)} for model '{model}' with guide "
                          f"'{guide}'; see `ppl-vae train --help`")
    built_guide = guide_factory(built_model, event_shape, **guide_options)
    effective = {**_defaults(model_factory, {"event_shape"}),
                 **_defaults(guide_factory, {"model", "event_shape"}), **options}
    spec = PairSpec("registry", model, guide, tuple(event_shape), effective)
    return _remember(Pair(built_model, built_guide, spec))


def rebuild(spec: PairSpec | None, folder, data=None, trust_code: bool = False) -> Pair:
    """The pair a run's ``spec`` describes; recorded code is imported only if trusted."""
    if spec is not None and spec.source == "registry":
        return build(spec.model, spec.guide, event_shape=spec.event_shape, **spec.options)
    if spec is None or spec.source == "unimportable":
        why = spec.why if spec is not None and spec.why else "it was not recorded"
        raise PplVaeError(f"{folder} was trained with a user-written pair that cannot be "
                          f"imported ({why}); pass model= and guide= to load_run")
    paths = spec.model if spec.source == "factory" else f"{spec.model}, {spec.guide}"
    if not trust_code:
        raise PplVaeError(f"{folder} names code to import ({paths}); a run folder is data, not "
                          "code: pass --trust-run-code (or trust_code=True) if you trust it, or "
                          "give the model again (--model / model= and guide=)")
    if spec.source == "factory":
        return _from_factory(spec.model, data, spec.options)
    if spec.guide is None:
        raise PplVaeError(f"{folder}'s config.json names the model ({spec.model}) but no guide; "
                          "pass model= and guide= to load_run")
    owners: dict = {}
    model, guide = (_import_program(path, owners) for path in (spec.model, spec.guide))
    return Pair(model, guide, spec)
