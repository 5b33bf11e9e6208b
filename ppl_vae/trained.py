"""A trained run in memory: :class:`Run` (pair, folder, config, metrics) and :func:`load_run`.

:mod:`ppl_vae.runs` holds what lies in the folder (config, checkpoints, files);
this module puts a pair back together from it and evaluates and samples it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro import poutine

from ppl_vae import store
from ppl_vae.data.dataset import Dataset, split_examples, split_inputs, split_size
from ppl_vae.devices import resolve_device
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import evaluate_pair
from ppl_vae.modules import held_modules
from ppl_vae.naming import Names
from ppl_vae.pair import Pair, rebuild, with_names
from ppl_vae.runs import (
    BEST,
    CHECKPOINT,
    RunConfig,
    load_checkpoint,
    read_metrics,
    read_run_config,
)
from ppl_vae.traces import OBS_SITE, data_sites


@dataclass
class Run:
    """A trained pair, where it lives on disk, its config and metrics."""

    pair: Pair
    path: Path | None
    config: RunConfig
    metrics: list[dict] = field(default_factory=list)
    report: dict | None = None

    @property
    def model(self):
        return self.pair.model

    @property
    def guide(self):
        return self.pair.guide

    @property
    def input_names(self) -> list[str]:
        """The dataset inputs the pair was trained with (``fit(inputs=...)``)."""
        return list(self.config.inputs)

    @property
    def device(self) -> torch.device:
        """Where the pair's parameters live (CPU for a pair without parameters)."""
        return self.pair.device

    @property
    def evaluation_split(self) -> str:
        """The split this run is evaluated on: ``"test"``, or ``"train"`` for a pair with
        parameters of its own (``config.local_rows``), which exist for those rows only."""
        return "test" if self.config.local_rows is None else "train"

    def test_inputs(self, data, n: int | None = None) -> dict:
        """The run's inputs of the first ``n`` test examples, on the pair's device."""
        if self.config.local_rows is not None:
            raise PplVaeError(
                f"{self.path or 'this run'} has parameters for its {self.config.local_rows} "
                "training rows only (per-example parameters: the 'index' input or a full-batch "
                "guide), so test rows have none; evaluate the training rows "
                "(run.evaluation_examples(data); the CLI does so)")
        return self._inputs(data, "test", n)

    def evaluation_examples(self, data, n: int | None = None) -> tuple[torch.Tensor, dict]:
        """The first ``n`` examples of :attr:`evaluation_split` and the run's inputs for them."""
        split = self.evaluation_split
        return split_examples(data, split, n), self._inputs(data, split, n)

    def _inputs(self, data, split: str, n: int | None) -> dict:
        given = split_inputs(data, split, self.input_names, split_size(data, split))
        return {k: v[:n].to(self.device) for k, v in given.items()}

    def params(self) -> dict[str, torch.Tensor]:
        """Learned values by name, detached: every ``pyro.param`` as Pyro reads it (constrained,
        ``"sigma_scale"``), and module parameters as ``"model.<name>"``/``"guide.<name>"``.

        Inside ``with run.pair.scope():`` Pyro's own ``pyro.param("sigma_scale")`` reads
        the same values; outside it, Pyro's global param store does not hold them.
        """
        with self.pair.scope():
            store = pyro.get_param_store()
            values = {name: pyro.param(name).detach() for name in list(store.keys())}
            values.update({k: v.detach() for k, v in self.pair.named_parameters().items()
                           if not k.startswith("store.")})
        return values

    def sample(self, n: int, inputs: dict | None = None, x: torch.Tensor | None = None,
               mean: bool = True) -> torch.Tensor | dict[str, torch.Tensor]:
        """``n`` draws from the model: ``z ~ p(z)``, then the mean of ``p(x | z)`` (or, with
        ``mean=False``, a draw of ``x``), in eval mode, shaped like the data's examples.

        A model with several observed sites (a sequence model's one per step) returns
        ``{site: values}`` for every one of them, in the order the model draws them.

        Args:
            n: how many.
            inputs: the pair's keyword inputs, ``n`` rows each (``{"y": labels}``:
                class-conditional draws of a conditional model).
            x: examples passed as ``x`` (a model whose conditioning is inside ``x``,
                e.g. the visible part of an image); default zeros, which a model that
                only observes ``x`` never reads.
        """
        if x is None:
            x = torch.zeros(n, *self.config.event_shape)
        x = x.to(self.device)
        inputs = {k: None if v is None else v.to(self.device) for k, v in (inputs or {}).items()}
        with self.pair.evaluation(), torch.no_grad():
            try:
                trace = poutine.trace(self.model).get_trace(x, **inputs)
            except (AttributeError, TypeError, IndexError) as error:
                missing = [k for k in self.input_names if inputs.get(k) is None]
                if not missing:
                    raise
                raise PplVaeError(
                    f"the model needs input(s) {missing} to sample ({type(error).__name__}: "
                    f"{str(error).splitlines()[0][:80]}); pass them, n rows each: "
                    f"run.sample({n}, inputs={{{missing[0]!r}: ...}})") from None
        draws = {}
        for name in data_sites(trace):
            fn = trace.nodes[name]["fn"]
            draws[name] = fn.mean if mean else fn.sample()
        if list(draws) != [OBS_SITE]:
            return draws
        values = draws[OBS_SITE]
        return values.reshape(x.shape) if values.numel() == x.numel() else values

    def evaluate(self, x: torch.Tensor, inputs: dict | None = None, **options) -> dict:
        """:func:`ppl_vae.evaluate` inside this pair's parameter scope."""
        inputs = {k: v.to(self.device) for k, v in (inputs or {}).items()}
        with self.pair.evaluation():
            return evaluate_pair(self.pair, x.to(self.device), inputs=inputs, **options)


def load_parameters(pair: Pair, params: dict, device, probe=None,
                    buffers: dict | None = None, constraints: dict | None = None) -> None:
    """Copy checkpointed tensors into the pair; names must match exactly.

    The pair's own ``pyro.param`` entries are first created from the checkpoint
    (:func:`ppl_vae.store.restore`, with their ``constraints``). Only when the pair
    still lacks some (lazy modules, ``pyro.module`` entries) is it traced once on
    ``probe()``'s ``(x, inputs)``, which should be rows of the run's own data.
    ``buffers``: the modules' buffers (BatchNorm statistics, ...) as
    :meth:`ppl_vae.Pair.named_buffers` names them; None for a checkpoint written
    before buffers were kept (the modules keep their own).
    """
    if constraints is not None:  # written into the pair's store before its scope is entered
        store.restore(pair.store, params, constraints, device,
                      [*pair.reached_modules().values(), *held_modules(pair.model, pair.guide)])
    with pair.scope():
        if probe is not None and not _matches(pair.named_parameters(), params):
            pair.check(*probe())
        _copy_into(pair.named_parameters(), params, device, "parameter")
        if buffers is not None:
            _copy_into(pair.named_buffers(), buffers, device, "buffer")


def _matches(named: dict, saved: dict) -> bool:
    """Whether the pair already has every checkpointed tensor, by name and shape."""
    return set(named) == set(saved) and all(
        tuple(t.shape) == tuple(saved[k].shape) for k, t in named.items())


def _copy_into(named: dict, saved: dict, device, what: str) -> None:
    """Copy ``saved`` tensors into ``named`` ones of the same names and shapes."""
    if set(named) != set(saved):
        missing, extra = sorted(set(named) - set(saved)), sorted(set(saved) - set(named))
        raise PplVaeError(f"checkpoint {what}s do not match the pair (missing {missing[:3]}, "
                          f"unexpected {extra[:3]}); load it with the pair it was trained with")
    with torch.no_grad():
        for name, tensor in named.items():
            if tensor.shape != saved[name].shape:
                raise PplVaeError(f"checkpoint {what} '{name}' has shape "
                                  f"{tuple(saved[name].shape)}, the pair needs "
                                  f"{tuple(tensor.shape)}; the options differ from training")
            tensor.copy_(saved[name].to(device))


def probe_rows(config: RunConfig, data, device):
    """What a pair that needs one call before loading (lazy modules, ``pyro.module``) is
    called on: the first training rows of the run's own data (``data``, or the data
    ``config.json`` names) — all of them for a pair with parameters of its own — else,
    for data handed in from memory, one example of zeros (a program that refuses zeros
    then asks for ``data=``)."""
    def probe():
        source = data
        if source is None and config.data is not None:
            from ppl_vae.data import load_spec

            source = load_spec(config.data)
        if source is None:
            return (torch.zeros(1, *config.event_shape, device=device),
                    {name: torch.zeros(1, *shape, dtype=getattr(torch, dtype), device=device)
                     for name, (dtype, shape) in config.inputs.items()})
        n = config.local_rows or min(config.training.batch_size, split_size(source, "train"))
        given = split_inputs(source, "train", list(config.inputs), split_size(source, "train"))
        return (split_examples(source, "train", n).to(device),
                {k: v[:n].to(device) for k, v in given.items()})
    return probe


def load_run(folder: str | Path, model: Callable[..., Any] | None = None,
             guide: Callable[..., Any] | None = None, device: str = "cpu", *,
             data: Dataset | None = None, trust_code: bool = False,
             best: bool = False) -> Run:
    """Rebuild the pair of a run folder and load its last (or ``best``) checkpoint.

    Args:
        folder: the run folder.
        model: a fresh instance of a user-written pair's model (then nothing is imported).
        guide: the pair's guide, given with ``model``.
        device: ``cpu``, ``cuda`` or ``auto``.
        data: the dataset, for pairs built by a user factory (default: the run's own data).
        trust_code: import the user code the run's ``config.json`` names
            (a factory or importable model/guide); off by default, since a run
            folder from elsewhere must not run code by being opened.
        best: load ``best.pt`` (the best test ELBO under early stopping).
    """
    folder = Path(folder)
    config = read_run_config(folder)
    spec = config.pair
    if model is None or guide is None:
        if data is None and spec is not None and spec.source == "factory" and trust_code:
            if config.data is None:
                raise PplVaeError(f"{folder} was trained on user data; pass data= to load_run")
            from ppl_vae.data import load_spec

            data = load_spec(config.data)
        pair = rebuild(spec, folder, data, trust_code)
    else:
        pair = Pair(model, guide, spec)
    recorded_names = spec.names if spec is not None else None
    pair = with_names(pair, Names(**(recorded_names or {})))
    where = resolve_device(device)
    for module in pair.reached_modules().values():
        module.to(where)
    state = load_checkpoint(folder, map_location=where, name=BEST if best else CHECKPOINT)
    with engine_settings(pair.model, pair.guide):
        load_parameters(pair, state["params"], where, probe_rows(config, data, where),
                        state.get("buffers"), state.get("constraints", {}))
    return Run(pair, folder, config, read_metrics(folder))
