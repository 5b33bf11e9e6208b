"""The one dataset type every source returns."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field

import numpy as np
import torch

from ppl_vae.data.storage import FlatStorage, FloatStorage, Storage, as_storage
from ppl_vae.errors import PplVaeError


@dataclass(eq=False)
class Dataset:
    """A train/test pair of example storages with optional ground-truth factors and labels.

    Attributes:
        name: The source name (``"shapes"``, ``"mnist"``, ...).
        spec: The keyword arguments that rebuild exactly this dataset:
            ``load(**ds.spec)`` gives the same split, subset, values and label
            mask. Only JSON values; it includes ``"name"``. None for data
            handed in as tensors (:func:`~ppl_vae.data.from_tensors`), which
            cannot be rebuilt from a run folder.
        train_store: The train examples in their smallest exact form
            (:mod:`ppl_vae.data.storage`: packed bits, uint8, float32, rendered
            per batch or memory-mapped); ``train_store[index]`` gives float32
            rows. The constructor takes ``train=`` a tensor or a storage.
        test_store: The test examples, likewise (``test=``).
        train_factors: LongTensor ``(n_train, F)`` of factor class indices, or None.
        test_factors: LongTensor ``(n_test, F)``, or None.
        factor_names: One name per factor column, or None.
        factor_sizes: Number of classes of each factor, or None.
        train_labels: LongTensor ``(n_train,)`` of class labels, or None.
        test_labels: LongTensor ``(n_test,)``, or None.
        dynamic_binarize: When True the trainer draws ``torch.bernoulli(batch)``
            for every batch; the stored examples hold grey levels.
        binary: True when every stored value is exactly 0 or 1, so a
            Bernoulli likelihood is valid on the stored examples as they are.
        renderer: For sources with a generator (shapes, dsprites): maps int64
            class codes ``(m, F)`` to float32 images ``(m, *event_shape)``;
            None otherwise. Not picklable: rebuild with ``load(**spec)``.
        fields: Extra per-example train inputs besides ``x`` and the labels,
            ``{name: tensor (n_train, ...)}``; the engine passes them to
            ``model(x, **inputs)`` as keyword arguments.
        test_fields: The same names for the test set, ``{name: (n_test, ...)}``.
        image_shape: The shape of one example as an image when the examples are
            flattened (:meth:`flattened`): figures draw them in it. None otherwise.
        known: ``{input name: bool tensor (n_train,)}``: which TRAIN examples
            have that input known. A name absent from ``known`` is known for
            every example; test inputs are always known. For semi-supervised
            data ``known["y"]`` masks the labels, while ``train_labels`` still
            holds every true label (so diagnostics can colour by ground
            truth): **the engine must consult ``known`` and pass ``y=None``
            for the unknown examples**, never ``train_labels`` directly.

    ``ds.train`` and ``ds.test`` are the splits as whole float32 tensors
    ``(n, *event_shape)`` (images channel-first, values in [0, 1] for image
    sources): the tensor itself for float32 storage, else a fresh decode on
    every access (12 GB for the full 737,280-image grid: index the store
    instead, ``ds.train_store[i:j]``). Assigning a tensor replaces the split.

    Per-example inputs: :meth:`inputs` gives ``{"y": labels, **fields}`` of a
    split, the keyword arguments of Pyro's semi-supervised convention
    ``model(x, y=None)``.
    """

    name: str
    spec: dict | None
    train_store: Storage = field(init=False, repr=False)
    test_store: Storage = field(init=False, repr=False)
    train: InitVar[torch.Tensor | Storage]
    test: InitVar[torch.Tensor | Storage]
    train_factors: torch.Tensor | None = None
    test_factors: torch.Tensor | None = None
    factor_names: list[str] | None = None
    factor_sizes: list[int] | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    dynamic_binarize: bool = False
    binary: bool = False
    renderer: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    fields: dict[str, torch.Tensor] = field(default_factory=dict)
    test_fields: dict[str, torch.Tensor] = field(default_factory=dict)
    known: dict[str, torch.Tensor] = field(default_factory=dict)
    image_shape: tuple | None = None

    def __post_init__(self, train: torch.Tensor | Storage, test: torch.Tensor | Storage) -> None:
        """Wrap the splits and check the extra inputs and masks against their sizes."""
        self.train_store, self.test_store = as_storage(train), as_storage(test)
        _check_inputs(self)

    def training_rows(self) -> Dataset:
        """This dataset with its training rows as the test split as well (examples, factors,
        labels, inputs): a run with parameters of its own per training example (the
        ``index`` input) is evaluated and diagnosed on those rows, the only ones it has."""
        view = copy.copy(self)
        view.test_store, view.test_factors = self.train_store, self.train_factors
        view.test_labels, view.test_fields = self.train_labels, dict(self.fields)
        return view

    @property
    def event_shape(self) -> tuple:
        """Shape of one example, e.g. ``(1, 64, 64)``."""
        return self.train_store.event_shape

    def images_for_factors(self, factors: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images for given factor class indices, from the source's generator.

        Args:
            factors: Integer array ``(m, F)``; column j holds a class index in
                ``[0, factor_sizes[j])``.

        Returns:
            float32 tensor ``(m, *event_shape)``, processed like ``train``.

        Raises:
            PplVaeError: The dataset has no generator (only ``shapes`` and
                ``dsprites`` have one), or the factors are malformed.
        """
        if self.renderer is None:
            raise PplVaeError(
                f"dataset '{self.name}' cannot draw images for given factors; "
                "use 'shapes' or 'dsprites' for the disentanglement metrics"
            )
        codes = self._check_factors(factors)
        images = self.renderer(codes)
        return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))

    def sample_factors(
        self,
        m: int,
        generator: np.random.Generator,
        fixed: dict[int, int] | None = None,
    ) -> torch.Tensor:
        """Draw ``m`` factor vectors, each factor uniform over its classes.

        Args:
            m: Number of draws.
            generator: Source of randomness (``numpy.random.default_rng(seed)``).
            fixed: Optional ``{factor index: class index}`` held constant in
                every draw (the "factor k fixed" batches of the BetaVAE and
                FactorVAE scores); the other factors still vary.

        Returns:
            LongTensor ``(m, F)``.
        """
        sizes = self._require_factors()
        codes = generator.integers(0, np.asarray(sizes), size=(int(m), len(sizes)))
        for k, value in (fixed or {}).items():
            if not 0 <= int(k) < len(sizes) or not 0 <= int(value) < sizes[int(k)]:
                raise PplVaeError(
                    f"cannot fix factor {k} to {value}: factor sizes are {sizes}"
                )
            codes[:, int(k)] = int(value)
        return torch.from_numpy(codes.astype(np.int64))

    def inputs(self, split: str = "train") -> dict[str, torch.Tensor]:
        """The per-example keyword inputs of a split: ``{"y": labels, **fields}``.

        ``"y"`` is present when the split has labels. The train values include
        the unknown ones; which are known is in :attr:`known`.

        Args:
            split: ``"train"`` or ``"test"``.

        Returns:
            ``{name: tensor}``, each with one row per example of the split.
        """
        if split == "train":
            labels, fields = self.train_labels, self.fields
        elif split == "test":
            labels, fields = self.test_labels, self.test_fields
        else:
            raise PplVaeError(f"split must be 'train' or 'test', got {split!r}")
        named = {} if labels is None else {"y": labels}
        return {**named, **fields}

    def flattened(self) -> Dataset:
        """The same examples as flat vectors ``(n, D)`` (networks written for flat inputs, as
        in Pyro's examples); :attr:`image_shape` keeps the image shape for figures."""
        if self.image_shape is not None or len(self.event_shape) == 1:
            return self
        shape, render = self.event_shape, self.renderer
        flat = dataclasses.replace(self, train=FlatStorage(self.train_store),
                                   test=FlatStorage(self.test_store), image_shape=shape,
                                   spec=None if self.spec is None else {**self.spec,
                                                                        "flatten": True})
        if render is not None:
            flat.renderer = lambda codes: render(codes).reshape(len(codes), -1)
        return flat

    def examples(self, split: str = "test", n: int | None = None) -> torch.Tensor:
        """The first ``n`` examples of a split (all when None) as float32 rows, decoding
        only those rows from the storage (``ds.test`` decodes the whole split)."""
        if split not in ("train", "test"):
            raise PplVaeError(f"split must be 'train' or 'test', got {split!r}")
        return getattr(self, split + "_store")[slice(None, n)]

    def input_names(self) -> list[str]:
        """The names :meth:`inputs` returns, e.g. ``["y"]``."""
        return list(self.inputs("train"))

    def describe(self) -> str:
        """One line for logs: sizes, shape, value type, factors, labels."""
        kind = "binary" if self.binary else "grey levels"
        if self.dynamic_binarize:
            kind += ", dynamic binarization"
        text = (
            f"{self.name}: {len(self.train_store)} train / {len(self.test_store)} test, "
            f"event {self.event_shape}, {kind}, stored as {self.train_store.describe()}"
        )
        if self.factor_sizes is not None:
            names = self.factor_names or [f"factor{j}" for j in range(len(self.factor_sizes))]
            parts = [f"{a}({b})" for a, b in zip(names, self.factor_sizes)]
            text += ", factors " + " ".join(parts)
        if self.train_labels is not None:
            labels = [t for t in (self.train_labels, self.test_labels) if t is not None]
            classes = int(torch.cat(labels).unique().numel())
            mask = self.known.get("y")
            count = "" if mask is None else (
                f", {int(mask.sum())} of {len(mask)} train labels known")
            text += f", labels ({classes} classes{count})"
        for name, value in self.fields.items():
            text += f", field {name} {tuple(value.shape[1:])}"
            if name in self.known:
                text += f" ({int(self.known[name].sum())} of {len(value)} train known)"
        return text

    def _require_factors(self) -> list[int]:
        """The factor sizes, or an error when the dataset has no factors."""
        if self.factor_sizes is None:
            raise PplVaeError(
                f"dataset '{self.name}' has no ground-truth factors; "
                "use 'shapes', 'dsprites', or an 'array' with factors="
            )
        return list(self.factor_sizes)

    def _check_factors(self, factors: torch.Tensor | np.ndarray) -> np.ndarray:
        """Validate an ``(m, F)`` array of class indices and return it as int64."""
        sizes = self._require_factors()
        codes = factors.cpu().numpy() if isinstance(factors, torch.Tensor) else np.asarray(factors)
        if codes.ndim != 2 or codes.shape[1] != len(sizes):
            raise PplVaeError(
                f"factors must have shape (m, {len(sizes)}), got {tuple(codes.shape)}"
            )
        if codes.dtype.kind not in "iu":
            raise PplVaeError(f"factors must be integer class indices, got dtype {codes.dtype}")
        codes = codes.astype(np.int64)
        if len(codes) and ((codes < 0).any() or (codes >= np.asarray(sizes)).any()):
            raise PplVaeError(f"factor indices out of range: sizes are {sizes}")
        return codes


def split_examples(data, split: str = "test", n: int | None = None) -> torch.Tensor:
    """:meth:`Dataset.examples` of a Dataset, or the first ``n`` rows of another object's
    ``train``/``test`` tensor (``fit`` takes any object with those and ``event_shape``)."""
    if isinstance(data, Dataset):
        return data.examples(split, n)
    return getattr(data, split)[slice(None, n)]


def split_size(data, split: str = "test") -> int:
    """How many examples a split holds, without decoding it."""
    store = getattr(data, split + "_store", None)
    return len(store if store is not None else getattr(data, split))


def _split(name: str) -> property:
    """``ds.train`` / ``ds.test``: the split as one float32 tensor; assign a tensor to replace it."""
    attribute = name + "_store"

    def get(ds: Dataset) -> torch.Tensor:
        store = getattr(ds, attribute)
        return store.tensor if isinstance(store, FloatStorage) else store[:]

    def set_(ds: Dataset, value: torch.Tensor | Storage) -> None:
        setattr(ds, attribute, as_storage(value))

    return property(get, set_, doc=f"The {name} examples as a float32 tensor (see the class).")


# Set after the class is made, so the dataclass reads ``train``/``test`` as its InitVars.
Dataset.train = _split("train")  # type: ignore[attr-defined]  # an InitVar's name: set here
Dataset.test = _split("test")  # type: ignore[attr-defined]  # an InitVar's name: set here


def _check_inputs(ds: Dataset) -> None:
    """Raise unless fields, test fields and masks match the splits they describe."""
    if set(ds.fields) != set(ds.test_fields):
        raise PplVaeError(
            f"train fields {sorted(ds.fields)} and test fields {sorted(ds.test_fields)} differ; "
            "give every field for both splits"
        )
    for name in ds.fields:
        if not name.isidentifier() or name == "x" or (name == "y" and ds.train_labels is not None):
            raise PplVaeError(
                f"field name {name!r} is not usable as model(x, {name}=...); "
                "use a Python identifier other than x (and y when labels are given)"
            )
    for part, data, fields in (("train", ds.train_store, ds.fields),
                               ("test", ds.test_store, ds.test_fields)):
        for name, value in fields.items():
            if not isinstance(value, torch.Tensor) or value.dim() < 1 or len(value) != len(data):
                shape = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
                raise PplVaeError(
                    f"{part} field {name!r} must be a tensor with {len(data)} rows "
                    f"(one per {part} example), got {shape}"
                )
    names = ([] if ds.train_labels is None else ["y"]) + list(ds.fields)
    for name, mask in ds.known.items():
        if name not in names:
            raise PplVaeError(
                f"known[{name!r}] masks no input; the inputs are {names or 'none'}"
            )
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool \
                or tuple(mask.shape) != (len(ds.train_store),):
            raise PplVaeError(
                f"known[{name!r}] must be a bool tensor of shape ({len(ds.train_store)},), one per "
                "train example"
            )


ROW_INDEX = "index"


def split_inputs(data, split: str, names: list[str], rows: int) -> dict[str, torch.Tensor]:
    """The inputs ``names`` of a split of ``rows`` examples: the dataset's fields, and the
    built-in ``"index"`` — each example's row in the split, ``0 .. rows-1`` — unless the data
    has a field of that name. ``index`` is Pyro's idiom for parameters of one's own
    (``pyro.plate("data", N, subsample=index)`` with ``param[index]``)."""
    given = data.inputs(split) if names else {}
    return {k: given[k] if k in given else torch.arange(rows) for k in names}
