"""Where a training run is: the :class:`TrainState` a checkpoint holds beside the weights.

A checkpoint (``RUN/checkpoint.pt``) is the state's fields plus ``params``,
``buffers``, ``optimizer``, ``scheduler`` and ``rng`` (each process's torch,
CUDA and batch-order generators): enough to continue bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch


@dataclass
class TrainState:
    """The position in the run and what has been measured so far.

    Attributes:
        epoch, step: finished epochs, and steps of the current one.
        perm: the current epoch's order of the training set (None between epochs).
        running: the loss summed over the epoch's steps, on the device.
        grads_finite: whether every clipped gradient norm this epoch was finite.
        metrics, steps: the lines of ``metrics.jsonl`` and ``steps.jsonl``.
        guard: the divergence guard's state.
        best: early stopping's best test ELBO, its epoch, epochs since.
        stopped: early stopping fired.
        log_mark: (step, running loss) of the last ``steps.jsonl`` line this epoch.
    """

    epoch: int = 0
    step: int = 0
    perm: torch.Tensor | None = None
    running: torch.Tensor | None = None
    grads_finite: torch.Tensor | None = None
    metrics: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    guard: dict | None = None
    best: dict = field(default_factory=lambda: {"elbo": None, "epoch": 0, "since": 0})
    stopped: bool = False
    log_mark: tuple = (0, 0.0)

    def to_checkpoint(self) -> dict:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, saved: dict) -> TrainState:
        """The fields a checkpoint holds (older ones lack some: defaults)."""
        return cls(**{f.name: saved[f.name] for f in fields(cls) if f.name in saved})

    def start_epoch(self, n: int, generator: torch.Generator, device,
                    order: torch.Tensor | None = None) -> None:
        """A fresh order of the ``n`` examples (``order``: one drawn by a schedule), zeroed
        sums."""
        self.perm = torch.randperm(n, generator=generator) if order is None else order
        self.running = torch.zeros((), device=device)
        self.grads_finite = torch.ones((), dtype=torch.bool, device=device)

    def end_epoch(self) -> None:
        self.epoch, self.step, self.perm, self.running = self.epoch + 1, 0, None, None
        self.log_mark = (0, 0.0)


def rng_state(generator: torch.Generator) -> dict:
    """This process's random states: torch's, CUDA's and the batch-order generator's."""
    state: dict[str, object] = {"torch": torch.get_rng_state(), "batches": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
