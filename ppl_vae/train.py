"""``fit``: stochastic variational inference over a model/guide pair.

The loop, on one screen: permute the training set, take a batch (gathered from
the set's storage and made float32 on the device: :mod:`ppl_vae.data.storage`),
``loss = estimator(model, guide, batch, **inputs)`` (:mod:`ppl_vae.objective`:
split by known inputs, global sites scaled, latent sites scaled during a KL
warm-up), backward, optional gradient clipping, fused Adam step
(:mod:`ppl_vae.speedups`), learning-rate schedule (:mod:`ppl_vae.schedules`).
The loss stays on the device; it is read (one host sync) only every
``sync_every`` steps — where the divergence guard looks at it — at checkpoints
and at the end of an epoch. Each epoch appends a line to ``metrics.jsonl``: the
training objective (the estimator's bound with its scales, nats per example,
higher is better), the test ELBO (unscaled, one particle), the learning rate
and warm-up scale, seconds and examples per second; ``log_every`` adds step
lines to ``steps.jsonl``. Early stopping (``patience``) keeps ``best.pt``
beside the last checkpoint. Every setting is recorded in a
:class:`ppl_vae.runs.RunConfig` and ``resume`` refuses any change but ``epochs``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from ppl_vae import distributed, runs, schedules, speedups
from ppl_vae.contract import ModelHooks, hook
from ppl_vae.data.storage import Storage, split_storage
from ppl_vae.devices import resolve_device
from ppl_vae.elbo import RenyiBound, as_estimator
from ppl_vae.errors import PplVaeError
from ppl_vae.evaluate import evaluate_pair
from ppl_vae.mixed_precision import MixedPrecision
from ppl_vae.naming import parse_inputs
from ppl_vae.objective import batch_loss
from ppl_vae.pair import Pair, objects_spec, with_names
from ppl_vae.runs import Run, RunConfig, load_parameters
from ppl_vae.schedules import DivergenceGuard, TrainingDiverged
from ppl_vae.traces import take

__all__ = ["TrainingDiverged", "fit"]


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
        lr: float = 1e-3, lr_schedule: str = "constant", lr_step_epochs: int | None = None,
        lr_gamma: float = 0.1, warmup_steps: int = 0, warmup_start: float = 0.01,
        clip_norm: float | None = None, patience: int = 0, log_every: int = 0,
        divergence_factor: float = 10.0, seed: int = 0, device: str = "auto",
        precision: str = "fp32", out=None, resume: bool = False, overwrite: bool = False,
        quiet: bool = False, checkpoint_every: int = 0, sync_every: int = 50,
        detect_anomaly: bool = False, report: bool = True, iw_samples: int = 100,
        eval_examples: int | None = None, pair: Pair | None = None, observe: str = "x",
        plate: str = "data") -> Run:
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
            (``["y"]``: ``model(x, y=batch_y)``), or ``{keyword: "field"}`` when the
            programs call it otherwise (``{"ys": "y:onehot"}``: ``model(x, ys=onehot)``,
            :mod:`ppl_vae.naming`); examples whose value is unknown (``data.known``)
            get ``None``.
        observe, plate: the programs' names for the observed site and the
            per-example plate, when not the contract's ``"x"`` and ``"data"``.
        epochs, batch_size, lr, seed: the usual; Adam over every parameter. Under
            torchrun, ``batch_size`` is the global batch, split across processes.
        lr_schedule, lr_step_epochs, lr_gamma: ``constant``, ``cosine`` over the
            run, or ``step`` (× ``lr_gamma`` every ``lr_step_epochs``, default a third).
        warmup_steps, warmup_start: KL warm-up, the latent sites' scale rising
            linearly from ``warmup_start`` to 1 over ``warmup_steps`` (0: off).
        clip_norm: clip the gradient's global norm to this (None: off).
        patience: stop when the test ELBO has not improved for this many epochs,
            keeping ``best.pt`` (0: off).
        log_every: also record the training loss every this many steps (0: off).
        divergence_factor: stop when the loss is this many times its magnitude
            worse than its best (:class:`ppl_vae.schedules.DivergenceGuard`).
        device: ``auto``, ``cpu`` or ``cuda``. On CPU the process also gets
            :func:`ppl_vae.speedups.keep_freed_memory` (glibc allocator thresholds).
        precision: ``fp32``, or ``bf16``: the pair's networks in bfloat16, every
            density and the bound in float32 (:mod:`ppl_vae.precision`).
        out: run folder (``None``: train in memory only).
        resume: continue from ``out/checkpoint.pt`` (optimizer, schedule, RNG
            included); every setting but ``epochs`` (and the device) must equal
            the stored one.
        overwrite: replace an existing run in ``out``.
        checkpoint_every: also checkpoint every this many steps (0: per epoch only).
        sync_every: steps between host reads of the loss (guard, progress).
        detect_anomaly: run under ``torch.autograd.detect_anomaly`` (slow) to name the
            operation that first produced NaN in the backward pass.
        report: with ``out``, evaluate the run and write ``report.md``, ``report.json``
            and ``figures/`` (as ``ppl-vae train`` does), with ``iw_samples``
            importance samples on the first ``eval_examples`` test examples.
        pair: the :class:`Pair` holding ``model``/``guide`` (keeps its store and spec).
    """
    _check_settings(epochs, batch_size, lr)
    schedules.check_controls(lr_schedule, lr_step_epochs, lr_gamma, warmup_steps, warmup_start,
                             clip_norm, patience, divergence_factor)
    _check_dataset(data)
    pair = pair or Pair(model, guide, hook(model, ModelHooks, "ppl_vae_spec")
                        or objects_spec(model, guide, data.event_shape))
    names = parse_inputs(inputs or (), observe, plate, data)
    pair = with_names(pair, names)
    estimator = as_estimator(elbo, particles, alpha)
    if warmup_steps and isinstance(estimator, RenyiBound):
        raise PplVaeError(f"KL warm-up scales the latent sites, which the {estimator.name} bound "
                          "does not allow; use --elbo trace or meanfield for a warm-up")
    names = _check_input_names(names.fields(), data)
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
    config = RunConfig(
        pair=pair.spec, data=getattr(data, "spec", None), event_shape=list(data.event_shape),
        inputs={k: [str(v.dtype).removeprefix("torch."), list(v.shape[1:])]
                for k, v in train_in.items()},
        estimator=estimator.describe(),
        optimizer={"name": "adam", "lr": lr, "clip_norm": clip_norm},
        schedule={"lr_schedule": lr_schedule, "lr_step_epochs": lr_step_epochs,
                  "lr_gamma": lr_gamma, "warmup_steps": warmup_steps,
                  "warmup_start": warmup_start},
        training={"epochs": epochs, "batch_size": batch_size, "seed": seed,
                  "precision": precision, "patience": patience, "log_every": log_every,
                  "divergence_factor": divergence_factor},
        environment={"device": str(device), "processes": world.size})
    if resume:
        _check_resume(folder, config)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + world.rank)
    anomaly = torch.autograd.detect_anomaly() if detect_anomaly else contextlib.nullcontext()
    with pair.scope(), _deferred_interrupt() as interrupted, anomaly, \
            pyro.validation_enabled(False):
        pair.check(train_x[:batch_size], take(train_in, slice(0, batch_size)))
        if known:  # the unlabelled form of the pair is checked before training too
            pair.check(train_x[:batch_size], {k: None if k in known else v[:batch_size]
                                              for k, v in train_in.items()})
        params = pair.named_parameters()
        warmup = {"scale": 1.0}

        def step_loss(model, guide, x, inputs, mask):
            return batch_loss(estimator, model, guide, x, inputs, mask, n, warmup["scale"])

        loss_of = distributed.loss_function(pair, step_loss, world,
                                            any(k.startswith("store.") for k in params))
        optimizer = speedups.adam(params.values(), lr)
        scheduler = schedules.lr_scheduler(optimizer, lr_schedule, epochs * steps_per_epoch,
                                           steps_per_epoch, lr_step_epochs, lr_gamma)
        state = {"epoch": 0, "step": 0, "perm": None, "running": None, "metrics": [],
                 "steps": [], "guard": None, "best": {"elbo": None, "epoch": 0, "since": 0},
                 "stopped": False, "grads_finite": None, "log_mark": (0, 0.0)}
        if resume:
            state = _restore(folder, pair, optimizer, scheduler, generator, world, device, state)
        guard = DivergenceGuard(divergence_factor, state["guard"])
        state["guard"] = guard.state
        if folder is not None and world.is_main:
            runs.write_json(folder / runs.CONFIG, config.to_json())
            runs.write_metrics(folder, state["metrics"])

        def checkpoint(name=runs.CHECKPOINT):
            rng = world.gather(_rng_state(generator))
            if folder is not None and world.is_main:
                runs.save_checkpoint(folder, {
                    **state, "params": {k: v.detach().cpu() for k, v in params.items()},
                    "buffers": {k: v.detach().cpu() for k, v in pair.named_buffers().items()},
                    "optimizer": optimizer.state_dict(), "rng": rng,
                    "scheduler": None if scheduler is None else scheduler.state_dict()}, name)

        bar = tqdm(total=epochs * steps_per_epoch, desc="training", leave=False, file=sys.stderr,
                   initial=state["epoch"] * steps_per_epoch + state["step"],
                   disable=quiet or not world.is_main or None)
        try:
            while state["epoch"] < epochs and not state["stopped"]:
                epoch = state["epoch"]
                if state["perm"] is None:
                    state["perm"] = torch.randperm(n, generator=generator)
                    state["running"] = torch.zeros((), device=device)
                    state["grads_finite"] = torch.ones((), dtype=torch.bool, device=device)
                    guard.start_epoch()
                perm = state["perm"].to(train_x.index_device)
                start, first_step = time.perf_counter(), state["step"]
                for step in range(first_step, steps_per_epoch):
                    global_step = epoch * steps_per_epoch + step
                    warmup["scale"] = schedules.warmup_scale(global_step, warmup_steps,
                                                             warmup_start)
                    index = world.shard(perm[step * batch_size:(step + 1) * batch_size])
                    batch = train_x[index]
                    if dynamic:
                        batch = torch.bernoulli(batch)
                    with low_precision:
                        loss = loss_of(batch, take(train_in, index), take(known, index))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip_norm is not None:
                        norm = torch.nn.utils.clip_grad_norm_(params.values(), clip_norm)
                        state["grads_finite"] = state["grads_finite"] & torch.isfinite(norm)
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    state["running"] = state["running"] + loss.detach()
                    state["step"] = done = step + 1
                    if done % sync_every == 0 or done == steps_per_epoch or global_step == 0 \
                            or (log_every and (global_step + 1) % log_every == 0):
                        _sync(state, guard, bar, epoch, done, global_step + 1, log_every,
                              optimizer, warmup["scale"], steps_per_epoch, epochs)
                    if checkpoint_every and done % checkpoint_every == 0 and done < steps_per_epoch:
                        checkpoint()
                    if interrupted():
                        raise KeyboardInterrupt
                _end_epoch(state, world, pair, test_x, test_in, steps_per_epoch, batch_size,
                           time.perf_counter() - start, first_step, optimizer, warmup["scale"],
                           patience, guard, checkpoint)
                if folder is not None and world.is_main:
                    runs.write_metrics(folder, state["metrics"])
                    runs.write_metrics(folder, state["steps"], runs.STEPS)
                if not quiet and world.is_main:
                    _print_epoch(state["metrics"][-1], epochs, bar)
        except TrainingDiverged as error:
            if folder is None or (folder / runs.CHECKPOINT).exists():
                raise
            raise TrainingDiverged(str(error).replace(
                "the last good checkpoint is kept", "no checkpoint was written yet")) from None
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
        finally:
            bar.close()
    run = Run(pair, folder, config, state["metrics"])
    if report and folder is not None and world.is_main:
        from ppl_vae.report import finish_run

        run.report = finish_run(run, data, iw_samples=iw_samples, examples=eval_examples,
                                quiet=quiet)
    return run


GLOBAL_EPOCH_PARTICLES = 16


def _epoch_particles(pair: Pair, x, inputs: dict) -> int:
    """Particles of the per-epoch test ELBO: one per example averages out over the test set,
    but a global latent's single draw is shared by every example (its noise does not
    average), so such a pair gets :data:`GLOBAL_EPOCH_PARTICLES`."""
    _, plan = pair.plan(x[:1], take(inputs, slice(0, 1)))
    return GLOBAL_EPOCH_PARTICLES if plan.global_sites else 1


def _sync(state, guard, bar, epoch, done, global_step, log_every, optimizer, scale,
          steps_per_epoch, epochs) -> None:
    """The one host read of a window: divergence guard, step log, progress bar."""
    running = state["running"].item()
    where = f"in epoch {epoch + 1} by step {done}"
    guard.check(running, done, bool(state["grads_finite"]), where, optimizer.param_groups[0]["lr"])
    if log_every and global_step % log_every == 0:
        mark = state["log_mark"]  # (step, running loss) of the last step line this epoch
        state["steps"].append({"step": global_step, "epoch": epoch + 1,
                               "train_objective": -(running - mark[1]) / max(1, done - mark[0]),
                               "lr": optimizer.param_groups[0]["lr"], "warmup_scale": scale})
        state["log_mark"] = (done, running)
    bar.update(epoch * steps_per_epoch + done - bar.n)
    bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", objective=f"{-running / done:.2f}")


def _end_epoch(state, world, pair, test_x, test_in, steps_per_epoch, batch_size, seconds,
               first_step, optimizer, scale, patience, guard, checkpoint) -> None:
    """Test ELBO, metrics line, early stopping and the epoch's checkpoint."""
    epoch = state["epoch"]
    objective = -world.mean(state["running"]).item() / steps_per_epoch
    test_elbo = evaluate_pair(pair, test_x, iw_samples=_epoch_particles(pair, test_x, test_in),
                              inputs=test_in)["elbo"] if world.is_main else None
    if world.is_main:
        guard.check_value(-test_elbo, f"after epoch {epoch + 1}", optimizer.param_groups[0]["lr"],
                          "the negative test ELBO")
    state["metrics"].append({
        "epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
        "train_objective": objective, "test_elbo": test_elbo,
        "lr": optimizer.param_groups[0]["lr"], "warmup_scale": scale,
        "seconds": round(seconds, 3),
        "examples_per_s": round((steps_per_epoch - first_step) * batch_size / seconds, 1)})
    state.update(epoch=epoch + 1, step=0, perm=None, running=None, log_mark=(0, 0.0))
    best = state["best"]
    if patience and world.is_main:
        if best["elbo"] is None or test_elbo > best["elbo"]:
            best.update(elbo=test_elbo, epoch=epoch + 1, since=0)
            checkpoint(runs.BEST)
        else:
            best["since"] += 1
            state["stopped"] = best["since"] >= patience
    checkpoint()


def _check_resume(folder: Path, requested: RunConfig) -> None:
    """Refuse a resume that would train something other than what the folder records."""
    stored = runs.read_run_config(folder)
    differences = stored.differences(requested)
    if stored.schedule.get("lr_schedule") == "cosine" and \
            stored.training.get("epochs") != requested.training["epochs"]:
        differences.append("training.epochs with a cosine schedule (it anneals over the "
                           "original epochs)")
    if differences:
        raise PplVaeError(f"cannot resume {folder} with other settings ({'; '.join(differences)}); "
                          "only --epochs may change (to extend the run): drop the changed flags, "
                          "or start a new run with another --out")


def _check_dataset(data) -> None:
    """A Dataset, not a bare tensor or loader: one line saying how to wrap it."""
    splits = all(hasattr(data, k + "_store") or hasattr(data, k) for k in ("train", "test"))
    if not splits or not hasattr(data, "event_shape"):  # (a store is read without decoding)
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


def _resident_data(pair: Pair, data, device) -> tuple[Storage, Storage, bool]:
    """Train and test storages on the device, checked against the model's support by chunks."""
    train_x, test_x = (split_storage(data, split).to(device) for split in ("train", "test"))
    dynamic = getattr(data, "dynamic_binarize", False)
    check = hook(pair.model, ModelHooks, "check_data")
    if check is not None:
        for store, name in ((train_x, "training data"), (test_x, "test data")):
            for chunk in store.support_chunks():
                check(torch.bernoulli(chunk) if dynamic else chunk, name)
    return train_x, test_x, dynamic


def _restore(folder, pair, optimizer, scheduler, generator, world, device, state: dict) -> dict:
    """Parameters, optimizer, schedule, RNG and position from the run folder's checkpoint."""
    saved = runs.load_checkpoint(folder, map_location=device)
    load_parameters(pair, saved["params"], device, buffers=saved.get("buffers"))
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    rng = saved["rng"]
    if len(rng) == world.size:
        _set_rng_state(rng[world.rank], generator)
    else:  # another number of processes: same batches, fresh sampling noise per rank
        _set_rng_state(rng[0], generator)
        torch.manual_seed(int(torch.randint(2**31, ())) + world.rank)
    return {k: saved.get(k, default) for k, default in state.items()}


def _print_epoch(m: dict, epochs: int, bar) -> None:
    """One line per epoch (above the progress bar, whose ETA covers the whole run)."""
    bar.write(f"epoch {m['epoch']}/{epochs}: objective {m['train_objective']:.2f}, "
              f"test ELBO {m['test_elbo']:.2f} nats/example, {m['examples_per_s']:.0f} "
              "examples/s", file=sys.stderr)


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
