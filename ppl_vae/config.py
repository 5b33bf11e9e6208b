"""Every setting of a training run, typed, in one home: its default, its check and its help.

- :class:`TrainConfig`: what a run trains with and ``--resume`` may not change
  (but ``epochs``): optimizer, learning-rate schedule, KL warm-up, batch,
  seed, early stopping, divergence guard. Recorded in ``config.json``.
- :class:`RunOptions`: where and how it runs, free to change between resumes
  (device, checkpoint cadence, evaluation cadence and size, progress bar, TensorBoard).
- :class:`EstimatorSpec`: an estimator's registry name and every option it was
  built with (defaults included), as recorded and rebuilt.
- :class:`PairSpec`: how a run folder rebuilds its model and guide.
- :class:`SplitOptions`: the options every dataset source takes (held-out share,
  seed, binarization, storage), and :class:`DataSpec`: how a run folder
  rebuilds its data.

Each field's ``metadata`` holds its help line and, where the text form needs
one, its parser; :func:`ppl_vae.cli.parser` makes the flags from these, so a
new field is a new flag. ``fit(**settings)`` builds a :class:`TrainConfig`
from its keywords and refuses an unknown one by name.
"""

from __future__ import annotations

import dataclasses
import numbers as abstract_numbers
from dataclasses import dataclass, field
from typing import Any, overload

from ppl_vae.errors import PplVaeError

LR_SCHEDULES = ("constant", "cosine", "step", "multistep")
PRECISIONS = ("fp32", "bf16")
LABELLED_BATCHES = ("mixed", "spaced")
BINARIZE = ("none", "static", "sampled", "dynamic")


def numbers(text: str) -> tuple[float, ...]:
    """``"0.9,0.999"`` -> ``(0.9, 0.999)``: a comma-separated flag value."""
    try:
        return tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        raise ValueError(f"not a comma-separated list of numbers: {text!r}") from None


def counts(text: str) -> tuple[int, ...]:
    """``"1,4,13"`` -> ``(1, 4, 13)``."""
    return tuple(int(value) for value in numbers(text))


def fraction_or_count(text: str) -> int | float:
    """``"0.1"`` (a fraction) or ``"500"`` (a count)."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def keywords(text: str) -> dict:
    """``"lrd=0.999,clip_norm=10,amsgrad=true"`` -> ``{"lrd": 0.999, "clip_norm": 10,
    "amsgrad": True}``: numbers, true/false, none, else the text."""
    out = {}
    for part in (part for part in text.split(",") if part):
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"not a comma-separated list of name=value: {text!r}")
        out[key.strip()] = _scalar(value.strip())
    return out


def _scalar(text: str):
    lowered = text.lower()
    if lowered in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[lowered]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


DEFAULT_OPTIM = "adam"
FILLED_OPTIM_ARGS = ("lr", "betas", "eps")  # the optimizer's own settings, not optim_args


def optim_key(name: str) -> str:
    """An optimizer's recorded name: ``clipped_adam``, ``ClippedAdam``,
    ``pyro.optim.ClippedAdam`` -> ``clippedadam``; ``package.module:Class`` as given."""
    if ":" in name:
        return name
    return name.rsplit(".", 1)[-1].replace("_", "").replace("-", "").lower()


def check_int(option: str, value: object, low: int) -> int:
    """``value`` as a plain int ``>= low`` (numpy integers too), or a one-line error."""
    if isinstance(value, bool) or not isinstance(value, abstract_numbers.Integral) \
            or value < low:
        raise PplVaeError(f"option {option} must be an integer >= {low}, got {value!r}")
    return int(value)


def setting(default, help: str, section: str | None = None, parse=None, choices=None,
            none: str | None = None) -> Any:
    """A dataclass field with its help line, JSON section, text parser, choices and the words
    for a ``None`` default."""
    return field(default=default, metadata={"help": help, "section": section, "parse": parse,
                                            "choices": choices, "none": none})


class Recorded:
    """A record written to ``config.json`` by its ``to_json``; ``record["key"]`` reads that
    JSON's keys, as code written when records were plain dicts does."""

    def to_json(self) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: str):
        return self.to_json()[key]


@dataclass(frozen=True)
class TrainConfig:
    """The recorded training settings; see each field's help (``ppl-vae train --help``)."""

    epochs: int = setting(10, "passes over the training set; on --resume, the new total",
                          "training")
    batch_size: int = setting(64, "examples per step (under torchrun: the global batch)",
                              "training")
    seed: int = setting(0, "seeds the weights, the data subset and split, and the batches",
                        "training")
    precision: str = setting("fp32", "fp32, or bf16: networks in bfloat16, densities in "
                             "float32", "training", choices=PRECISIONS)
    patience: int = setting(0, "early stopping: stop when the test ELBO has not improved for "
                            "this many epochs, keeping RUN/best.pt (0: off)", "training")
    log_every: int = setting(0, "also record the training loss every this many steps in "
                             "RUN/steps.jsonl (0: per epoch only)", "training")
    labelled_batches: str = setting("mixed", "where inputs are partly known: mixed (every batch "
                                    "drawn from all examples) or spaced (labelled-only batches "
                                    "spaced through the epoch, stepped as Pyro's SVI: "
                                    "ppl_vae.training.labelled)", "training",
                                    choices=LABELLED_BATCHES)
    auxiliary: str | None = setting(None, "an auxiliary loss(x, **inputs) stepped on its own "
                                    "after each labelled batch (spaced), as "
                                    "package.module:function; fit(auxiliary=...) also takes a "
                                    "(model, guide) pair", "training", none="none")
    divergence_factor: float = setting(10.0, "stop, keeping the last good checkpoint, when the "
                                       "loss gets this many times its magnitude worse than its "
                                       "best", "training")
    optim: str = setting(DEFAULT_OPTIM, "the optimizer: adam (torch's, fused, on the "
                         "per-example loss) or any torch.optim or pyro.optim one by name (sgd, "
                         "adamw, clipped_adam, adagrad_rmsprop, ...) or package.module:Class, "
                         "stepping as Pyro's SVI does on the batch's summed loss", "optimizer")
    optim_args: dict | None = setting(None, "the optimizer's options besides --lr, --betas "
                                      "and --eps, e.g. lrd=0.999,clip_norm=10 for "
                                      "clipped_adam or eta=1,t=0.1 for adagrad_rmsprop",
                                      "optimizer", parse=keywords, none="none")
    lr: float = setting(1e-3, "learning rate (of any optimizer that takes lr)", "optimizer")
    betas: tuple = setting((0.9, 0.999), "Adam's β1,β2 (decay of the gradient's first and "
                           "second moments)", "optimizer", parse=numbers)
    eps: float = setting(1e-8, "Adam's ε (added to the root of the second moment)",
                         "optimizer")
    clip_norm: float | None = setting(None, "clip the gradients' global norm to this",
                                      "optimizer", none="no clipping")
    lr_schedule: str = setting("constant", "learning rate over the run: constant, cosine "
                               "(annealed to 0), step (× --lr-gamma every --lr-step-epochs) or "
                               "multistep (× --lr-gamma at each of --lr-milestones)",
                               "schedule", choices=LR_SCHEDULES)
    lr_step_epochs: int | None = setting(None, "step schedule: epochs between decays",
                                         "schedule", none="a third of --epochs")
    lr_milestones: tuple | None = setting(None, "multistep schedule: the epochs after which "
                                          "the rate is multiplied by --lr-gamma, e.g. "
                                          "1,4,13,40 (Burda et al.: 3^i epochs)", "schedule",
                                          parse=counts, none="none")
    lr_gamma: float = setting(0.1, "step and multistep schedules: factor per decay",
                              "schedule")
    warmup_steps: int = setting(0, "KL warm-up: steps over which the latent sites' scale "
                                "rises linearly from --warmup-start to 1 (0: off)", "schedule")
    warmup_start: float = setting(0.01, "KL warm-up: the scale at step 0, in (0, 1]",
                                  "schedule")

    def __post_init__(self):
        for name in ("betas", "lr_milestones"):  # JSON gives lists back
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.optim, str):
            object.__setattr__(self, "optim", optim_key(self.optim))
        if self.optim_args == {}:
            object.__setattr__(self, "optim_args", None)
        self.check()

    def check(self) -> None:
        """One-line errors for impossible settings."""
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise PplVaeError(f"{_flag(name)} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise PplVaeError(f"--lr must be positive, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas) or not self.eps > 0:
            raise PplVaeError(f"--betas must be two numbers in [0, 1) and --eps positive, got "
                              f"{','.join(map(str, self.betas))} and {self.eps}")
        for name, allowed in (("lr_schedule", LR_SCHEDULES), ("precision", PRECISIONS),
                              ("labelled_batches", LABELLED_BATCHES)):
            if getattr(self, name) not in allowed:
                raise PplVaeError(f"{_flag(name)} must be one of {', '.join(allowed)}, got "
                                  f"'{getattr(self, name)}'")
        if self.lr_step_epochs is not None and self.lr_step_epochs < 1:
            raise PplVaeError(f"--lr-step-epochs must be at least 1, got {self.lr_step_epochs}")
        if (self.lr_schedule == "multistep") != (self.lr_milestones is not None):
            raise PplVaeError("--lr-milestones goes with --lr-schedule multistep, and that "
                              "schedule needs them: give both or neither")
        if self.lr_milestones is not None and (
                list(self.lr_milestones) != sorted(set(self.lr_milestones))
                or min(self.lr_milestones, default=1) < 1):
            raise PplVaeError(f"--lr-milestones must be increasing epochs ≥ 1, got "
                              f"{','.join(map(str, self.lr_milestones))}")
        if not 0 < self.lr_gamma <= 1:
            raise PplVaeError(f"--lr-gamma must be in (0, 1], got {self.lr_gamma}")
        if self.warmup_steps < 0 or not 0 < self.warmup_start <= 1:
            raise PplVaeError(f"--warmup-steps must be ≥ 0 and --warmup-start in (0, 1] (a zero "
                              f"scale drops the KL entirely), got {self.warmup_steps} and "
                              f"{self.warmup_start}")
        if not isinstance(self.optim, str):
            raise PplVaeError(f"optim must be a name here, got {type(self.optim).__name__}; hand "
                              "optimizer objects to fit(optim=...)")
        own = sorted(set(self.optim_args or {}) & set(FILLED_OPTIM_ARGS))
        if not isinstance(self.optim_args, (dict, type(None))) or own:
            raise PplVaeError(f"--optim-args must be name=value options besides "
                              f"{', '.join(FILLED_OPTIM_ARGS)} (give those as --lr, --betas, "
                              f"--eps), got {self.optim_args!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise PplVaeError(f"--clip-norm must be positive, got {self.clip_norm}")
        if self.patience < 0 or not self.divergence_factor > 0:
            raise PplVaeError(f"--patience must be ≥ 0 and --divergence-factor positive, got "
                              f"{self.patience} and {self.divergence_factor}")

    @classmethod
    def create(cls, **settings) -> TrainConfig:
        """``TrainConfig(**settings)``, an unknown name refused in one line naming the known."""
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise PplVaeError(f"unknown training setting(s) {unknown}; the settings are: "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**settings)

    def to_json(self) -> dict:
        """``{"training": {...}, "optimizer": {...}, "schedule": {...}}`` (config.json's sections)."""
        sections: dict[str, dict] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            sections.setdefault(f.metadata["section"], {})[f.name] = \
                list(value) if isinstance(value, tuple) else value
        return sections

    @classmethod
    def from_json(cls, sections: dict) -> TrainConfig:
        """Read the sections back; a setting an older format did not record takes its default."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for section in sections.values() for k, v in section.items()
                      if k in names})


@dataclass(frozen=True)
class RunOptions:
    """Where and how a run trains; may change on ``--resume``. The evaluation settings
    (:attr:`RECORDED`) are recorded in ``config.json``'s ``evaluation`` section."""

    device: str = setting("auto", "auto, cpu or cuda")
    checkpoint_every: int = setting(0, "also checkpoint every this many steps (0: once per "
                                    "epoch)")
    sync_every: int = setting(50, "steps between host reads of the loss (divergence guard, "
                              "progress bar)")
    eval_every: int = setting(1, "the test ELBO every this many epochs, and after the last "
                              "(0: after the last only); early stopping counts these")
    eval_particles: int | None = setting(None, "particles per test example of that ELBO",
                                         none="1; 16 with a global latent")
    iw_samples: int = setting(100, "importance samples per example for the final report")
    eval_examples: int | None = setting(None, "test examples in the final report",
                                        none="all")
    detect_anomaly: bool = setting(False, "name the operation that first produces NaN (slow)")
    quiet: bool = setting(False, "no progress bar")
    tensorboard: bool = setting(False, "also write TensorBoard events into RUN/tensorboard/ "
                                "(needs the tensorboard extra: pip install ppl-vae[tensorboard])")
    report: bool = setting(True, "with a run folder, evaluate the run and write report.md, "
                           "report.json and figures/")

    RECORDED = ("eval_every", "eval_particles", "iw_samples", "eval_examples")

    def __post_init__(self):
        check_int("eval_every", self.eval_every, 0)
        if self.eval_particles is not None:
            check_int("eval_particles", self.eval_particles, 1)
        if self.checkpoint_every < 0 or self.sync_every < 1 or self.iw_samples < 1:
            raise PplVaeError(f"--checkpoint-every must be ≥ 0, --sync-every and --iw-samples "
                              f"≥ 1; got {self.checkpoint_every}, {self.sync_every} and "
                              f"{self.iw_samples}")


@dataclass(frozen=True)
class EstimatorSpec(Recorded):
    """An estimator as recorded: its name (a registry name, ``pyro.infer.<Class>`` or
    ``callable:<name>``), every option it was built with, and a Pyro ELBO's constructor
    settings. In ``config.json``: ``{"elbo": name, **options, "pyro_settings": ...}``."""

    name: str
    options: dict = field(default_factory=dict)
    pyro_settings: dict | None = None

    def to_json(self) -> dict:
        extra = {} if self.pyro_settings is None else {"pyro_settings": self.pyro_settings}
        return {"elbo": self.name, **self.options, **extra}

    @classmethod
    def from_json(cls, obj: dict, format_version: int = 3) -> EstimatorSpec:
        """Read a recorded estimator; formats 1 and 2 wrote ``alpha`` for every estimator."""
        options = {k: v for k, v in obj.items() if k not in ("elbo", "pyro_settings")}
        if format_version < 3 and not obj["elbo"].startswith("renyi"):
            options.pop("alpha", None)
        return cls(obj["elbo"], options, obj.get("pyro_settings"))


PAIR_SOURCES = ("registry", "factory", "objects", "unimportable")


@dataclass(frozen=True)
class PairSpec(Recorded):
    """How a run folder rebuilds a pair (:func:`ppl_vae.pair.rebuild`), from one of four sources.

    - ``registry``: ``model`` and ``guide`` are registry names, ``options`` every keyword
      of both factories (defaults included): ``build(model, guide, **options)``;
    - ``factory``: ``model`` is a user factory ``"package.module:make_pair"`` called as
      ``make_pair(data, **options)``;
    - ``objects``: ``model`` and ``guide`` are importable paths of programs handed to
      ``fit`` directly;
    - ``unimportable``: a lambda or closure; ``why`` says so.

    ``names`` maps the programs' own site, plate and keyword names
    (:class:`ppl_vae.naming.Names`), when they differ from the contract's.
    In ``config.json`` it is the ``pair`` section, keys as the fields.
    """

    source: str
    model: str
    guide: str | None
    event_shape: tuple[int, ...] | None = None
    options: dict = field(default_factory=dict)
    names: dict | None = None
    why: str = ""

    def __post_init__(self):
        if self.source not in PAIR_SOURCES:
            raise PplVaeError(f"a pair spec's source is one of {PAIR_SOURCES}, got "
                              f"{self.source!r}")

    def to_json(self) -> dict:
        written: dict[str, Any] = {"source": self.source, "model": self.model,
                                   "guide": self.guide}
        if self.event_shape is not None:
            written["event_shape"] = list(self.event_shape)
        written["options"] = self.options
        if self.names is not None:
            written["names"] = self.names
        if self.why:
            written["why"] = self.why
        return written

    @classmethod
    def from_json(cls, obj: dict | None) -> PairSpec | None:
        """Read a recorded ``pair`` section (before format 2 it had no ``source``: registry)."""
        if not obj:
            return None
        shape = obj.get("event_shape")
        return cls(obj.get("source", "registry"), obj["model"], obj.get("guide"),
                   None if shape is None else tuple(shape), dict(obj.get("options", {})),
                   obj.get("names"), obj.get("why", ""))


@dataclass(frozen=True)
class SplitOptions:
    """The options every dataset source takes (``ppl_vae.data.load(name, **options)``).

    Which values of ``storage`` a source accepts is its own (``render`` and ``mmap``
    belong to one source each), so the source checks it; the rest is checked here.
    """

    test_fraction: float = setting(0.1, "share of examples held out for test")
    seed: int = setting(0, "seeds the subset draw, the split, a sampled binarization and "
                        "the labelled mask")
    binarize: str = setting("none", "none, static (threshold at 0.5 once), sampled (one "
                            "bernoulli(x) draw per pixel with --seed, kept: fixed "
                            "binarization) or dynamic (bernoulli(x) per batch)",
                            choices=BINARIZE)
    storage: str = setting("auto", "auto (0/1 packed in bits, 8-bit grey as uint8), float32, "
                           "render (shapes: each batch drawn from its factors) or mmap "
                           "(array: the file memory-mapped)")

    def __post_init__(self):
        fraction = self.test_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, abstract_numbers.Real) \
                or not 0.0 < float(fraction) < 1.0:
            raise PplVaeError(f"option test_fraction must be a number strictly between 0 and "
                              f"1, got {fraction!r}")
        object.__setattr__(self, "test_fraction", float(fraction))  # plain numbers: JSON
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0))
        if self.binarize not in BINARIZE:
            raise PplVaeError(f"option binarize must be one of {', '.join(BINARIZE)}, got "
                              f"{self.binarize!r}")

    @classmethod
    def create(cls, source: str, **options) -> SplitOptions:
        """``SplitOptions(**options)``, an unknown name refused naming ``source``'s options."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise PplVaeError(f"dataset {source!r} has no option {', '.join(unknown)}; the "
                              f"options every dataset takes are: {', '.join(known)}")
        return cls(**options)

    def to_json(self) -> dict:
        """The spec entries: ``storage`` only when not ``auto``, so older specs still match."""
        written = {"test_fraction": self.test_fraction, "seed": self.seed,
                   "binarize": self.binarize}
        return written if self.storage == "auto" else {**written, "storage": self.storage}


@dataclass(frozen=True)
class DataSpec(Recorded):
    """How a run folder rebuilds its data: :func:`ppl_vae.data.load_spec` (``load(**spec)``).

    ``options`` are the source's own keywords (``n``, ``size``, ``path``, ...),
    ``split`` the ones every source takes, ``labelled`` and ``flatten`` those of
    :func:`ppl_vae.data.load`. In ``config.json`` it is the ``data`` section: one
    flat dict of ``load``'s keywords, as :attr:`ppl_vae.data.Dataset.spec` holds it.
    """

    name: str
    options: dict = field(default_factory=dict)
    split: SplitOptions = field(default_factory=SplitOptions)
    labelled: int | float | None = setting(None, "keep only this many train labels known: a "
                                           "fraction (0.1) or a count (500)",
                                           parse=fraction_or_count, none="all known")
    flatten: bool = setting(False, "examples as flat vectors (n, D), for networks written for "
                            "flat inputs (Pyro's examples); figures still draw images")

    def to_json(self) -> dict:
        written = {"name": self.name, **self.options, **self.split.to_json()}
        if self.labelled is not None:
            written["labelled"] = self.labelled
        return {**written, "flatten": True} if self.flatten else written

    @overload
    @classmethod
    def from_json(cls, obj: dict) -> DataSpec: ...

    @overload
    @classmethod
    def from_json(cls, obj: dict | None) -> DataSpec | None: ...

    @classmethod
    def from_json(cls, obj: dict | None) -> DataSpec | None:
        """Read a ``data`` section (or a dataset's spec); None stays None."""
        if obj is None:
            return None
        shared = {f.name for f in dataclasses.fields(SplitOptions)}
        rest = {k: v for k, v in obj.items() if k not in ("name", "labelled", "flatten")}
        return cls(obj["name"], {k: v for k, v in rest.items() if k not in shared},
                   SplitOptions(**{k: v for k, v in rest.items() if k in shared}),
                   obj.get("labelled"), bool(obj.get("flatten", False)))

    def keys(self):
        """The recorded JSON's keys, so ``load(**spec)`` still reads as it did for a dict."""
        return self.to_json().keys()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
