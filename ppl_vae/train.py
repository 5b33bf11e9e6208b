"""``fit``: stochastic variational inference over a model/guide pair.

The loop, on one screen: permute the resident training tensor, take a batch,
``loss = estimator(model, guide, batch, **inputs)`` (:mod:`ppl_vae.objective`:
split by known inputs, global sites scaled), backward, fused Adam step
(:mod:`ppl_vae.speedups`).
The loss stays on the device; it is read (one host sync) only every
``sync_every`` steps, at checkpoints and at the end of an epoch. Each epoch
appends a line to ``metrics.jsonl``: the training objective (the estimator's
bound, nats per example, higher is better), the test ELBO (unscaled, one
particle), seconds and examples per second.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from ppl_vae import distributed, runs, speedups
from ppl_vae.elbo import as_estimator
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import evaluate
from ppl_vae.objective import batch_loss
from ppl_vae.pair import Pair, objects_spec
from ppl_vae.precision import MixedPrecision
from ppl_vae.traces import prepare, take


class TrainingDiverged(PplVaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Run:
    """A trained pair, where it lives on disk, its config and metrics."""

    pair: Pair
    path: Path | None
    config: dict
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
        return list(self.config.get("inputs", {}))

    @property
    def device(self) -> torch.device:
        """Where the pair's parameters live (CPU for a pair without parameters)."""
        with self.pair.scope():
            first = next(iter(self.pair.named_parameters().values()), None)
        return torch.device("cpu") if first is None else first.device

    def test_inputs(self, data, n: int | None = None) -> dict:
        """The run's inputs of the first ``n`` test examples, on the pair's device."""
        given = data.inputs("test") if self.input_names else {}
        return {k: given[k][:n].to(self.device) for k in self.input_names}

    def evaluate(self, x: torch.Tensor, inputs: dict | None = None, **options) -> dict:
        """:func:`ppl_vae.evaluate` inside this pair's parameter scope."""
        inputs = {k: v.to(self.device) for k, v in (inputs or {}).items()}
        with self.pair.scope():
            return evaluate(self.pair.model, self.pair.guide, x.to(self.device), inputs=inputs,
                            **options)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error for an absent GPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PplVaeError("--device cuda was asked for but no CUDA GPU is visible; use "
                          "--device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise PplVaeError(f"unknown device '{device}'; use auto, cpu or cuda") from None


def load_parameters(pair: Pair, params: dict, device, example=None,
                    example_inputs: dict | None = None) -> None:
    """Copy checkpointed tensors into the pair; names must match exactly."""
    with pair.scope():
        if example is not None:
            _dry_run(pair, example, example_inputs or {})
        named = pair.named_parameters()
        if set(named) != set(params):
            missing, extra = sorted(set(named) - set(params)), sorted(set(params) - set(named))
            raise PplVaeError(f"checkpoint does not match the pair (missing {missing[:3]}, "
                              f"unexpected {extra[:3]}); load it with the pair it was trained with")
        with torch.no_grad():
            for name, tensor in named.items():
                if tensor.shape != params[name].shape:
                    raise PplVaeError(f"checkpoint tensor '{name}' has shape "
                                      f"{tuple(params[name].shape)}, the pair needs "
                                      f"{tuple(tensor.shape)}; the options differ from training")
                tensor.copy_(params[name].to(device))


def _dry_run(pair: Pair, x: torch.Tensor, inputs: dict) -> None:
    """Trace the pair once, checked, so the contract holds and lazy parameters exist."""
    with torch.no_grad(), pyro.validation_enabled(True):
        prepare(pair.model, pair.guide, x, inputs)


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "batches": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def fit(model, guide, data, *, elbo="trace", particles: int | None = None,
        alpha: float | None = None, inputs=(), epochs: int = 10, batch_size: int = 64,
        lr: float = 1e-3, seed: int = 0, device: str = "auto", precision: str = "fp32",
        out=None, resume: bool = False, overwrite: bool = False, quiet: bool = False,
        checkpoint_every: int = 0, sync_every: int = 50, detect_anomaly: bool = False,
        report: bool = True, iw_samples: int = 100, eval_examples: int | None = None,
        pair: Pair | None = None) -> Run:
    """Train ``model``/``guide`` on ``data.train`` with SVI; see the module docstring.

    Args:
        model, guide: callables keeping the model/guide contract.
        data: a :class:`ppl_vae.data.Dataset` (``train``, ``test``, ``event_shape``);
            wrap tensors with :func:`ppl_vae.data.from_tensors`.
        elbo: a registered estimator name (``trace``, ``meanfield``, ``renyi``,
            ``iwae``), any ``pyro.infer.ELBO`` object (``TraceEnum_ELBO(...)``, ...),
            or a callable ``loss(model, guide, x, **inputs)`` summed over the batch.
        particles, alpha: estimator settings (``None``: the estimator's default).
        inputs: names of dataset inputs passed to both programs as keywords
            (``["y"]``: ``model(x, y=batch_y)``); examples whose value is unknown
            (``data.known``) get ``y=None``.
        epochs, batch_size, lr, seed: the usual; Adam over every parameter. Under
            torchrun, ``batch_size`` is the global batch, split across processes.
        device: ``auto``, ``cpu`` or ``cuda``. On CPU the process also gets
            :func:`ppl_vae.speedups.keep_freed_memory` (glibc allocator thresholds).
        precision: ``fp32``, or ``bf16``: the pair's networks in bfloat16, every
            density and the bound in float32 (:mod:`ppl_vae.precision`).
        out: run folder (``None``: train in memory only).
        resume: continue from ``out/checkpoint.pt`` (optimizer and RNG included).
        overwrite: replace an existing run in ``out``.
        checkpoint_every: also checkpoint every this many steps (0: per epoch only).
        sync_every: steps between host reads of the loss (NaN checks, progress).
        detect_anomaly: run under ``torch.autograd.detect_anomaly`` (slow) to name the
            operation that first produced NaN in the backward pass.
        report: with ``out``, evaluate the run and write ``report.md``, ``report.json``
            and ``figures/`` (as ``ppl-vae train`` does), with ``iw_samples``
            importance samples on the first ``eval_examples`` test examples.
        pair: the :class:`Pair` holding ``model``/``guide`` (keeps its store and spec).
    """
    _check_settings(epochs, batch_size, lr)
    _check_dataset(data)
    pair = pair or Pair(model, guide, getattr(model, "ppl_vae_spec", None)
                        or objects_spec(model, guide, data.event_shape))
    estimator = as_estimator(elbo, particles, alpha)
    names = _check_input_names(inputs, data)
    world, device = distributed.setup(resolve_device(device))
    if device.type == "cpu":
        speedups.keep_freed_memory()
    low_precision = MixedPrecision(pair, precision, device)
    folder = None if out is None else Path(out)
    if folder is not None and world.is_main:
        runs.prepare_folder(folder, resume, overwrite)
    world.barrier()
    train_x, test_x, dynamic = _resident_data(pair, data, device)
    train_in = {k: data.inputs("train")[k].to(device) for k in names}
    test_in = {k: data.inputs("test")[k].to(device) for k in names}
    known = {k: data.known[k].to(device) for k in names if k in data.known}
    n, batch_size = train_x.shape[0], min(batch_size, train_x.shape[0])
    steps_per_epoch = n // batch_size
    config = {"format_version": runs.FORMAT_VERSION, "pair": pair.spec,
              "event_shape": list(data.event_shape), "data": getattr(data, "spec", None),
              "inputs": {k: [str(v.dtype).removeprefix("torch."), list(v.shape[1:])]
                         for k, v in train_in.items()},
              "train": {**estimator.describe(), "epochs": epochs, "batch_size": batch_size,
                        "lr": lr, "seed": seed, "device": str(device), "precision": precision,
                        "processes": world.size}}
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + world.rank)
    anomaly = torch.autograd.detect_anomaly() if detect_anomaly else contextlib.nullcontext()
    with pair.scope(), _deferred_interrupt() as interrupted, anomaly, \
            pyro.validation_enabled(False):
        _dry_run(pair, train_x[:batch_size], take(train_in, slice(0, batch_size)))
        if known:  # the unlabelled form of the pair is checked before training too
            _dry_run(pair, train_x[:batch_size], {k: None if k in known else v[:batch_size]
                                                  for k, v in train_in.items()})
        params = pair.named_parameters()

        def step_loss(model, guide, x, inputs, mask):
            return batch_loss(estimator, model, guide, x, inputs, mask, n)

        loss_of = distributed.loss_function(pair, step_loss, world,
                                            any(k.startswith("store.") for k in params))
        optimizer = speedups.adam(params.values(), lr)
        state = {"epoch": 0, "step": 0, "perm": None, "running": None, "metrics": []}
        if resume:
            state = _restore(folder, pair, optimizer, generator, world, device, state)
        if folder is not None and world.is_main:
            runs.write_json(folder / runs.CONFIG, config)
            runs.write_metrics(folder, state["metrics"])

        def checkpoint():
            rng = world.gather(_rng_state(generator))
            if folder is not None and world.is_main:
                runs.save_checkpoint(folder, {
                    **state, "params": {k: v.detach().cpu() for k, v in params.items()},
                    "optimizer": optimizer.state_dict(), "rng": rng})

        try:
            while state["epoch"] < epochs:
                epoch = state["epoch"]
                if state["perm"] is None:
                    state["perm"] = torch.randperm(n, generator=generator)
                    state["running"] = torch.zeros((), device=device)
                perm = state["perm"].to(device)
                start, first_step = time.perf_counter(), state["step"]
                bar = tqdm(total=steps_per_epoch, initial=first_step, desc=f"epoch {epoch + 1}",
                           disable=quiet or not world.is_main or None, leave=False,
                           file=sys.stderr)
                for step in range(first_step, steps_per_epoch):
                    index = world.shard(perm[step * batch_size:(step + 1) * batch_size])
                    batch = train_x[index]
                    if dynamic:
                        batch = torch.bernoulli(batch)
                    with low_precision:
                        loss = loss_of(batch, take(train_in, index), take(known, index))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    state["running"] = state["running"] + loss.detach()
                    state["step"] = done = step + 1
                    if done % sync_every == 0 or done == steps_per_epoch:
                        _check_finite(state["running"], epoch, done)
                        bar.update(done - bar.n)
                        bar.set_postfix(objective=f"{-state['running'].item() / done:.2f}")
                    if checkpoint_every and done % checkpoint_every == 0 and done < steps_per_epoch:
                        _check_finite(state["running"], epoch, done)
                        checkpoint()
                    if interrupted():
                        raise KeyboardInterrupt
                bar.close()
                seconds = time.perf_counter() - start
                objective = -world.mean(state["running"]).item() / steps_per_epoch
                test_elbo = evaluate(pair.model, pair.guide, test_x, iw_samples=1,
                                     inputs=test_in)["elbo"] if world.is_main else None
                state["metrics"].append({
                    "epoch": epoch + 1, "train_objective": objective, "test_elbo": test_elbo,
                    "seconds": round(seconds, 3),
                    "examples_per_s": round((done - first_step) * batch_size / seconds, 1)})
                state.update(epoch=epoch + 1, step=0, perm=None, running=None)
                checkpoint()
                if folder is not None and world.is_main:
                    runs.write_metrics(folder, state["metrics"])
                if not quiet and world.is_main:
                    _print_epoch(state["metrics"][-1], epochs)
        except RuntimeError as error:
            if not detect_anomaly:
                raise
            raise TrainingDiverged(
                f"autograd anomaly in epoch {state['epoch'] + 1}, step {state['step'] + 1}: "
                f"{str(error).splitlines()[0]}; the last good checkpoint is kept") from None
        except KeyboardInterrupt:
            checkpoint()
            where = f" in {folder}" if folder is not None else ""
            raise PplVaeError(f"interrupted at epoch {state['epoch'] + 1}, step {state['step']}; "
                              f"checkpoint saved{where}: continue with --resume") from None
    run = Run(pair, folder, config, state["metrics"])
    if report and folder is not None and world.is_main:
        from ppl_vae.report import finish_run

        run.report = finish_run(run, data, iw_samples=iw_samples, examples=eval_examples,
                                quiet=quiet)
    return run


def _check_dataset(data) -> None:
    """A Dataset, not a bare tensor or loader: one line saying how to wrap it."""
    if not all(hasattr(data, k) for k in ("train", "test", "event_shape")):
        raise PplVaeError(f"fit() takes a ppl_vae.data.Dataset, not {type(data).__name__}; wrap "
                          "your tensors with ppl_vae.data.from_tensors(x, labels=...) or load one "
                          "with ppl_vae.data.load(name)")


def _check_input_names(inputs, data) -> list[str]:
    """The requested input names, each one the dataset has."""
    names = [inputs] if isinstance(inputs, str) else list(inputs or ())
    available = data.input_names() if hasattr(data, "input_names") else []
    missing = [name for name in names if name not in available]
    if missing:
        raise PplVaeError(f"the dataset has no input(s) {missing} (it has: {available or 'none'}); "
                          "labels are 'y', other arrays come as from_tensors(..., fields=)")
    return names


def _check_settings(epochs: int, batch_size: int, lr: float) -> None:
    """One-line errors for impossible training settings."""
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value < 1:
            raise PplVaeError(f"{name} must be at least 1, got {value}")
    if not lr > 0:
        raise PplVaeError(f"--lr must be positive, got {lr}")


def _resident_data(pair: Pair, data, device) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Train and test tensors on the device, checked against the model's support."""
    train_x, test_x = data.train.to(device), data.test.to(device)
    dynamic = getattr(data, "dynamic_binarize", False)
    check = getattr(pair.model, "check_data", None)
    if check is not None:
        check(torch.bernoulli(train_x) if dynamic else train_x, "training data")
        check(torch.bernoulli(test_x) if dynamic else test_x, "test data")
    return train_x, test_x, dynamic


def _restore(folder, pair, optimizer, generator, world, device, state: dict) -> dict:
    """Parameters, optimizer, RNG and position from the run folder's checkpoint."""
    saved = runs.load_checkpoint(folder, map_location=device)
    load_parameters(pair, saved["params"], device)
    optimizer.load_state_dict(saved["optimizer"])
    rng = saved["rng"]
    if len(rng) == world.size:
        _set_rng_state(rng[world.rank], generator)
    else:  # another number of processes: same batches, fresh sampling noise per rank
        _set_rng_state(rng[0], generator)
        torch.manual_seed(int(torch.randint(2**31, ())) + world.rank)
    return {k: saved[k] for k in state}


def _print_epoch(m: dict, epochs: int) -> None:
    print(f"epoch {m['epoch']}/{epochs}: objective {m['train_objective']:.2f}, "
          f"test ELBO {m['test_elbo']:.2f} nats/example, {m['examples_per_s']:.0f} examples/s",
          file=sys.stderr)


def _check_finite(running: torch.Tensor, epoch: int, step: int) -> None:
    """Stop with the epoch and step when the accumulated loss is NaN or infinite."""
    if not torch.isfinite(running):
        raise TrainingDiverged(
            f"loss became NaN or infinite in epoch {epoch + 1} by step {step}; the last good "
            "checkpoint is kept: lower --lr, check the data, or resume with --detect-anomaly")


@contextlib.contextmanager
def _deferred_interrupt():
    """Turn Ctrl-C into a flag read between steps, so a checkpoint never holds half a step."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: hit.append(signum))
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)
