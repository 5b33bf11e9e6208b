"""The run folder: config, metrics, atomic weights-only checkpoints.

A run folder holds everything needed to resume, evaluate, diagnose and sample::

    RUN/config.json      what was built and how it was trained (names + options)
    RUN/metrics.jsonl    one JSON line per finished epoch
    RUN/checkpoint.pt    parameters, optimizer, RNG states, position in the epoch
    RUN/figures/*.png    reconstructions, prior samples, traversals, loss curve
    RUN/report.json      evaluation after training

Checkpoints hold tensors and plain containers only and are read with
``torch.load(weights_only=True)``: a checkpoint from elsewhere cannot run code.
Every file is written to a temporary name in the same folder, flushed,
fsynced and moved into place with ``os.replace``, so a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from ppl_vae.errors import PplVaeError

FORMAT_VERSION = 1
CONFIG, METRICS, CHECKPOINT, REPORT = "config.json", "metrics.jsonl", "checkpoint.pt", "report.json"


def atomic_write(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file, then move it over ``path``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise PplVaeError(f"cannot write in {path.parent}: {error.strerror}; "
                          "check the folder exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise PplVaeError(f"could not write {path}: {error.strerror}; the previous file "
                          "is intact (free space or fix permissions and resume)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


def write_metrics(folder: Path, metrics: list[dict]) -> None:
    """Atomically rewrite ``metrics.jsonl`` (one line per epoch) from ``metrics``."""
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    atomic_write(Path(folder) / METRICS, lambda f: f.write(text.encode()))


def save_checkpoint(folder: Path, state: dict) -> None:
    """Atomically save ``state`` (tensors and plain containers only).

    The bytes are serialised in memory first, so a failing disk surfaces as the
    operating system's error rather than as an error deep inside torch's writer.
    """
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write(Path(folder) / CHECKPOINT, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(folder: Path, map_location="cpu") -> dict:
    """Load ``checkpoint.pt`` with ``weights_only=True``; clear errors for bad files."""
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        raise PplVaeError(f"{path} does not exist; train first, or check the run folder path")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise PplVaeError(f"{path} is refused: it holds objects other than tensors and plain "
                          f"containers, which could run code ({str(error).splitlines()[0][:80]}); "
                          "only load checkpoints written by ppl-vae") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise PplVaeError(f"{path} is truncated or corrupt ({type(error).__name__}); "
                          "restore it or retrain") from None
    if not isinstance(state, dict) or "params" not in state:
        raise PplVaeError(f"{path} is not a ppl-vae checkpoint (no 'params'); retrain")
    check_version(state.get("format_version"), path)
    return state


def check_version(version, path) -> None:
    """Refuse files from a newer (or unversioned) ppl-vae."""
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PplVaeError(f"{path} has format version {version!r}, but this ppl-vae reads up to "
                          f"{FORMAT_VERSION}; upgrade ppl-vae or retrain")


def read_config(folder: Path) -> dict:
    """``config.json`` of a run folder, checked for existence and version."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise PplVaeError(f"run folder {folder} does not exist; give the --out folder of a "
                          "training run")
    if not path.exists():
        raise PplVaeError(f"{folder} has no {CONFIG}; it is not a ppl-vae run folder")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PplVaeError(f"{path} is not valid JSON; restore it or retrain") from None
    check_version(config.get("format_version"), path)
    return config


def read_metrics(folder: Path) -> list[dict]:
    """The lines of ``metrics.jsonl`` (empty if none yet)."""
    path = Path(folder) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def prepare_folder(folder: Path, resume: bool, overwrite: bool) -> Path:
    """Create the run folder; never overwrite an existing run unless asked."""
    folder = Path(folder)
    has_run = (folder / CONFIG).exists() or (folder / CHECKPOINT).exists()
    if has_run and not (resume or overwrite):
        raise PplVaeError(f"run folder {folder} already holds a run; pass --resume to continue "
                          "it or --overwrite to replace it")
    if resume and not (folder / CHECKPOINT).exists():
        raise PplVaeError(f"cannot resume: {folder / CHECKPOINT} does not exist")
    if overwrite and not resume:
        for name in (CHECKPOINT, METRICS, REPORT, "evaluation.json"):
            (folder / name).unlink(missing_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    try:
        (folder / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PplVaeError(f"cannot create run folder {folder}: {error.strerror}") from None
    return folder
