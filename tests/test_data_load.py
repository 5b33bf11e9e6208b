"""`load` itself: names, options, binarization modes, specs, the `digits` source."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from ppl_vae.config import DataSpec, EstimatorSpec, SplitOptions, TrainConfig
from ppl_vae.data import DATASETS, Dataset, load, load_spec
from ppl_vae.data.digits import load_digits
from ppl_vae.errors import PplVaeError
from ppl_vae.runs import Environment, RunConfig


def test_known_names_and_unknown_ones():
    assert set(DATASETS) == {"shapes", "dsprites", "mnist", "mnist5k", "digits", "array"}
    assert all(isinstance(text, str) and "\n" not in text for text in DATASETS.values())
    with pytest.raises(PplVaeError, match="unknown dataset 'cifar'; known datasets: array, "
                       "digits, dsprites, mnist, mnist5k, shapes"):
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


def test_the_options_every_source_takes_have_one_home():
    """No loader repeats test_fraction/seed/binarize/storage: they come from SplitOptions."""
    import inspect

    from ppl_vae.registry import DATA_SOURCES

    shared = {f.name for f in dataclasses.fields(SplitOptions)}
    assert shared == {"test_fraction", "seed", "binarize", "storage"}
    for entry in DATA_SOURCES.entries():
        assert not shared & set(inspect.signature(entry.factory).parameters), entry.name
    ds = load("digits")
    assert (len(ds.train), len(ds.test)) == (1617, 180)  # round(1797 * 0.1) held out
    assert {k: ds.spec[k] for k in ("test_fraction", "seed", "binarize")} == \
        {"test_fraction": 0.1, "seed": 0, "binarize": "none"} and "storage" not in ds.spec
    with pytest.raises(PplVaeError, match="dataset 'digits' has no option sead; the options "
                       "every dataset takes are: test_fraction, seed, binarize, storage"):
        load_digits(sead=1)
    with pytest.raises(PplVaeError, match="test_fraction must be a number strictly between 0 "
                       "and 1, got 1.5"):
        load("digits", test_fraction=1.5)
    with pytest.raises(PplVaeError, match="storage must be one of auto, float32, got 'render'"):
        load("digits", storage="render")
    with pytest.raises(PplVaeError, match="seed must be an integer >= 0, got -1"):
        load("digits", seed=-1)


def test_data_spec_reads_a_dataset_spec_and_rebuilds_the_same_data():
    ds = load("digits", n=200, seed=3, binarize="static", storage="float32", labelled=40,
              flatten=True)
    spec = DataSpec.from_json(ds.spec)
    assert (spec.name, spec.options, spec.labelled, spec.flatten) == ("digits", {"n": 200}, 40,
                                                                      True)
    assert spec.split == SplitOptions(seed=3, binarize="static", storage="float32")
    assert spec.to_json() == ds.spec == json.loads(json.dumps(spec.to_json()))
    again = load_spec(spec)
    assert torch.equal(again.train, ds.train) and torch.equal(again.known["y"], ds.known["y"])
    assert load(**spec).spec == ds.spec and spec["seed"] == 3  # still reads as the dict did
    assert DataSpec.from_json(None) is None


def test_resume_compares_data_specs_not_their_spelling():
    """A record without the shared options (or with them at their defaults) is the same data."""
    def run_config(data: dict) -> RunConfig:
        return RunConfig(pair=None, data=DataSpec.from_json(data), event_shape=[1, 8, 8],
                         inputs={}, estimator=EstimatorSpec("trace"), training=TrainConfig())

    stored = run_config({"name": "digits", "n": 200})
    same = run_config({"name": "digits", "n": 200, "test_fraction": 0.1, "seed": 0,
                       "binarize": "none", "storage": "auto"})
    assert stored.differences(same) == []
    moved = dataclasses.replace(same, environment=Environment("cuda", 2))  # may change
    assert stored.differences(moved) == [] and moved.environment["device"] == "cuda"
    assert RunConfig.from_json(moved.to_json()) == moved
    assert stored.differences(run_config({"name": "digits", "n": 200, "test_fraction": 0.2})) \
        == ["data.test_fraction: 0.1 → 0.2"]


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
