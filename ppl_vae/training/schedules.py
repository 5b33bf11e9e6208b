"""Training controls: learning-rate schedules, KL warm-up, the divergence guard.

- **Learning rate** (``torch.optim.lr_scheduler``, stepped once per training
  step): ``constant``; ``cosine``, ``lr_t = lr · (1 + cos(π t / T)) / 2`` over the
  run's ``T`` steps; ``step``, ``lr · γ^⌊t / (E · steps_per_epoch)⌋`` every ``E`` epochs.
- **KL warm-up** (Bowman et al. 2016, Sønderby et al. 2016): the scale of every
  latent site, in model and guide alike, is multiplied by
  ``s_t = s_0 + (1 - s_0) · min(1, t / N)``, so the objective is
  ``E_q log p(x | z) - s_t · KL`` (``- s_t β KL`` for a β-VAE) — the same mechanism
  as β (:class:`ppl_vae.traces.ScaleLatent`), so it works on any pair and under
  ``meanfield``'s analytic KL.
- **Divergence guard**: after the run's first step (the loss of the initial
  parameters) and every ``sync_every`` steps, the mean loss of the steps since
  the last check is compared with the best such mean so far; a window — or an
  epoch's negative test ELBO — worse than ``best + factor · max(|best|, 1)``
  nats, a non-finite loss or a non-finite gradient norm stops training,
  keeping the last good checkpoint.
"""

from __future__ import annotations

import math

import torch

from ppl_vae.config import TrainConfig
from ppl_vae.errors import PplVaeError


def lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
                 ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step scheduler of the module docstring (None for ``constant``)."""
    kind, gamma, total_steps = config.lr_schedule, config.lr_gamma, config.epochs * steps_per_epoch
    if kind != "constant" and "lr" not in optimizer.param_groups[0]:
        raise PplVaeError(f"--lr-schedule {kind} needs an optimizer with a learning rate lr; "
                          f"{type(optimizer).__name__} has none: use --lr-schedule constant")
    step_epochs = config.lr_step_epochs
    if kind == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [m * steps_per_epoch for m in config.lr_milestones or ()], gamma=gamma)
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if kind == "step":
        every = (step_epochs or max(1, total_steps // steps_per_epoch // 3)) * steps_per_epoch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
    return None


def warmup_scale(step: int, warmup_steps: int, start: float) -> float:
    """``s_t = s_0 + (1 - s_0) min(1, t / N)``; 1 without warm-up."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return start + (1.0 - start) * step / warmup_steps


class DivergenceGuard:
    """The check of the module docstring; its state is checkpointed with the run."""

    def __init__(self, factor: float, state: dict | None = None):
        self.factor = factor
        self.state = state or {"best": None, "mark_step": 0, "mark_loss": 0.0}

    def start_epoch(self) -> None:
        """The running loss restarts from zero each epoch."""
        self.state.update(mark_step=0, mark_loss=0.0)

    def check(self, running: float, done: int, grads_finite: bool, where: str,
              lr: float | None) -> None:
        """Stop with one line if the window since the last check diverged."""
        steps = done - self.state["mark_step"]
        if steps <= 0:
            return
        window = (running - self.state["mark_loss"]) / steps
        best = self.state["best"]
        if not math.isfinite(window) or not grads_finite:
            what = "non-finite gradients" if grads_finite is False and math.isfinite(window) \
                else "a NaN or infinite loss"
            raise TrainingDiverged(f"{what} {where}; the last good checkpoint is kept: lower "
                                   f"--lr (now {_lr(lr)}), add --clip-norm, check the data, or "
                                   "resume with --detect-anomaly")
        self.check_value(window, where, lr)
        self.state.update(best=window if best is None else min(best, window), mark_step=done,
                          mark_loss=running)

    def check_value(self, loss: float, where: str, lr: float | None,
                    what: str = "mean loss") -> None:
        """Stop if ``loss`` is more than the factor worse than the best window (or not finite)."""
        best = self.state["best"]
        if not math.isfinite(loss) or (best is not None
                                       and loss - best > self.factor * max(abs(best), 1.0)):
            raise TrainingDiverged(
                f"training diverged {where}: {what} {loss:.4g} against a best of {best:.4g} "
                f"nats/example (more than --divergence-factor {self.factor:g} worse); the last "
                f"good checkpoint is kept: lower --lr (now {_lr(lr)}) or add --clip-norm")


def _lr(lr: float | None) -> str:
    """The learning rate as the messages show it (an optimizer without ``lr``: its own)."""
    return "the optimizer's own step size" if lr is None else f"{lr:g}"


class TrainingDiverged(PplVaeError):
    """The loss became NaN, infinite, or exploded; the last good checkpoint is kept."""
