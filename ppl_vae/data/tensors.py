"""Data already in memory: torch tensors, numpy arrays or a ``TensorDataset``.

Unlike the named sources, such a dataset has ``spec = None``: it cannot be
rebuilt from a run folder, so evaluate, diagnose and resume its runs from
Python with the same data handed in again.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ppl_vae.config import SplitOptions
from ppl_vae.data.common import apply_labelled, check_values, is_binary, subset_split
from ppl_vae.data.dataset import Dataset
from ppl_vae.errors import PplVaeError

Array = torch.Tensor | np.ndarray


def from_tensors(
    x: Array | TensorDataset,
    test: Array | TensorDataset | None = None,
    *,
    labels: Array | None = None,
    test_labels: Array | None = None,
    fields: dict[str, Array] | None = None,
    test_fields: dict[str, Array] | None = None,
    test_fraction: float = SplitOptions.test_fraction,
    seed: int = SplitOptions.seed,
    name: str = "tensors",
    labelled: int | float | None = None,
) -> Dataset:
    """Wrap examples held in memory into a :class:`Dataset`.

    Args:
        x: Train examples ``(n, *event_shape)`` (all examples when ``test`` is
            None), as a tensor, a numpy array, or a ``TensorDataset`` whose
            first tensor is ``x`` and second, if present, the labels.
            Converted to float32 on the CPU.
        test: Test examples ``(n_test, *event_shape)``, given the same ways.
            None: a random ``test_fraction`` of ``x`` becomes the test set,
            drawn with ``numpy.random.default_rng(seed)``; labels and fields
            are split the same way.
        labels: Integer class labels ``(n,)``, converted to int64.
        test_labels: Labels of ``test``; needed when ``test`` and ``labels``
            are both given.
        fields: Extra per-example inputs ``{name: (n, ...)}``, passed to the
            model as keyword arguments (see :meth:`Dataset.inputs`). Floating
            arrays become float32, integer ones int64.
        test_fields: The same names for ``test``; needed when ``test`` and
            ``fields`` are both given.
        test_fraction: Share held out for test when ``test`` is None, in (0, 1).
        seed: Seed of the split and of the ``labelled`` mask.
        name: What :meth:`Dataset.describe` calls the data.
        labelled: Keep only this many train labels known (fraction in (0, 1]
            or count >= 1), stratified by class, as in :func:`ppl_vae.data.load`.

    Returns:
        A :class:`Dataset` with ``spec = None``; ``binary`` is True when every
        value is exactly 0 or 1.

    Raises:
        PplVaeError: Malformed, empty or non-finite examples, labels or fields
            whose length does not match, or test examples of another shape.
    """
    split = SplitOptions(test_fraction, seed)
    if not isinstance(name, str) or not name:
        raise PplVaeError(f"name must be a non-empty string, got {name!r}")
    given_x, given_labels = _unpack(x, labels, "x", "labels")
    train_x = _examples(given_x, "x")
    train_y = None if given_labels is None else _labels(given_labels, len(train_x), "labels")
    train_f = _fields(fields, len(train_x), "fields")
    test_y: torch.Tensor | None = None
    if test is None:
        if test_labels is not None or test_fields is not None:
            raise PplVaeError("test_labels/test_fields need test=; without test= the split "
                              "of x gives them")
        train_index, test_index = subset_split(
            len(train_x), len(train_x), split.test_fraction, np.random.default_rng(split.seed))
        train_x, test_x = train_x[train_index], train_x[test_index]
        if train_y is not None:
            train_y, test_y = train_y[train_index], train_y[test_index]
        train_f, test_f = ({k: v[train_index] for k, v in train_f.items()},
                           {k: v[test_index] for k, v in train_f.items()})
    else:
        given_test, given_test_labels = _unpack(test, test_labels, "test", "test_labels")
        test_x = _examples(given_test, "test")
        if test_x.shape[1:] != train_x.shape[1:]:
            raise PplVaeError(f"test examples have shape {tuple(test_x.shape[1:])} but train ones "
                              f"{tuple(train_x.shape[1:])}; give both the same event shape")
        if (train_y is None) != (given_test_labels is None):
            raise PplVaeError("give labels for both train and test (labels= and test_labels=) "
                              "or for neither")
        if given_test_labels is not None:
            test_y = _labels(given_test_labels, len(test_x), "test_labels")
        test_f = _fields(test_fields, len(test_x), "test_fields")
    data = Dataset(name=name, spec=None, train=train_x, test=test_x, train_labels=train_y,
                   test_labels=test_y, binary=is_binary(train_x.numpy(), test_x.numpy()),
                   fields=train_f, test_fields=test_f)
    return apply_labelled(data, labelled, split.seed)


def _unpack(data: object, labels: object, what: str, label_name: str) -> tuple[object, object]:
    """Split a ``TensorDataset`` into its examples and (optional) labels."""
    if not isinstance(data, TensorDataset):
        return data, labels
    tensors = data.tensors
    if len(tensors) > 2:
        raise PplVaeError(f"{what} is a TensorDataset of {len(tensors)} tensors; give (x,) or "
                          "(x, labels) and pass the others as fields=")
    if len(tensors) == 2 and labels is not None:
        raise PplVaeError(f"{what} is a TensorDataset with labels and {label_name}= is given "
                          "too; give the labels once")
    return tensors[0], tensors[1] if len(tensors) == 2 else labels


def _numpy(value: object, what: str) -> np.ndarray:
    """A CPU numpy view of a tensor or array, or an error for anything else."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype in (torch.bfloat16, torch.float16) else value).numpy()
    if isinstance(value, np.ndarray):
        return value
    raise PplVaeError(f"{what} must be a torch tensor or numpy array, got {type(value).__name__}")


def _examples(value: object, what: str) -> torch.Tensor:
    """Examples as a float32 CPU tensor ``(n, *event_shape)``, checked."""
    a = _numpy(value, what)
    if a.dtype.kind not in "biuf":
        raise PplVaeError(f"{what} must be numeric, got dtype {a.dtype}")
    if a.ndim < 2:
        raise PplVaeError(f"{what} has shape {tuple(a.shape)}; give examples as (n, *event_shape)")
    a = np.ascontiguousarray(a, dtype=np.float32)
    check_values(a, what)
    return torch.from_numpy(a)


def _labels(value: object, n: int, what: str) -> torch.Tensor:
    """Integer class labels ``(n,)`` as int64, checked."""
    a = _numpy(value, what)
    if a.dtype.kind not in "iu":
        raise PplVaeError(f"{what} must be integer class indices, got dtype {a.dtype}; "
                          "convert with .long() / .astype(int)")
    if a.shape != (n,):
        raise PplVaeError(f"{what} has shape {tuple(a.shape)} but there are {n} examples; "
                          f"give one label per example, shape ({n},)")
    if a.size and a.min() < 0:
        raise PplVaeError(f"{what} must be non-negative class indices, got minimum {a.min()}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def _fields(value: object, n: int, what: str) -> dict[str, torch.Tensor]:
    """Named per-example inputs with ``n`` rows each, as CPU tensors."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PplVaeError(f"{what} must be a dict {{name: array}}, got {type(value).__name__}")
    out = {}
    for key, item in value.items():
        a = _numpy(item, f"{what}[{key!r}]")
        if a.dtype.kind not in "biuf":
            raise PplVaeError(f"{what}[{key!r}] must be numeric, got dtype {a.dtype}")
        if a.ndim < 1 or len(a) != n:
            raise PplVaeError(f"{what}[{key!r}] has shape {tuple(a.shape)} but there are {n} "
                              "examples; give one row per example")
        dtype = {"b": np.bool_, "f": np.float32}.get(a.dtype.kind, np.int64)
        out[str(key)] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    return out
