"""Many processes with ``torchrun``: DistributedDataParallel over a model/guide pair.

Launched as ``torchrun --nproc_per_node=N -m ppl_vae train ...`` (gloo on the
CPU, nccl on GPUs), every rank draws the same permutation of the training set
each epoch and takes its share ``perm[step·B:(step+1)·B][rank::N]`` of each
global batch of B examples. Each rank's loss is the mean over its share, and
DDP averages gradients across ranks, so one step follows the gradient of the
mean over the whole global batch, as single-process training does. Only rank 0
writes the run folder. Without ``WORLD_SIZE > 1`` in the environment nothing
here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ppl_vae.errors import PplVaeError
from ppl_vae.estimators.base import Batch


@dataclass
class World:
    """This process's rank among ``size`` training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_index: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch's indices."""
        return batch_index[self.rank::self.size]

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Average of ``value`` over ranks (identity for one process)."""
        if self.size == 1:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.size

    def gather(self, obj) -> list:
        """``obj`` from every rank, in rank order."""
        if self.size == 1:
            return [obj]
        objects = [None] * self.size
        dist.all_gather_object(objects, obj)
        return objects

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes; pick this rank's GPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size), device


class PairLoss(nn.Module):
    """The estimator's training loss on the pair, as a module holding the pair's networks
    (what DDP wraps): ``forward`` is :meth:`ppl_vae.estimators.Estimator.loss`."""

    def __init__(self, pair, estimator, dataset_size: int):
        super().__init__()
        self.model, self.guide = pair.model, pair.guide  # registered: DDP sees their parameters
        self.pair, self.estimator, self.dataset_size = pair, estimator, dataset_size

    def forward(self, x: torch.Tensor, inputs: dict, known: dict,
                latent_scale: float = 1.0) -> torch.Tensor:
        return self.estimator.loss(self.pair,
                                   Batch(x, inputs, known, self.dataset_size, latent_scale))


def pair_loss(pair, estimator, dataset_size: int, world: World, store_params: bool):
    """``(x, inputs, known, latent_scale) -> loss`` on the pair, in DDP for several processes."""
    loss = PairLoss(pair, estimator, dataset_size)
    if world.size == 1:
        return loss
    if store_params or len(pair.modules()) < 2:
        raise PplVaeError("training with several processes needs model and guide to be "
                          "nn.Modules (PyroModule) holding all their parameters")
    return DistributedDataParallel(loss)


def is_main_process() -> bool:
    """Whether this is rank 0 (or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def finish() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()
