"""A run folder: its typed configuration, its checkpoints and its files (:mod:`ppl_vae.trained` reloads it).

A run folder holds everything needed to resume, evaluate, diagnose and sample::

    RUN/config.json      what was built and how it was trained (:class:`RunConfig`)
    RUN/metrics.jsonl    one JSON line per finished epoch
    RUN/steps.jsonl      the training loss every ``log_every`` steps (when asked)
    RUN/checkpoint.pt    parameters, optimizer, RNG states, position in the epoch
    RUN/best.pt          parameters of the epoch with the best test ELBO (early stopping)
    RUN/figures/*.png    reconstructions, prior samples, traversals, loss curve
    RUN/tensorboard/     TensorBoard events (when asked)
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from ppl_vae.config import DataSpec, EstimatorSpec, PairSpec, Recorded, TrainConfig
from ppl_vae.errors import PplVaeError
from ppl_vae.registry import GUIDES, MODELS

FORMAT_VERSION = 3
CONFIG, METRICS, CHECKPOINT, REPORT = "config.json", "metrics.jsonl", "checkpoint.pt", "report.json"
STEPS, BEST, TENSORBOARD = "steps.jsonl", "best.pt", "tensorboard"


def _version() -> str:
    try:
        return metadata.version("ppl-vae")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Environment(Recorded):
    """Where a run trained: free to change between resumes, so recorded but not compared."""

    device: str | None = None
    processes: int = 1

    def to_json(self) -> dict:
        return {"device": self.device, "processes": self.processes}

    @classmethod
    def from_json(cls, obj: dict) -> Environment:
        return cls(obj.get("device"), obj.get("processes", 1))


@dataclass
class RunConfig:
    """What a run trained, and how: the record ``--resume`` is checked against.

    Attributes:
        pair: how to rebuild the pair (:class:`~ppl_vae.config.PairSpec`), or None.
        data: how to rebuild the data (:class:`~ppl_vae.config.DataSpec`), or None
            (data handed in from memory).
        event_shape: shape of one example.
        inputs: dataset inputs passed as keywords, name -> ``[dtype, shape]``.
        estimator: the :class:`~ppl_vae.config.EstimatorSpec` (name and every option).
        training: the :class:`~ppl_vae.config.TrainConfig` (written as config.json's
            ``training``, ``optimizer`` and ``schedule`` sections).
        environment: where it ran (:class:`Environment`: device and processes), which
            may change on resume (everything else but ``training.epochs`` may not).
        evaluation: how it is evaluated (the :attr:`~ppl_vae.config.RunOptions.RECORDED`
            run options: cadence and particles of the test ELBO, the final report's size),
            which may change on resume too.
        version: the ppl-vae that wrote it.
        local_rows: how many training rows have parameters of their own (a pair with
            the ``index`` input, or with parameters sized by its full batch); None for an
            amortized pair. Evaluation refuses other rows.
    """

    pair: PairSpec | None
    data: DataSpec | None
    event_shape: list
    inputs: dict
    estimator: EstimatorSpec
    training: TrainConfig
    environment: Environment = field(default_factory=Environment)
    evaluation: dict = field(default_factory=dict)
    version: str = field(default_factory=_version)
    format_version: int = FORMAT_VERSION
    local_rows: int | None = None

    MAY_CHANGE_ON_RESUME = ("training.epochs", "environment.", "evaluation", "evaluation.",
                            "version", "format_version", "local_rows")

    def to_json(self) -> dict:
        pair = None if self.pair is None else self.pair.to_json()
        data = None if self.data is None else self.data.to_json()
        return {"pair": pair, "data": data, "event_shape": self.event_shape,
                "inputs": self.inputs, "estimator": self.estimator.to_json(),
                **self.training.to_json(), "environment": self.environment.to_json(),
                "evaluation": self.evaluation, "version": self.version,
                "format_version": self.format_version,
                **({"local_rows": self.local_rows} if self.local_rows is not None else {})}

    @classmethod
    def from_json(cls, obj: dict) -> RunConfig:
        """Read a ``config.json``: format 3; format 2 (the same sections, fewer settings:
        the rest at their defaults); format 1 (everything in one ``train`` dict)."""
        version = obj.get("format_version", 1)
        built = {"pair": PairSpec.from_json(obj.get("pair")),
                 "data": DataSpec.from_json(obj.get("data")),
                 "event_shape": obj.get("event_shape", []), "inputs": obj.get("inputs", {})}
        if version >= 2:
            sections = {k: obj.get(k, {}) for k in ("training", "optimizer", "schedule")}
            return cls(**built, estimator=EstimatorSpec.from_json(obj["estimator"], version),
                       training=TrainConfig.from_json(sections),
                       environment=Environment.from_json(obj.get("environment", {})),
                       evaluation=obj.get("evaluation", {}),
                       version=obj.get("version", "unknown"), format_version=version,
                       local_rows=obj.get("local_rows"))
        train = dict(obj.get("train", {}))  # format 1 had none of the training controls
        estimator = {"elbo": "trace", **{k: train.pop(k) for k in (
            "elbo", "particles", "alpha", "pyro_settings") if k in train}}
        return cls(**built, estimator=EstimatorSpec.from_json(estimator, 1),
                   environment=Environment.from_json(
                       {k: train.pop(k) for k in ("device", "processes") if k in train}),
                   training=TrainConfig.from_json({"train": train}),
                   version="before 0.2", format_version=1)

    def differences(self, requested: RunConfig) -> list[str]:
        """``key: stored → requested`` for every setting that may not change on resume."""
        mine, theirs = _flatten(self.to_json()), _flatten(requested.to_json())
        keys = sorted(set(mine) | set(theirs))
        if self.format_version < 2:  # format 1 recorded only the options given, not defaults
            keys = [k for k in keys if not (k.startswith("pair.options.") and k not in mine)]
        added = _option_defaults(self.pair)  # an option added since the run, at its default
        keys = [k for k in keys if not (k not in mine and k in added and theirs[k] == added[k])]
        return [f"{k}: {mine.get(k)!r} → {theirs.get(k)!r}" for k in keys
                if mine.get(k) != theirs.get(k)
                and not any(k == m or (m.endswith(".") and k.startswith(m))
                            for m in self.MAY_CHANGE_ON_RESUME)]


def _option_defaults(pair: PairSpec | None) -> dict:
    """``{"pair.options.<name>": default}`` for the stored registry pair's model and guide
    options (JSON-normalised): a run made before an option existed was made at its default."""
    if pair is None or pair.source != "registry":
        return {}
    defaults = {}
    for registry, name in ((MODELS, pair.model), (GUIDES, pair.guide)):
        if name is not None and name in registry:
            defaults.update({k: o.default for k, o in registry.options(name).items()})
    return _flatten({"pair": {"options": defaults}})


def _flatten(obj, prefix: str = "") -> dict:
    """Nested dicts as ``{"a.b": value}`` (lists and JSON-normalised values as leaves)."""
    if isinstance(obj, dict) and obj:
        out = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.loads(json.dumps(obj))}


def save_checkpoint(folder: Path, state: dict, name: str = CHECKPOINT) -> None:
    """Atomically save ``state`` (tensors and plain containers only).

    The bytes are serialised in memory first, so a failing disk surfaces as the
    operating system's error rather than as an error deep inside torch's writer.
    """
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **state}, buffer)
    atomic_write(Path(folder) / name, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(folder: Path, map_location="cpu", name: str = CHECKPOINT) -> dict:
    """Load ``checkpoint.pt`` (or ``name``) with ``weights_only=True``; clear errors for bad files."""
    path = Path(folder) / name
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


def read_run_config(folder: Path) -> RunConfig:
    """``config.json`` of a run folder as a :class:`RunConfig`."""
    return RunConfig.from_json(read_config(folder))


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
        for name in (CHECKPOINT, METRICS, REPORT, STEPS, BEST, "evaluation.json",
                     "evaluation_examples.npz"):
            (folder / name).unlink(missing_ok=True)
        for events in (folder / TENSORBOARD).glob("events.out.tfevents.*"):
            events.unlink()
    for stale in folder.glob(".*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    try:  # figures/ is made by the report that draws them, so a failed run has none
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PplVaeError(f"cannot create run folder {folder}: {error.strerror}") from None
    return folder


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; run files follow the umask
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


def write_metrics(folder: Path, metrics: list[dict], name: str = METRICS) -> None:
    """Atomically rewrite ``metrics.jsonl`` (or ``name``), one JSON line per record."""
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    atomic_write(Path(folder) / name, lambda f: f.write(text.encode()))


def read_metrics(folder: Path, name: str = METRICS) -> list[dict]:
    """The lines of ``metrics.jsonl`` (or ``name``; empty if none yet)."""
    path = Path(folder) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
