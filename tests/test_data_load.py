"""`load` itself: names, options, binarization modes, specs, the `digits` source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppl_vae.data import DATASETS, Dataset, load
from ppl_vae.errors import PplVaeError


def test_known_names_and_unknown_ones():
    assert set(DATASETS) == {"shapes", "dsprites", "mnist", "mnist5k", "digits", "array"}
    assert all(isinstance(text, str) and "\n" not in text for text in DATASETS.values())
    with pytest.raises(PplVaeError, match="unknown dataset 'cifar'; known datasets: shapes, "):
        load("cifar")
    with pytest.raises(PplVaeError, match="has no option colour; its options are: n, "):
        load("shapes", colour=1)


def test_default_is_shapes():
    ds = load(n=30, size=32)
    assert isinstance(ds, Dataset) and ds.name == "shapes" and ds.spec["name"] == "shapes"


def test_digits_scaled_and_labelled():
    ds = load("digits")
    assert ds.event_shape == (1, 8, 8) and len(ds.train) + len(ds.test) == 1797
    assert float(ds.train.max()) == 1.0 and float(ds.train.min()) == 0.0
    assert sorted(torch.cat([ds.train_labels, ds.test_labels]).unique().tolist()) == list(range(10))
    assert "digits: 1617 train / 180 test" in ds.describe()
    with pytest.raises(PplVaeError, match="no ground-truth factors"):
        ds.sample_factors(3, np.random.default_rng(0))
    with pytest.raises(PplVaeError, match="larger than the 1797"):
        load("digits", n=1798)


def test_binarization_modes():
    grey = load("digits", n=200)
    static = load("digits", n=200, binarize="static")
    dynamic = load("digits", n=200, binarize="dynamic")
    assert not grey.binary and not grey.dynamic_binarize
    assert static.binary and torch.equal(static.train, (grey.train >= 0.5).float())
    assert dynamic.dynamic_binarize and torch.equal(dynamic.train, grey.train)
    assert "dynamic binarization" in dynamic.describe()


@pytest.mark.parametrize("name, options", [
    ("shapes", {"n": 50, "size": 32, "seed": 4}),
    ("digits", {"n": 100, "seed": 2, "binarize": "static"}),
    ("mnist5k", {"n": 100, "seed": 5, "test_fraction": 0.3}),
])
def test_spec_is_json_and_rebuilds_the_same_split(name, options):
    ds = load(name, **options)
    spec = json.loads(json.dumps(ds.spec))
    assert spec["name"] == name and all(spec[k] == v for k, v in options.items())
    again = load(**spec)
    assert torch.equal(again.train, ds.train) and torch.equal(again.test, ds.test)
    other = load(**{**spec, "seed": spec["seed"] + 1})
    assert not torch.equal(other.train, ds.train)


def test_numpy_numbers_in_options_give_a_json_spec():
    ds = load("shapes", n=np.int64(40), seed=np.int32(3), test_fraction=np.float64(0.25), size=32)
    assert json.loads(json.dumps(ds.spec)) == ds.spec and (len(ds.train), len(ds.test)) == (30, 10)
    with pytest.raises(PplVaeError, match="size must be 64 or 32"):
        load("shapes", n=40, size=64.0)
    with pytest.raises(PplVaeError, match="unknown dataset"):
        load(None)


def test_examples_decode_only_the_rows_asked_for():
    from ppl_vae.data.storage import Storage

    class Counting(Storage):
        def __init__(self, inner):
            super().__init__(len(inner), inner.event_shape)
            self.inner, self.rows = inner, []

        def __getitem__(self, index):
            rows = self.inner[index]
            self.rows.append(len(rows))
            return rows

    data = load("digits", n=300)
    whole = data.test
    data.test_store = Counting(data.test_store)
    first = data.examples("test", 3)
    assert data.test_store.rows == [3] and torch.equal(first, whole[:3])
    assert data.examples("train").shape == (len(data.train_store), *data.event_shape)
    with pytest.raises(PplVaeError, match="split must be"):
        data.examples("validation")


def test_sampled_binarization_is_one_seeded_draw_per_pixel_kept_and_recorded():
    grey = load("digits", seed=3)
    sampled = load("digits", binarize="sampled", seed=3)
    bits = sampled.train[:]
    assert sampled.binary and bool(((bits == 0) | (bits == 1)).all())
    assert torch.equal(bits, load(**sampled.spec).train[:])  # the recorded seed redraws them
    assert sampled.spec["binarize"] == "sampled" and sampled.spec["seed"] == 3
    # unbiased: E[bernoulli(x)] = x, over 1,617 × 64 pixels (sd of the mean ≈ 0.0015)
    assert float(bits.mean()) == pytest.approx(float(grey.train[:].mean()), abs=0.006)
    assert not torch.equal(bits, (grey.train[:] >= 0.5).float())  # not the threshold
