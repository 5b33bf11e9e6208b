"""A trained run in memory: :class:`Run` (pair, folder, config, metrics) and :func:`load_run`.

:mod:`ppl_vae.runs` holds what lies in the folder (config, checkpoints, files);
this module puts a pair back together from it and evaluates and samples it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch

from ppl_vae.devices import resolve_device
from ppl_vae.engine import engine_settings
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import evaluate_pair
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

    def test_inputs(self, data, n: int | None = None) -> dict:
        """The run's inputs of the first ``n`` test examples, on the pair's device."""
        given = data.inputs("test") if self.input_names else {}
        return {k: given[k][:n].to(self.device) for k in self.input_names}

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
               mean: bool = True) -> torch.Tensor:
        """``n`` draws from the model: ``z ~ p(z)``, then the mean of ``p(x | z)`` (or, with
        ``mean=False``, a draw of ``x``), in eval mode, shaped like the data's examples.

        Args:
            n: how many.
            inputs: the pair's keyword inputs, ``n`` rows each (``{"y": labels}``:
                class-conditional draws of a conditional model).
            x: examples passed as ``x`` (a model whose conditioning is inside ``x``,
                e.g. the visible part of an image); default zeros, which a model that
                only observes ``x`` never reads.
        """
        from ppl_vae.figures import observation_site

        if x is None:
            x = torch.zeros(n, *self.config.event_shape)
        x = x.to(self.device)
        inputs = {k: None if v is None else v.to(self.device) for k, v in (inputs or {}).items()}
        with self.pair.evaluation(), torch.no_grad():
            site = observation_site(self.model, self.guide, x, from_prior=True, inputs=inputs)
            values = site.mean if mean else site.sample()
        return values.reshape(x.shape) if values.numel() == x.numel() else values

    def evaluate(self, x: torch.Tensor, inputs: dict | None = None, **options) -> dict:
        """:func:`ppl_vae.evaluate` inside this pair's parameter scope."""
        inputs = {k: v.to(self.device) for k, v in (inputs or {}).items()}
        with self.pair.evaluation():
            return evaluate_pair(self.pair, x.to(self.device), inputs=inputs, **options)


def load_parameters(pair: Pair, params: dict, device, example=None,
                    example_inputs: dict | None = None, buffers: dict | None = None) -> None:
    """Copy checkpointed tensors into the pair; names must match exactly.

    With ``example`` the pair is traced once first, so lazy parameters exist.
    ``buffers``: the modules' buffers (BatchNorm statistics, ...) as
    :meth:`ppl_vae.Pair.named_buffers` names them; None for a checkpoint written
    before buffers were kept (the modules keep their own).
    """
    with pair.scope():
        if example is not None:
            pair.check(example, example_inputs)
        _copy_into(pair.named_parameters(), params, device, "parameter")
        if buffers is not None:
            _copy_into(pair.named_buffers(), buffers, device, "buffer")


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


def example_inputs(config: RunConfig, device) -> dict:
    """One example's worth of the run's inputs (zeros of the recorded dtype and shape)."""
    return {name: torch.zeros(1, *shape, dtype=getattr(torch, dtype), device=device)
            for name, (dtype, shape) in config.inputs.items()}


def load_run(folder, model=None, guide=None, device: str = "cpu", *, data=None,
             trust_code: bool = False, best: bool = False) -> Run:
    """Rebuild the pair of a run folder and load its last (or ``best``) checkpoint.

    Args:
        folder: the run folder.
        model, guide: fresh instances of a user-written pair (then nothing is imported).
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
            data = config.data.load()
        pair = rebuild(spec, folder, data, trust_code)
    else:
        pair = Pair(model, guide, spec)
    recorded_names = spec.names if spec is not None else None
    pair = with_names(pair, Names(**(recorded_names or {})))
    device = resolve_device(device)
    for module in pair.reached_modules().values():
        module.to(device)
    state = load_checkpoint(folder, map_location=device, name=BEST if best else CHECKPOINT)
    example = torch.zeros(1, *config.event_shape, device=device)  # creates lazy parameters
    with engine_settings(pair.model, pair.guide):
        load_parameters(pair, state["params"], device, example, example_inputs(config, device),
                        state.get("buffers"))
    return Run(pair, folder, config, read_metrics(folder))
