"""dSprites-layout files: index arithmetic on a full file, lookup on a subset file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppl_vae.data import load
from ppl_vae.data.dsprites import LAYOUT_SIZES, DspritesFile
from ppl_vae.errors import PplVaeError

FULL = 737_280


def signature(classes: np.ndarray) -> np.ndarray:
    """A 2x2 0/1 image that encodes parities of the factors, to check which row was read."""
    image = np.zeros((len(classes), 2, 2), dtype=np.uint8)
    image[:, 0, 0] = classes[:, 5] % 2
    image[:, 0, 1] = classes[:, 4] % 2
    image[:, 1, 0] = classes[:, 3] % 2
    image[:, 1, 1] = classes[:, 1] == 2
    return image


@pytest.fixture(scope="module")
def full_file(tmp_path_factory):
    """All 737,280 rows in the real order, with 2x2 images (about 2 MB compressed)."""
    classes = np.stack(np.unravel_index(np.arange(FULL), LAYOUT_SIZES), axis=1).astype(np.int64)
    path = tmp_path_factory.mktemp("dsprites") / "dsprites_full.npz"
    np.savez_compressed(path, imgs=signature(classes), latents_classes=classes,
                        latents_values=classes.astype(np.float64))
    return path


def subset_file(path, rows=600, compressed=True, seed=0):
    """A shuffled subset of the grid with random 4x4 images; returns (path, classes, images)."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(FULL, size=rows, replace=False)
    classes = np.stack(np.unravel_index(flat, LAYOUT_SIZES), axis=1).astype(np.int64)
    images = rng.integers(0, 2, size=(rows, 4, 4), dtype=np.uint8)
    (np.savez_compressed if compressed else np.savez)(path, imgs=images, latents_classes=classes)
    return path, classes, images


def test_full_file_uses_index_arithmetic(full_file):
    file = DspritesFile(full_file)
    assert file.complete  # row = classes . [737280, 245760, 40960, 1024, 32, 1]
    codes = np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 3, 17, 8, 21]])
    assert file.rows_for(codes).tolist() == [0, FULL - 1, 245760 + 3 * 40960 + 17 * 1024 + 8 * 32 + 21]
    ds = load("dsprites", path=str(full_file), n=400, seed=2)
    assert ds.factor_sizes == [3, 6, 40, 32, 32] and ds.factor_names[0] == "shape"
    full_classes = np.concatenate([np.zeros((400, 1), np.int64),
                                   torch.cat([ds.train_factors, ds.test_factors]).numpy()], axis=1)
    expected = signature(full_classes).astype(np.float32)[:, None]
    assert np.array_equal(torch.cat([ds.train, ds.test]).numpy(), expected)
    codes = ds.sample_factors(50, np.random.default_rng(0), fixed={2: 11}).numpy()
    images = ds.images_for_factors(codes).numpy()[:, 0]
    assert (images[:, 1, 0] == 1).all()  # orientation 11 is odd
    assert np.array_equal(images, signature(np.concatenate([np.zeros((50, 1), int), codes], 1)))


@pytest.mark.parametrize("compressed", [True, False])
def test_subset_file_uses_lookup(tmp_path, compressed):
    path, classes, images = subset_file(tmp_path / "part.npz", compressed=compressed)
    file = DspritesFile(path)
    assert not file.complete
    assert (file.images.mapped is None) == compressed  # np.savez members are memory-mapped
    ds = load("dsprites", path=str(path), n=100, test_fraction=0.25, seed=1)
    assert (len(ds.train), len(ds.test)) == (75, 25)
    by_key = {tuple(c[1:]): im for c, im in zip(classes.tolist(), images)}
    for factors, image in zip(ds.train_factors.tolist(), ds.train.numpy()[:, 0]):
        assert np.array_equal(image, by_key[tuple(factors)])
    picked = classes[[5, 0, 599, 5], 1:]
    assert np.array_equal(ds.images_for_factors(picked).numpy()[:, 0], images[[5, 0, 599, 5]])
    missing = np.array([c for c in np.ndindex(3, 6, 40, 32, 32)
                        if tuple(c) not in by_key][:1])
    with pytest.raises(PplVaeError, match="no image for factors"):
        ds.images_for_factors(missing)
    again = load(**json.loads(json.dumps(ds.spec)))
    assert torch.equal(again.test, ds.test) and torch.equal(again.test_factors, ds.test_factors)


def test_default_n_is_capped_by_the_file(tmp_path):
    path, _, _ = subset_file(tmp_path / "part.npz", rows=50)
    ds = load("dsprites", path=str(path))
    assert ds.spec["n"] == 50 and len(ds.train) + len(ds.test) == 50


def test_bad_dsprites_files(tmp_path):
    with pytest.raises(PplVaeError, match="needs path="):
        load("dsprites")
    with pytest.raises(PplVaeError, match="no such file"):
        load("dsprites", path=str(tmp_path / "nope.npz"))
    np.savez(tmp_path / "keys.npz", images=np.zeros((3, 2, 2)))
    with pytest.raises(PplVaeError, match="lacks imgs, latents_classes"):
        load("dsprites", path=str(tmp_path / "keys.npz"))
    classes = np.zeros((4, 6), np.int64)
    classes[:, 5] = np.arange(4)
    np.savez(tmp_path / "rows.npz", imgs=np.zeros((3, 2, 2), np.uint8), latents_classes=classes)
    with pytest.raises(PplVaeError, match="must be"):
        load("dsprites", path=str(tmp_path / "rows.npz"))
    classes[:, 5] = 40
    np.savez(tmp_path / "range.npz", imgs=np.zeros((4, 2, 2), np.uint8), latents_classes=classes)
    with pytest.raises(PplVaeError, match="outside the sizes"):
        load("dsprites", path=str(tmp_path / "range.npz"))
    classes[:, 5] = 1
    np.savez(tmp_path / "dup.npz", imgs=np.zeros((4, 2, 2), np.uint8), latents_classes=classes)
    with pytest.raises(PplVaeError, match="repeats"):
        load("dsprites", path=str(tmp_path / "dup.npz"))
    path, _, _ = subset_file(tmp_path / "ok.npz", rows=20)
    with pytest.raises(PplVaeError, match="larger than"):
        load("dsprites", path=str(path), n=21)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(PplVaeError, match="cannot read"):
        load("dsprites", path=str(tmp_path / "text.npz"))
    classes = np.stack(np.unravel_index(np.arange(5), LAYOUT_SIZES), axis=1)
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "grey.npz", imgs=np.full((5, 2, 2), 255, np.uint8), latents_classes=classes)
        with pytest.raises(PplVaeError, match="0/1"):
            load("dsprites", path=str(tmp_path / "grey.npz"), n=4, test_fraction=0.5)
