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


def test_sequences_keep_their_shape_and_pixel_like_arrays_say_they_became_images(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "seq.npy", rng.normal(size=(30, 7, 3)).astype(np.float32))
    assert load("array", path=str(tmp_path / "seq.npy")).event_shape == (7, 3)  # not pixels
    rolls = (rng.random((30, 7, 3)) < 0.3).astype(np.float32)  # binary: could be images
    np.save(tmp_path / "rolls.npy", rolls)
    with pytest.warns(UserWarning, match=r"read as grey images \(30, 1, 7, 3\).*--keep-shape"):
        assert load("array", path=str(tmp_path / "rolls.npy")).event_shape == (1, 7, 3)
    kept = load("array", path=str(tmp_path / "rolls.npy"), keep_shape=True)
    assert kept.event_shape == (7, 3) and kept.spec["keep_shape"] is True
    rows = {r.tobytes() for r in rolls}
    assert all(r.tobytes() in rows for r in kept.train.numpy())
    again = load(**json.loads(json.dumps(kept.spec)))
    assert torch.equal(again.train, kept.train)
    assert load("array", path=str(tmp_path / "rolls.npy"), keep_shape=False).event_shape \
        == (1, 7, 3)


def test_named_arrays_become_per_example_fields_split_with_their_rows(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6, 2)).astype(np.float32)
    lengths, index = rng.integers(1, 7, size=40), np.arange(40)
    np.savez(tmp_path / "d.npz", x=x, lengths=lengths, index=index, mask=lengths > 3)
    ds = load("array", path=str(tmp_path / "d.npz"), fields="lengths,index,mask", n=30,
              test_fraction=0.2)
    assert ds.input_names() == ["lengths", "index", "mask"]
    for part, store in (("train", ds.train), ("test", ds.test)):
        inputs = ds.inputs(part)
        rows = inputs["index"]  # each example keeps its own row of every field
        assert torch.equal(store, torch.from_numpy(x[rows.numpy()]))
        assert torch.equal(inputs["lengths"], torch.from_numpy(lengths[rows.numpy()]))
        assert inputs["lengths"].dtype == torch.int64 and inputs["mask"].dtype == torch.bool
    assert len(ds.inputs("train")["index"]) + len(ds.inputs("test")["index"]) == 30
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.inputs("test")["lengths"], ds.inputs("test")["lengths"])


@pytest.mark.parametrize("arrays, fields, message", [
    ({"lengths": np.arange(39)}, "lengths", r"array 'lengths' of .* must have 40 rows .* "
                                            r"got shape \(39,\)"),
    ({"lengths": np.array(3)}, "lengths", "got a scalar"),
    ({"names": np.array(["a"] * 40)}, "names", "of numbers"),
    ({}, "lengths", "has no array 'lengths'; it has x"),
    ({"lengths": np.arange(40)}, "lengths,lengths", "names an array twice"),
    ({}, "x", "is not usable as model"),
])
def test_field_mistakes_are_one_line(tmp_path, arrays, fields, message):
    arrays = {"x": np.random.default_rng(0).normal(size=(40, 5, 2)), **arrays}
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(PplVaeError, match=message) as error:
        load("array", path=str(tmp_path / "d.npz"), key="x", fields=fields)
    assert "\n" not in str(error.value)


def test_the_cli_makes_flags_for_them_and_trains_a_sequence_model_on_a_field(tmp_path):
    import pyro
    import pyro.distributions as dist

    import ppl_vae
    from ppl_vae.cli.parser import build_parser

    args = build_parser().parse_args(["train", "--out", "r", "--data", "array", "--fields",
                                      "lengths", "--keep-shape"])
    assert args.fields == "lengths" and args.keep_shape is True
    rng = np.random.default_rng(4)
    lengths = rng.integers(2, 9, size=60)
    x = rng.normal(size=(60, 8, 2)).astype(np.float32)
    np.savez(tmp_path / "s.npz", x=x, lengths=lengths)
    ds = load("array", path=str(tmp_path / "s.npz"), key="x", fields=["lengths"])

    def model(x, lengths):  # a sequence model: steps past an example's length are masked
        mask = torch.arange(x.shape[1]) < lengths[:, None]
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", dist.Normal(z[..., None, :], 1.0).mask(mask[..., None])
                        .to_event(2), obs=x)

    def guide(x, lengths):
        loc = pyro.param("loc", torch.zeros(2))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))

    run = ppl_vae.fit(model, guide, ds, inputs=["lengths"], epochs=1, batch_size=20,
                      quiet=True, report=False, device="cpu")
    assert run.config.inputs == {"lengths": ["int64", []]}
    assert run.metrics[-1]["test_elbo"] is not None
