"""A user's own .npy / .npz arrays, with factors and labels; every bad-data error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppl_vae.data import load
from ppl_vae.errors import PplVaeError


def test_npy_images_get_a_channel_axis(tmp_path):
    x = np.random.default_rng(0).random((50, 6, 5))
    np.save(tmp_path / "x.npy", x)
    ds = load("array", path=str(tmp_path / "x.npy"), n=40, test_fraction=0.25)
    assert ds.event_shape == (1, 6, 5) and (len(ds.train), len(ds.test)) == (30, 10)
    rows = {tuple(r.ravel().round(5)) for r in x.astype(np.float32)}
    assert all(tuple(r.ravel().round(5)) in rows for r in ds.train.numpy())
    vectors = np.zeros((10, 7), np.float32)
    np.save(tmp_path / "v.npy", vectors)
    assert load("array", path=str(tmp_path / "v.npy")).event_shape == (7,)


def test_npz_with_factors_and_labels_in_the_same_file(tmp_path):
    rng = np.random.default_rng(1)
    factors = rng.integers(0, [2, 5], size=(40, 2))
    x = (factors[:, :1, None] * np.ones((40, 4, 4)) / 2).astype(np.float32)  # image = factor 0 / 2
    np.savez(tmp_path / "d.npz", images=x, f=factors, y=factors[:, 1])
    ds = load("array", path=str(tmp_path / "d.npz"), factors="f", labels="y",
              factor_names=["a", "b"])
    assert ds.factor_names == ["a", "b"] and ds.factor_sizes == [2, 5]
    assert torch.equal(ds.train[:, 0, 0, 0] * 2, ds.train_factors[:, 0].float())
    assert torch.equal(ds.train_labels, ds.train_factors[:, 1])
    codes = ds.sample_factors(10, np.random.default_rng(0), fixed={1: 4})
    assert (codes[:, 1] == 4).all() and codes[:, 0].max() <= 1
    with pytest.raises(PplVaeError, match="cannot draw images"):
        ds.images_for_factors(codes)
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.test, ds.test) and torch.equal(again.test_labels, ds.test_labels)


def test_factors_and_labels_from_separate_files_and_scale(tmp_path):
    x = np.arange(20 * 3, dtype=np.uint8).reshape(20, 3) * 4
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "f.npy", np.arange(20) % 3)
    np.savez(tmp_path / "y.npz", labels=np.arange(20) % 2)
    ds = load("array", path=str(tmp_path / "x.npy"), factors=str(tmp_path / "f.npy"),
              labels=str(tmp_path / "y.npz"), scale=1 / 255, binarize="static")
    assert ds.factor_sizes == [3] and ds.factor_names == ["factor_0"]
    assert ds.binary and set(ds.train.unique().tolist()) <= {0.0, 1.0}
    raw = load("array", path=str(tmp_path / "x.npy"))
    assert raw.train.max() > 1 and not raw.binary


def test_bad_arrays(tmp_path):
    def save(name, **arrays):
        np.savez(tmp_path / name, **arrays)
        return str(tmp_path / name)

    good = np.random.default_rng(0).random((20, 4, 4))
    nan = good.copy()
    nan[3, 1, 1] = np.nan
    inf = good.copy()
    inf[0, 0, 0] = np.inf
    cases = [
        ({"path": save("nan.npz", x=nan)}, "NaN or infinite"),
        ({"path": save("inf.npz", x=inf)}, "NaN or infinite"),
        ({"path": save("empty.npz", x=np.zeros((0, 4, 4)))}, "empty"),
        ({"path": save("flat.npz", x=np.zeros(20))}, "at least 2 axes"),
        ({"path": save("str.npz", x=np.array([["a"]] * 4))}, "numeric"),
        ({"path": save("two.npz", x=good, z=good)}, "pass key="),
        ({"path": save("key.npz", x=good), "key": "images"}, "no array 'images'"),
        ({"path": save("fl.npz", x=good, f=np.zeros((20, 2)) + 0.5), "factors": "f"}, "integer"),
        ({"path": save("fr.npz", x=good, f=np.zeros((19, 2), int)), "factors": "f"}, "20 rows"),
        ({"path": save("neg.npz", x=good, f=-np.ones((20, 1), int)), "factors": "f"}, "non-negative"),
        ({"path": save("lab.npz", x=good, y=np.zeros((20, 2), int)), "labels": "y"}, r"\(20,\)"),
        ({"path": save("nm.npz", x=good, f=np.zeros((20, 2), int)), "factors": "f",
          "factor_names": ["a"]}, "1 names for 2 factors"),
        ({"path": save("ref.npz", x=good), "factors": "nowhere"}, "neither a key"),
        ({"path": save("big.npz", x=good), "n": 21}, "larger than"),
        ({"path": save("range.npz", x=good * 3), "binarize": "dynamic"}, r"values in \[0, 1\]"),
        ({"path": save("bin.npz", x=good), "binarize": "sometimes"}, "binarize must be one of"),
        ({"path": save("seed.npz", x=good), "seed": -1}, "seed must be an integer"),
        ({"path": save("n.npz", x=good), "n": 2.5}, "n must be an integer"),
        ({"path": save("sc.npz", x=good), "scale": "1/255"}, "scale must be a number"),
        ({"path": str(tmp_path / "missing.npy")}, "no such file"),
        ({}, "needs path="),
    ]
    for options, message in cases:
        with pytest.raises(PplVaeError, match=message):
            load("array", **options)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(PplVaeError, match="cannot read"):
        load("array", path=str(tmp_path / "junk.npy"))


def test_relative_paths_are_stored_absolute_in_the_spec(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    np.save(tmp_path / "f.npy", np.arange(10) % 2)
    monkeypatch.chdir(tmp_path)
    ds = load("array", path="x.npy", factors="f.npy")
    assert ds.spec["path"] == str(tmp_path / "x.npy") and ds.spec["factors"] == str(tmp_path / "f.npy")
    monkeypatch.chdir("/")
    assert torch.equal(load(**ds.spec).train_factors, ds.train_factors)
