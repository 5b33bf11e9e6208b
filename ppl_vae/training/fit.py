"""``fit``: stochastic variational inference over a model/guide pair.

``fit`` checks the settings (:class:`ppl_vae.config.TrainConfig`), the data and the
pair, assembles a :class:`~ppl_vae.training.session.Session` — estimator loss
(in DDP under torchrun, :mod:`~ppl_vae.training.distributed`), optimizer (fused
Adam, or any ``pyro.optim`` / ``torch.optim`` one: :mod:`~ppl_vae.training.optimizers`),
schedule (:mod:`~ppl_vae.training.schedules`), resident data, state restored
on resume, the user's ``on_step`` hook, TensorBoard (:mod:`~ppl_vae.training.board`)
— and runs its epochs. Each epoch appends a line to
``metrics.jsonl``: the training objective (the estimator's bound with its
scales, nats per example, higher is better), the test ELBO (unscaled; every
``eval_every`` epochs and after the last, else null) with its seconds and passes,
the learning rate and warm-up scale, seconds and examples per second;
``log_every`` adds step lines to ``steps.jsonl``. What the evaluations will cost is
said before they run. Early stopping (``patience``, counted in test ELBOs) keeps
``best.pt`` beside the last checkpoint. Every setting is recorded in a
:class:`ppl_vae.runs.RunConfig` and ``resume`` refuses any change but ``epochs``
(and the run options: device, evaluation). Ctrl-C checkpoints between two steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pyro
import torch

from ppl_vae import runs
from ppl_vae.config import DataSpec, EstimatorSpec, RunOptions, TrainConfig
from ppl_vae.data.dataset import ROW_INDEX, split_inputs
from ppl_vae.devices import resolve_device
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import ESTIMATORS, as_estimator
from ppl_vae.naming import parse_inputs, program_inputs
from ppl_vae.pair import Pair, built_spec, objects_spec, with_names
from ppl_vae.runs import Environment, RunConfig
from ppl_vae.traces import take
from ppl_vae.trained import Run, load_parameters
from ppl_vae.training import checks, distributed, labelled, optimizers, speedups
from ppl_vae.training.mixed_precision import MixedPrecision
from ppl_vae.training.schedules import TrainingDiverged, lr_scheduler
from ppl_vae.training.session import Session
from ppl_vae.training.state import TrainState, set_rng_state


def fit(model, guide, data, *, elbo="trace", inputs=(), observe: str = "x",
        plate: str = "data", out=None, resume: bool = False, overwrite: bool = False,
        pair: Pair | None = None, config: TrainConfig | None = None, optim=None,
        on_step: Callable[[], object] | None = None,
        auxiliary: labelled.Auxiliary | str | None = None, **settings) -> Run:
    """Train ``model``/``guide`` on ``data``'s training split with SVI; see the module docstring.

    Args:
        model, guide: callables keeping the model/guide contract.
        data: a :class:`ppl_vae.data.Dataset`; wrap tensors with :func:`ppl_vae.data.from_tensors`.
        elbo: a registered estimator name (``ppl-vae list``: ``trace``, ``meanfield``,
            ``iwae``, ``tcvae``, ...), an :class:`~ppl_vae.config.EstimatorSpec`, any
            ``pyro.infer.ELBO`` object, or a callable ``loss(model, guide, x, **inputs)``
            summed over the batch.
        inputs: dataset inputs passed to both programs as keywords (``["y"]``:
            ``model(x, y=batch_y)``), or ``{keyword: "field"}`` when the programs call
            it otherwise (``{"ys": "y:onehot"}``, :mod:`ppl_vae.naming`); examples whose
            value is unknown (``data.known``) get ``None``.
        observe, plate: the programs' names for the observed site and the per-example
            plate, when not the contract's ``"x"`` and ``"data"``.
        out: run folder (``None``: train in memory only); ``resume`` continues it
            (every recorded setting but ``epochs`` must be equal), ``overwrite`` replaces it.
        pair: the :class:`Pair` holding ``model``/``guide`` (keeps its store and spec).
        config: a :class:`~ppl_vae.config.TrainConfig`, or its fields as keywords
            (``epochs=10, lr=1e-3, betas=(0.9, 0.999), lr_schedule="multistep", ...``).
        optim: the optimizer (:mod:`~ppl_vae.training.optimizers`): a name (``"adam"``, the
            default, ``"clipped_adam"``, ``"sgd"``, ...), a ``pyro.optim`` optimizer
            (``pyro.optim.ClippedAdam({"lr": 0.01, "lrd": 0.999})``) or a
            ``torch.optim.Optimizer`` class; ``optim_args={...}`` gives a name's or a
            class's options.
        on_step: called with no arguments after every optimizer step, without gradients
            and with the pair's parameters as Pyro's param store (Pyro's ``clip_params()``).
        auxiliary: with ``labelled_batches="spaced"``, an objective stepped on its own after
            each labelled batch, as the second ``SVI`` of Pyro's ss-vae example: a
            ``(model, guide)`` pair (stepped on ``Trace_ELBO``) or a callable
            ``loss(x, **inputs)`` summed over the batch, or ``"package.module:function"``
            naming one (:mod:`~ppl_vae.training.labelled`).
        settings: also :class:`~ppl_vae.config.RunOptions` fields (``device``, ``quiet``,
            ``eval_every``, ``tensorboard``, ...) and the estimator's options
            (``particles=5``, ``alpha=0.5``, ``tc_weight=6``).
    """
    config, options, estimator_options = _split_settings(config, settings)
    config, choice = optimizers.resolve(config, optim, settings.get("optim_args"), settings)
    if isinstance(auxiliary, str):
        config, auxiliary = dataclasses.replace(config, auxiliary=auxiliary), None
    if auxiliary is not None:
        config = dataclasses.replace(config, auxiliary=labelled.auxiliary_name(auxiliary))
    elif config.auxiliary is not None:
        auxiliary = labelled.imported_auxiliary(config.auxiliary)
    checks.check_dataset(data)
    pair = pair or Pair(model, guide)
    if pair.spec is None:  # how a run folder rebuilds it (a Pair made by hand has none yet)
        pair.spec = built_spec(pair.model) or objects_spec(pair.model, pair.guide,
                                                           data.event_shape)
    names = parse_inputs(inputs or (), observe, plate, data)
    pair = with_names(pair, names)
    estimator = as_estimator(elbo, **estimator_options)
    estimator.check_warmup(config.warmup_steps)
    input_names = checks.check_input_names(names.fields(), data)
    world, device = distributed.setup(resolve_device(options.device))
    labelled.check_auxiliary(config.labelled_batches, auxiliary, world.size)
    auxiliary_loss = labelled.auxiliary_loss(auxiliary)
    if device.type == "cpu":
        speedups.keep_freed_memory()
    folder = None if out is None else Path(out)
    board = checks.tensorboard(options, folder)  # (before training: a missing extra is refused)
    if folder is not None and world.is_main:
        runs.prepare_folder(folder, resume, overwrite)
    world.barrier()
    resident = _resident(pair, data, input_names, device, config, options)
    run_config = RunConfig(
        pair=pair.spec, data=DataSpec.from_json(data.spec), event_shape=list(data.event_shape),
        inputs={k: [str(v.dtype).removeprefix("torch."), list(v.shape[1:])]
                for k, v in resident["train_in"].items()},
        estimator=EstimatorSpec.from_json(estimator.describe()), training=config,
        environment=Environment(str(device), world.size),
        evaluation={k: getattr(options, k) for k in RunOptions.RECORDED})
    if resume:
        if folder is None:
            raise PplVaeError("resume=True continues a run folder: give out= as well")
        checks.check_resume(folder, run_config)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed + world.rank)
    anomaly = torch.autograd.detect_anomaly() if options.detect_anomaly \
        else contextlib.nullcontext()
    with pair.scope(), _deferred_interrupt() as interrupted, anomaly, \
            pyro.validation_enabled(False):
        run_config.local_rows = _check_pair(pair, resident, config.batch_size)
        session = _session(pair, estimator, config, options, world, resident, generator, folder,
                           resume, choice)
        session.on_step = on_step
        if auxiliary_loss is not None:  # handed the inputs under the programs' own keywords
            session.auxiliary = lambda x, **given: auxiliary_loss(
                x, **program_inputs(pair.model, given))
        if board is not None and world.is_main:
            session.board = board(folder, pair, resident, getattr(data, "image_shape", None),
                                  session.state.epoch)
        if folder is not None and world.is_main:
            runs.write_json(folder / runs.CONFIG, run_config.to_json())
            runs.write_metrics(folder, session.state.metrics)
        _train(session, interrupted, folder, options.detect_anomaly)
    run = Run(pair, folder, run_config, session.state.metrics)
    if options.report and folder is not None and world.is_main:
        from ppl_vae.reporting.run_report import finish_run

        _say(options, _final_cost(run, options, data))
        run.report = finish_run(run, data, iw_samples=options.iw_samples,
                                examples=options.eval_examples, quiet=options.quiet)
    return run


def _train(session: Session, interrupted, folder, detect_anomaly: bool) -> None:
    """The epochs, with divergence, anomaly and Ctrl-C turned into one-line errors."""
    state = session.state
    if session.world.is_main and not session.options.quiet:
        print(session.evaluation_plan(), file=sys.stderr)
    try:
        while state.epoch < session.config.epochs and not state.stopped:
            session.epoch(interrupted)
    except TrainingDiverged as error:
        if folder is None or (folder / runs.CHECKPOINT).exists():
            raise
        raise TrainingDiverged(str(error).replace(
            "the last good checkpoint is kept", "no checkpoint was written yet")) from None
    except RuntimeError as error:
        if not detect_anomaly:
            raise
        raise TrainingDiverged(
            f"autograd anomaly in epoch {state.epoch + 1}, step {state.step + 1}: "
            f"{str(error).splitlines()[0]}; the last good checkpoint is kept") from None
    except KeyboardInterrupt:
        session.checkpoint()
        where = f" in {folder}" if folder is not None else ""
        raise PplVaeError(f"interrupted at epoch {state.epoch + 1}, step {state.step}; "
                          f"checkpoint saved{where}: continue with --resume") from None
    finally:
        session.bar.close()
        if session.board is not None:
            session.board.close()


def _say(options: RunOptions, line: str | None) -> None:
    """One line on stderr, unless quiet."""
    if line and not options.quiet:
        print(line, file=sys.stderr)


def _final_cost(run: Run, options: RunOptions, data) -> str | None:
    """What the final report's evaluation will cost, from the last test ELBO's speed."""
    rows = len(getattr(data, run.evaluation_split))
    n = min(rows, options.eval_examples or rows)
    passes = options.iw_samples * n
    timed = [m for m in run.metrics if m.get("eval_seconds") and m.get("eval_passes")]
    speed = "" if not timed else (
        f", about {passes * timed[-1]['eval_seconds'] / timed[-1]['eval_passes']:.0f} s at "
        f"the speed of the last test ELBO")
    return (f"final evaluation: K={options.iw_samples} importance samples x {n:,} "
            f"{run.evaluation_split} examples = {passes:,} passes{speed} (--iw-samples, "
            "--eval-examples)")


_TRAIN = {f.name for f in dataclasses.fields(TrainConfig)}
_RUN = {f.name for f in dataclasses.fields(RunOptions)}


def _split_settings(config: TrainConfig | None, settings: dict
                    ) -> tuple[TrainConfig, RunOptions, dict]:
    """``fit``'s keywords as training settings, run options and estimator options."""
    train = {k: v for k, v in settings.items() if k in _TRAIN - {"optim", "optim_args"}}
    if config is not None and train:
        raise PplVaeError(f"give the training settings either as config= or as keywords, not "
                          f"both ({sorted(train)})")
    estimator = {k: v for k, v in settings.items() if k not in _TRAIN | _RUN}
    unknown = sorted(set(estimator) - set(ESTIMATORS.all_options()))
    if unknown:
        raise PplVaeError(f"unknown setting(s) {unknown}: not a field of "
                          "ppl_vae.config.TrainConfig or RunOptions, nor an option of any "
                          "estimator (ppl-vae train --help lists them all)")
    config = config or TrainConfig.create(**train)
    options = RunOptions(**{k: v for k, v in settings.items() if k in _RUN})
    if config.patience and not options.eval_every:
        raise PplVaeError("early stopping (--patience) counts test ELBOs, and --eval-every 0 "
                          "measures only the last: give --eval-every 1 (or N), or no --patience")
    return config, options, estimator


def _resident(pair, data, names, device, config, options) -> dict:
    """The data the loop reads, on the device: storages, inputs, known masks, precision."""
    train_x, test_x, dynamic = checks.resident_data(pair, data, device)
    return {"train_x": train_x, "test_x": test_x, "dynamic": dynamic, "device": device,
            "train_in": {k: v.to(device) for k, v in split_inputs(
                data, "train", names, train_x.shape[0]).items()},
            "test_in": {k: v.to(device) for k, v in split_inputs(
                data, "test", names, test_x.shape[0]).items()},
            "known": {k: data.known[k].to(device) for k in names if k in data.known},
            "precision": MixedPrecision(pair, config.precision, device)}


def _check_pair(pair: Pair, resident: dict, batch_size: int) -> int | None:
    """The contract on a first batch; the unlabelled form too where inputs are partly known.

    Returns how many training rows have parameters of their own (None: amortized):
    with the ``index`` input, or parameters sized by a full batch (Pyro's sparse-gamma
    guide). Those rows are the only ones it can evaluate, so the per-epoch ELBO is
    taken on them. Batch-sized parameters under minibatches are refused.
    """
    n = resident["train_x"].shape[0]
    x, inputs = resident["train_x"][:batch_size], take(resident["train_in"], slice(0, batch_size))
    pair.check(x, inputs)
    if resident["known"]:
        pair.check(x, {k: None if k in resident["known"] else v for k, v in inputs.items()})
    sized = pair.plan(x, inputs)[1].batch_params
    if sized and x.shape[0] < n:
        raise PplVaeError(
            f"parameter(s) {sorted(sized)[:3]} are sized by the batch (x.size(0)), so every "
            f"batch of {x.shape[0]} would share them: train full-batch (--batch-size {n}), or "
            f"give each example its own row: fit(..., inputs=['{ROW_INDEX}']) with "
            f"pyro.plate('data', {n}, subsample=index) and pyro.param(name, init of shape "
            f"({n}, K), event_dim=1) inside it")
    if not sized and ROW_INDEX not in inputs:
        return None
    resident["test_x"], resident["test_in"] = resident["train_x"], resident["train_in"]
    return n


def _session(pair, estimator, config, options, world, resident, generator, folder,
             resume, choice) -> Session:
    """The loop's pieces; on ``resume`` the checkpoint's weights, optimizer, schedule, RNG."""
    params = pair.named_parameters()
    if not params:
        raise PplVaeError("the pair has no parameters to train (no PyroModule, pyro.param or "
                          "pyro.module reached by model or guide); register the networks with "
                          "pyro.module(name, net) or make the programs PyroModules")
    n = resident["train_x"].shape[0]
    spaced = labelled.SpacedBatches.of(resident["known"], config.batch_size) \
        if config.labelled_batches == "spaced" else None
    steps_per_epoch = n // min(config.batch_size, n) if spaced is None else len(spaced.steps())
    loss_of = distributed.pair_loss(pair, estimator, n, world,
                                    any(k.startswith("store.") for k in params))
    optimizer = optimizers.build(params, config, choice)
    scheduler = lr_scheduler(optimizer, config, steps_per_epoch)
    state = TrainState()
    if resume:
        saved = runs.load_checkpoint(folder, map_location=resident["device"])
        load_parameters(pair, saved["params"], resident["device"], buffers=saved.get("buffers"))
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        rng = saved["rng"]
        if len(rng) == world.size:
            set_rng_state(rng[world.rank], generator)
        else:  # another number of processes: same batches, fresh sampling noise per rank
            set_rng_state(rng[0], generator)
            torch.manual_seed(int(torch.randint(2**31, ())) + world.rank)
        state = TrainState.from_checkpoint(saved)
    return Session(pair, loss_of, config, options, world, resident, params, optimizer,
                   scheduler, generator, state, folder,
                   optimizers.loss_scale(config, min(config.batch_size, n)), spaced=spaced)


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
