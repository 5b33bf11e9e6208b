"""What ``fit`` checks before the first step: the data, the input names, a resume's settings,
TensorBoard's presence."""

from __future__ import annotations

from pathlib import Path

import torch

from ppl_vae import runs
from ppl_vae.config import RunOptions
from ppl_vae.contract import ModelHooks, hook
from ppl_vae.data.dataset import ROW_INDEX
from ppl_vae.data.storage import Storage, split_storage
from ppl_vae.errors import PplVaeError
from ppl_vae.pair import Pair
from ppl_vae.runs import RunConfig


def check_resume(folder: Path, requested: RunConfig) -> None:
    """Refuse a resume that would train something other than what the folder records."""
    stored = runs.read_run_config(folder)
    differences = stored.differences(requested)
    if stored.training.lr_schedule == "cosine" and \
            stored.training.epochs != requested.training.epochs:
        differences.append("training.epochs with a cosine schedule (it anneals over the "
                           "original epochs)")
    if differences:
        raise PplVaeError(f"cannot resume {folder} with other settings ({'; '.join(differences)}); "
                          "only --epochs may change (to extend the run): drop the changed flags, "
                          "or start a new run with another --out")


def check_dataset(data) -> None:
    """A Dataset, not a bare tensor or loader: one line saying how to wrap it."""
    splits = all(hasattr(data, k + "_store") or hasattr(data, k) for k in ("train", "test"))
    if not splits or not hasattr(data, "event_shape"):  # (a store is read without decoding)
        raise PplVaeError(f"fit() takes a ppl_vae.data.Dataset, not {type(data).__name__}; wrap "
                          "your tensors with ppl_vae.data.from_tensors(x, labels=...) or load one "
                          "with ppl_vae.data.load(name)")


def check_input_names(inputs, data) -> list[str]:
    """The requested input names, each one the dataset has (or the built-in ``"index"``)."""
    names = [inputs] if isinstance(inputs, str) else list(inputs or ())
    available = data.input_names() if hasattr(data, "input_names") else []
    missing = [name for name in names if name not in available and name != ROW_INDEX]
    if missing:
        raise PplVaeError(f"the dataset has no input(s) {missing} (it has: {available or 'none'}, "
                          f"and the built-in '{ROW_INDEX}'); labels are 'y', other arrays come "
                          "as from_tensors(..., fields=)")
    return names




def resident_data(pair: Pair, data, device) -> tuple[Storage, Storage, bool]:
    """Train and test storages on the device, checked against the model's support by chunks."""
    train_x, test_x = (split_storage(data, split).to(device) for split in ("train", "test"))
    dynamic = getattr(data, "dynamic_binarize", False)
    check = hook(pair.model, ModelHooks, "check_data")
    if check is not None:
        for store, name in ((train_x, "training data"), (test_x, "test data")):
            for chunk in store.support_chunks():
                check(torch.bernoulli(chunk) if dynamic else chunk, name)
    return train_x, test_x, dynamic


def tensorboard(options: RunOptions, folder: Path | None):
    """:class:`~ppl_vae.training.board.Board` when ``--tensorboard`` is asked (None else);
    a missing ``tensorboard`` package or run folder refused in one line before training."""
    if not options.tensorboard:
        return None
    if folder is None:
        raise PplVaeError("--tensorboard writes into the run folder; give out= (--out)")
    try:
        from ppl_vae.training.board import Board
    except ImportError:
        raise PplVaeError("--tensorboard needs the tensorboard package: pip install "
                          "'ppl-vae[tensorboard]' (or pip install tensorboard)") from None
    return Board
