"""One training run in progress: the pieces ``fit`` assembles and the steps of its loop.

A :class:`Session` holds the pair, the estimator's loss, the optimizer and
schedule, the resident data and the :class:`~ppl_vae.training.state.TrainState`.
:meth:`Session.epoch` runs the steps of one epoch: a batch gathered from the
storage (made float32 on the device; dynamically binarized where the data asks),
``loss = estimator.loss(pair, Batch(...))``, backward (of ``loss_scale · loss``:
:mod:`~ppl_vae.training.optimizers`), optional gradient clipping, optimizer
step, learning-rate schedule, then the user's ``on_step()`` (Pyro's
``clip_params()``: after the step, without gradients). The loss stays on
the device; it is read (one host sync) only every ``sync_every`` steps — where
the divergence guard looks at it — and at the end of an epoch, when
:meth:`Session.end_epoch` adds the test ELBO (every ``eval_every`` epochs and
after the last, with its own random stream, so the cadence never changes the
training), a ``metrics.jsonl`` line, early stopping, the checkpoint and the
TensorBoard events (:mod:`~ppl_vae.training.board`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyro
import torch
from tqdm.auto import tqdm

from ppl_vae import runs
from ppl_vae.config import RunOptions, TrainConfig
from ppl_vae.evaluate import evaluate_pair
from ppl_vae.pair import Pair
from ppl_vae.store import store_constraints
from ppl_vae.traces import take
from ppl_vae.training.distributed import World
from ppl_vae.training.labelled import SpacedBatches, step_as_svi
from ppl_vae.training.schedules import DivergenceGuard, warmup_scale
from ppl_vae.training.state import TrainState, rng_state

if TYPE_CHECKING:  # board imports tensorboard, an optional extra
    from ppl_vae.training.board import Board

GLOBAL_EPOCH_PARTICLES = 16


def epoch_particles(pair: Pair, x, inputs: dict, asked: int | None = None) -> int:
    """Particles of the per-epoch test ELBO: ``asked``, else one per example (it averages
    out over the test set), but a global latent's single draw is shared by every example
    (its noise does not average), so such a pair gets :data:`GLOBAL_EPOCH_PARTICLES`."""
    if asked is not None:
        return asked
    _, plan = pair.plan(x, inputs)
    return GLOBAL_EPOCH_PARTICLES if plan.global_sites else 1


@dataclass
class Session:
    """Everything one run's loop touches; built by :func:`ppl_vae.training.fit`."""

    pair: Pair
    loss_of: Callable[..., torch.Tensor]  # (x, inputs, known, latent_scale) -> loss
    config: TrainConfig
    options: RunOptions
    world: World
    data: dict  # train_x, test_x, train_in, test_in, known, dynamic, precision, device
    params: dict
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator
    state: TrainState
    folder: Path | None
    loss_scale: float = 1.0
    on_step: Callable[[], object] | None = None
    board: Board | None = None
    spaced: SpacedBatches | None = None  # labelled-only batches (ppl_vae.training.labelled)
    auxiliary: Callable[..., torch.Tensor] | None = None  # (x, **inputs) -> summed loss

    def __post_init__(self):
        self.batch_size = min(self.config.batch_size, self.data["train_x"].shape[0])
        self.steps_per_epoch = self.data["train_x"].shape[0] // self.batch_size
        self.slices = None if self.spaced is None else self.spaced.steps()
        if self.slices is not None:
            self.steps_per_epoch = len(self.slices)
        self.guard = DivergenceGuard(self.config.divergence_factor, self.state.guard)
        self.state.guard = self.guard.state
        self.scale = warmup_scale(self.state.epoch * self.steps_per_epoch + self.state.step,
                                  self.config.warmup_steps, self.config.warmup_start)
        self.bar = tqdm(total=self.config.epochs * self.steps_per_epoch, desc="training",
                        leave=False, file=sys.stderr,
                        initial=self.state.epoch * self.steps_per_epoch + self.state.step,
                        disable=self.options.quiet or not self.world.is_main or None)

    @property
    def lr(self) -> float | None:
        """The first group's learning rate (None for an optimizer without one)."""
        return self.optimizer.param_groups[0].get("lr")

    def epoch(self, interrupted) -> None:
        """The remaining steps of the current epoch, then its end (:meth:`end_epoch`)."""
        state, data, config = self.state, self.data, self.config
        if state.perm is None:
            order = None if self.spaced is None else self.spaced.order(self.generator)
            state.start_epoch(data["train_x"].shape[0], self.generator, data["device"], order)
            self.guard.start_epoch()
        assert state.perm is not None and state.running is not None \
            and state.grads_finite is not None  # set by start_epoch
        perm = state.perm.to(data["train_x"].index_device)
        if self.batch_size == data["train_x"].shape[0] and self.spaced is None:
            perm = perm.sort().values  # full batch: rows in their order, as Pyro's full-batch
            # programs (params sized by x) expect
        start, first_step = time.perf_counter(), state.step
        for step in range(first_step, self.steps_per_epoch):
            global_step = state.epoch * self.steps_per_epoch + step
            self.scale = warmup_scale(global_step, config.warmup_steps, config.warmup_start)
            if self.slices is None:
                index = self.world.shard(perm[step * self.batch_size:
                                              (step + 1) * self.batch_size])
                labelled = False
            else:
                start_row, stop_row, labelled = self.slices[step]
                index = perm[start_row:stop_row]
            batch = data["train_x"][index]
            if data["dynamic"]:
                batch = torch.bernoulli(batch)
            inputs = take(data["train_in"], index)
            loss = self.descend(lambda: self.loss_of(batch, inputs, take(data["known"], index),
                                                     self.scale), batch.shape[0])
            if labelled and self.auxiliary is not None:
                aux = self.auxiliary
                self.descend(lambda: aux(batch, **inputs) / batch.shape[0], batch.shape[0])
            if self.scheduler is not None:
                self.scheduler.step()
            if self.on_step is not None:
                with torch.no_grad():
                    self.on_step()
            state.running = state.running + loss.detach()
            state.step = done = step + 1
            log = config.log_every and (global_step + 1) % config.log_every == 0
            if done % self.options.sync_every == 0 or done == self.steps_per_epoch \
                    or global_step == 0 or log:
                self.sync(done, global_step + 1)
            if self.options.checkpoint_every and done % self.options.checkpoint_every == 0 \
                    and done < self.steps_per_epoch:
                self.checkpoint()
            if interrupted():
                raise KeyboardInterrupt
        self.end_epoch(time.perf_counter() - start, first_step)

    def descend(self, loss_of: Callable[[], torch.Tensor], rows: int) -> torch.Tensor:
        """One optimizer step on ``loss_of()`` (per example; backward of ``loss_scale ·``
        it), clipped where asked; with spaced batches, as Pyro's ``SVI.step``: on the
        batch's summed loss (``rows ·`` it) and with SVI's gradients
        (:func:`~ppl_vae.training.labelled.step_as_svi`). Returns the loss."""
        config, state = self.config, self.state
        assert state.grads_finite is not None  # set by start_epoch
        self.optimizer.zero_grad(set_to_none=True)
        scale = self.loss_scale if self.spaced is None else float(rows)

        def backward() -> torch.Tensor:
            with self.data["precision"]:
                loss = loss_of()
            (loss if scale == 1.0 else loss * scale).backward()
            return loss

        loss = backward() if self.spaced is None else \
            step_as_svi(self.optimizer, self.params, backward)
        if config.clip_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params.values(), config.clip_norm)
            state.grads_finite = state.grads_finite & torch.isfinite(norm)
        self.optimizer.step()
        return loss

    def sync(self, done: int, global_step: int) -> None:
        """The one host read of a window: divergence guard, step log, progress bar."""
        state, epoch = self.state, self.state.epoch
        assert state.running is not None  # set by start_epoch
        running = state.running.item()
        self.guard.check(running, done, bool(state.grads_finite),
                         f"in epoch {epoch + 1} by step {done}", self.lr)
        if self.config.log_every and global_step % self.config.log_every == 0:
            mark = state.log_mark
            state.steps.append({"step": global_step, "epoch": epoch + 1,
                                "train_objective": -(running - mark[1]) / max(1, done - mark[0]),
                                "lr": self.lr, "warmup_scale": self.scale})
            state.log_mark = (done, running)
            if self.board is not None:
                self.board.scalars("step", state.steps[-1], global_step)
        self.bar.update(epoch * self.steps_per_epoch + done - self.bar.n)
        self.bar.set_postfix(epoch=f"{epoch + 1}/{self.config.epochs}",
                             objective=f"{-running / done:.2f}")

    def particles(self) -> int:
        """Particles per test example of the per-epoch test ELBO."""
        data = self.data
        return epoch_particles(self.pair, data["test_x"], data["test_in"],
                               self.options.eval_particles)

    def evaluation_plan(self) -> str:
        """One line on what the per-epoch test ELBO costs, said before training."""
        every, epochs, n = self.options.eval_every, self.config.epochs, len(self.data["test_x"])
        when = "after the last epoch only" if every == 0 or every >= epochs else \
            "after every epoch" if every == 1 else f"every {every} epochs and after the last"
        passes, trained = self.particles() * n, self.steps_per_epoch * self.batch_size
        heavy = f"; that is more than an epoch's {trained:,} training examples: consider " \
            "--eval-every N" if passes > trained and every == 1 and epochs > 1 else ""
        return (f"test ELBO: {self.particles()} particle(s) x {n:,} test examples = "
                f"{passes:,} passes, {when} (--eval-every, --eval-particles){heavy}")

    def evaluated(self, epoch: int) -> bool:
        """Whether the test ELBO is measured after ``epoch`` (counted from 1)."""
        every = self.options.eval_every
        return epoch >= self.config.epochs or bool(every) and epoch % every == 0

    def test_elbo(self, epoch: int) -> dict:
        """The test ELBO, its seconds and passes, drawn from a stream of its own (seeded by
        the run's seed and the epoch), so evaluating never moves the training's draws."""
        data, start, particles = self.data, time.perf_counter(), self.particles()
        devices = [data["device"]] if data["device"].type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.seed * 100_003 + epoch)
            elbo = evaluate_pair(self.pair, data["test_x"], iw_samples=particles,
                                 inputs=data["test_in"])["elbo"]
            seconds = time.perf_counter() - start
            if self.board is not None:
                self.board.look(epoch)
        return {"test_elbo": elbo, "eval_seconds": round(seconds, 3),
                "eval_passes": particles * len(data["test_x"])}

    def end_epoch(self, seconds: float, first_step: int) -> None:
        """Test ELBO (when due), metrics line, early stopping and the epoch's checkpoint."""
        state, world = self.state, self.world
        assert state.running is not None  # set by start_epoch
        objective = -world.mean(state.running).item() / self.steps_per_epoch
        epoch = state.epoch + 1
        evaluated = world.is_main and self.evaluated(epoch)
        tested: dict[str, Any] = self.test_elbo(epoch) if evaluated else dict.fromkeys(
            ("test_elbo", "eval_seconds", "eval_passes"))
        test_elbo = tested["test_elbo"]
        if evaluated:
            self.guard.check_value(-test_elbo, f"after epoch {epoch}", self.lr,
                                   "the negative test ELBO")
        state.metrics.append({
            "epoch": epoch, "step": epoch * self.steps_per_epoch,
            "train_objective": objective, "test_elbo": test_elbo, "lr": self.lr,
            "warmup_scale": self.scale, "seconds": round(seconds, 3),
            "examples_per_s": round((self.steps_per_epoch - first_step) * self.batch_size
                                    / seconds, 1), **tested})
        state.end_epoch()
        best = state.best
        if self.config.patience and evaluated:
            if best["elbo"] is None or test_elbo > best["elbo"]:
                best.update(elbo=test_elbo, epoch=state.epoch, since=0)
                self.checkpoint(runs.BEST)
            else:
                best["since"] += 1
                state.stopped = best["since"] >= self.config.patience
        self.checkpoint()
        if self.folder is not None and world.is_main:
            runs.write_metrics(self.folder, state.metrics)
            runs.write_metrics(self.folder, state.steps, runs.STEPS)
        if self.board is not None:
            self.board.scalars("epoch", state.metrics[-1], epoch)
        if not self.options.quiet and world.is_main:
            m = state.metrics[-1]
            said = "" if test_elbo is None else f", test ELBO {test_elbo:.2f} nats/example"
            self.bar.write(f"epoch {m['epoch']}/{self.config.epochs}: objective "
                           f"{m['train_objective']:.2f}{said}, {m['examples_per_s']:.0f} "
                           "examples/s", file=sys.stderr)

    def checkpoint(self, name: str = runs.CHECKPOINT) -> None:
        """Weights, buffers, optimizer, schedule, RNG and state, atomically (rank 0 writes)."""
        rng = self.world.gather(rng_state(self.generator))
        if self.folder is not None and self.world.is_main:
            runs.save_checkpoint(self.folder, {
                **self.state.to_checkpoint(),
                "params": {k: v.detach().cpu() for k, v in self.params.items()},
                "buffers": {k: v.detach().cpu() for k, v in self.pair.named_buffers().items()},
                "constraints": store_constraints(pyro.get_param_store().get_state()),
                "optimizer": self.optimizer.state_dict(), "rng": rng,
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict()},
                name)
