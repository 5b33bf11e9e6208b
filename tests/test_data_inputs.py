"""Per-example inputs: label masks (`labelled=`), `Dataset.inputs`, `from_tensors`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from ppl_vae.data import Dataset, from_tensors, load
from ppl_vae.errors import PplVaeError


def _known_per_class(ds: Dataset) -> torch.Tensor:
    return torch.bincount(ds.train_labels[ds.known["y"]], minlength=10)


def test_count_is_stratified_and_deterministic():
    ds = load("digits", n=600, labelled=100)
    mask = ds.known["y"]
    assert mask.dtype == torch.bool and mask.shape == (len(ds.train),) and int(mask.sum()) == 100
    assert _known_per_class(ds).tolist() == [10] * 10
    assert torch.equal(load("digits", n=600, labelled=100).known["y"], mask)
    assert not torch.equal(load("digits", n=600, labelled=100, seed=1).known["y"], mask)
    # the true labels stay; the mask only says which the trainer may use
    assert torch.equal(ds.train_labels, load("digits", n=600).train_labels)
    assert "100 of 540 train labels known" in ds.describe()


@pytest.mark.parametrize("labelled, expected", [(0.1, 54), (23, 23), (1, 1)])
def test_fraction_and_count_forms(labelled, expected):
    ds = load("digits", n=600, labelled=labelled)
    per_class = _known_per_class(ds)
    assert int(ds.known["y"].sum()) == expected
    assert int(per_class.max() - per_class.min()) <= 1


def test_fraction_one_keeps_every_label():
    ds = load("digits", n=600, labelled=1.0)
    assert bool(ds.known["y"].all()) and len(ds.known["y"]) == 540


def test_small_classes_give_their_share_to_the_others():
    labels = torch.tensor([0] * 2 + [1] * 30 + [2] * 30)
    data = from_tensors(torch.rand(62, 2), torch.rand(3, 2), labels=labels,
                        test_labels=torch.tensor([0, 1, 2]), labelled=20)
    assert torch.bincount(labels[data.known["y"]]).tolist() == [2, 9, 9]


def test_spec_round_trip_rebuilds_the_same_mask():
    ds = load("digits", n=300, seed=3, labelled=0.2)
    spec = json.loads(json.dumps(ds.spec))
    assert spec["labelled"] == 0.2
    again = load(**spec)
    assert torch.equal(again.known["y"], ds.known["y"]) and torch.equal(again.train, ds.train)
    assert "labelled" not in load("digits", n=300).spec


def test_inputs_of_each_split():
    ds = load("digits", n=200, labelled=20)
    train, test = ds.inputs("train"), ds.inputs("test")
    assert list(train) == ["y"] and ds.input_names() == ["y"]
    assert torch.equal(train["y"], ds.train_labels) and torch.equal(test["y"], ds.test_labels)
    assert ds.inputs().keys() == train.keys()
    with pytest.raises(PplVaeError, match="split must be 'train' or 'test', got 'valid'"):
        ds.inputs("valid")
    assert load("shapes", n=30, size=32).inputs() == {}


@pytest.mark.parametrize("labelled, message", [
    (0.0, "labelled=0.0 is a fraction outside \\(0, 1\\]"),
    (1.5, "labelled=1.5 is a fraction outside \\(0, 1\\]"),
    (0, "labelled must be an integer >= 1, got 0"),
    (True, "labelled must be a fraction in \\(0, 1\\] or a count >= 1, got True"),
    ("half", "labelled must be a fraction"),
    (181, "labelled=181 is more than the 180 train examples; pass at most 180"),
])
def test_bad_labelled_values(labelled, message):
    with pytest.raises(PplVaeError, match=message) as error:
        load("digits", n=200, labelled=labelled)
    assert "\n" not in str(error.value)


def test_labelled_needs_labels():
    with pytest.raises(PplVaeError, match="dataset 'shapes' has no labels.*digits"):
        load("shapes", n=30, size=32, labelled=5)


def test_from_tensors_splits_and_converts():
    x = (torch.rand(40, 1, 4, 4) < 0.5).double()
    labels = torch.arange(40) % 4
    t = torch.linspace(0, 1, 40)
    ds = from_tensors(x, labels=labels, fields={"t": t}, test_fraction=0.25, seed=2)
    assert (len(ds.train), len(ds.test)) == (30, 10) and ds.event_shape == (1, 4, 4)
    assert ds.train.dtype == torch.float32 and ds.train_labels.dtype == torch.int64
    assert ds.binary and ds.spec is None and ds.known == {}
    # labels and fields follow their examples through the split
    rows = {tuple(r.flatten().tolist()): (int(y), float(v)) for r, y, v in zip(x, labels, t)}
    for split in ("train", "test"):
        examples = ds.train if split == "train" else ds.test
        inputs = ds.inputs(split)
        assert list(inputs) == ["y", "t"] and inputs["t"].dtype == torch.float32
        for r, y, v in zip(examples, inputs["y"], inputs["t"]):
            assert rows[tuple(r.flatten().tolist())] == (int(y), pytest.approx(float(v)))
    assert torch.equal(from_tensors(x, labels=labels, seed=2).train, from_tensors(
        x, labels=labels, seed=2).train)
    assert "field t ()" in ds.describe()


def test_from_tensors_numpy_and_given_test_set():
    rng = np.random.default_rng(0)
    ds = from_tensors(rng.random((20, 5)), rng.random((6, 5)), labels=np.arange(20) % 2,
                      test_labels=np.zeros(6, dtype=np.int32), name="mine")
    assert (len(ds.train), len(ds.test)) == (20, 6) and ds.event_shape == (5,)
    assert ds.test_labels.dtype == torch.int64 and not ds.binary
    assert ds.describe().startswith("mine: 20 train / 6 test")


def test_from_tensors_takes_a_tensor_dataset():
    x, y = torch.rand(30, 3), torch.arange(30) % 3
    ds = from_tensors(TensorDataset(x, y), TensorDataset(x[:4], y[:4]))
    assert torch.equal(ds.train, x) and torch.equal(ds.train_labels, y)
    assert torch.equal(ds.test_labels, y[:4])
    unlabelled = from_tensors(TensorDataset(x), test_fraction=0.2)
    assert unlabelled.train_labels is None
    assert (len(unlabelled.train), len(unlabelled.test)) == (24, 6)
    with pytest.raises(PplVaeError, match="TensorDataset of 3 tensors; .*fields="):
        from_tensors(TensorDataset(x, y, y))
    with pytest.raises(PplVaeError, match="give the labels once"):
        from_tensors(TensorDataset(x, y), labels=y)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": torch.rand(10)}, "give examples as \\(n, \\*event_shape\\)"),
    ({"x": torch.rand(0, 3)}, "is empty"),
    ({"x": torch.tensor([[1.0, float("nan")]] * 5)}, "x has 5 NaN or infinite values"),
    ({"x": torch.rand(10, 2), "labels": torch.arange(9)}, "labels has shape \\(9,\\) but"),
    ({"x": torch.rand(10, 2), "labels": torch.rand(10)}, "integer class indices"),
    ({"x": torch.rand(10, 2), "fields": {"t": torch.rand(8)}}, "fields\\['t'\\] has shape"),
    ({"x": torch.rand(10, 2), "test": torch.rand(3, 4)}, "test examples have shape \\(4,\\)"),
    ({"x": torch.rand(10, 2), "test": torch.rand(3, 2), "labels": torch.arange(10)},
     "labels for both train and test"),
    ({"x": torch.rand(10, 2), "test": torch.rand(3, 2), "fields": {"t": torch.rand(10)}},
     "train fields \\['t'\\] and test fields \\[\\] differ"),
    ({"x": torch.rand(10, 2), "labels": torch.arange(10), "fields": {"y": torch.rand(10)}},
     "field name 'y' is not usable"),
    ({"x": torch.rand(10, 2), "test_labels": torch.arange(3)}, "need test="),
    ({"x": [[0.0, 1.0]] * 4}, "must be a torch tensor or numpy array, got list"),
])
def test_from_tensors_errors(kwargs, message):
    with pytest.raises(PplVaeError, match=message) as error:
        from_tensors(**kwargs)
    assert "\n" not in str(error.value)


def test_known_masks_are_checked():
    ds = load("digits", n=100)
    with pytest.raises(PplVaeError, match="known\\['y'\\] must be a bool tensor of shape"):
        Dataset(name="d", spec=None, train=ds.train, test=ds.test, train_labels=ds.train_labels,
                test_labels=ds.test_labels, known={"y": torch.ones(90)})
    with pytest.raises(PplVaeError, match="known\\['z'\\] masks no input; the inputs"):
        Dataset(name="d", spec=None, train=ds.train, test=ds.test, train_labels=ds.train_labels,
                test_labels=ds.test_labels, known={"z": torch.ones(90, dtype=torch.bool)})
