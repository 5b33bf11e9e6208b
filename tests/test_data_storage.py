"""Packed, uint8, rendered and memory-mapped storage give the float32 batches bit for bit."""

import os
import signal

import numpy as np
import pytest
import torch

import ppl_vae
from ppl_vae.data import Dataset, load
from ppl_vae.data.common import subset_split
from ppl_vae.data.dsprites import FULL_ROWS, LAYOUT_SIZES
from ppl_vae.data.shapes import GRID_SIZE, render
from ppl_vae.data.storage import BitStorage
from ppl_vae.errors import PplVaeError
from ppl_vae.estimators import Estimator, make_elbo
from ppl_vae.metrics.mig import compute_mig

STORAGES = ("float32", "auto", "render")


def _index(n: int, m: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m]


def test_bits_unpack_like_numpy_packbits_with_a_padded_last_byte():
    x = np.random.default_rng(0).integers(0, 2, size=(40, 1, 5, 7)).astype(np.uint8)  # 35 bits
    store = BitStorage.from_chunks([x[:13], x[13:]], (1, 5, 7))
    assert store.nbytes == 40 * 5 and store.kind == "bits"
    assert np.array_equal(store.packed.numpy(), np.packbits(x.reshape(40, -1), axis=1))
    index = _index(40)
    assert torch.equal(store[index], torch.from_numpy(x.astype(np.float32))[index])
    assert torch.equal(store[3:9], torch.from_numpy(x[3:9].astype(np.float32)))


def test_shapes_batches_are_the_same_from_every_storage():
    sets = {s: load("shapes", n=600, size=32, seed=4, storage=s) for s in STORAGES}
    kinds = {s: ds.train_store.kind for s, ds in sets.items()}
    assert kinds == {"float32": "float32", "auto": "bits", "render": "render"}
    reference = sets["float32"]
    expected = torch.from_numpy(render(reference.train_factors.numpy(), 32)[:, None]).float()
    index = _index(len(reference.train_store))
    for name, ds in sets.items():
        assert torch.equal(ds.train_store[index], expected[index]), name
        assert torch.equal(ds.test, reference.test) and torch.equal(ds.train, expected), name
        assert ds.binary and ds.event_shape == (1, 32, 32)
    assert sets["auto"].train_store.nbytes * 32 == reference.train_store.nbytes
    assert sets["render"].train_store.nbytes == 540 * 5 * 8  # int64 codes only
    assert "storage" not in sets["auto"].spec and sets["render"].spec["storage"] == "render"
    rebuilt = load(**sets["render"].spec)
    assert rebuilt.train_store.kind == "render" and torch.equal(rebuilt.train, expected)


def test_uint8_sources_convert_exactly_as_numpy_float32(tmp_path):
    from sklearn.datasets import load_digits

    ds = load("digits", seed=1)
    assert ds.train_store.kind == "uint8" and ds.train_store.nbytes == len(ds.train_store) * 64
    whole = load_digits().images.astype(np.float32)[:, None] / np.float32(16.0)
    train, _ = subset_split(len(whole), len(whole), 0.1, np.random.default_rng(1))
    assert torch.equal(ds.train, torch.from_numpy(whole[train]))
    index = _index(len(train))
    assert torch.equal(ds.train_store[index], load("digits", seed=1, storage="float32").train[index])
    grey = np.random.default_rng(2).integers(0, 256, size=(60, 9, 9), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=grey[:40], y_train=np.zeros(40, np.uint8),
             x_test=grey[40:], y_test=np.zeros(20, np.uint8))
    mnist = load("mnist", path=str(tmp_path / "mnist.npz"))
    assert mnist.train_store.kind == "uint8"
    assert torch.equal(mnist.train, torch.from_numpy(grey[:40, None].astype(np.float32) / 255.0))
    static = load("mnist", path=str(tmp_path / "mnist.npz"), binarize="static")
    assert static.train_store.kind == "bits" and static.binary
    assert torch.equal(static.train, torch.from_numpy(
        (grey[:40, None].astype(np.float32) / 255.0 >= 0.5).astype(np.float32)))
    np.save(tmp_path / "u8.npy", grey)
    scaled = load("array", path=str(tmp_path / "u8.npy"), scale=1 / 255, seed=3)
    floats = load("array", path=str(tmp_path / "u8.npy"), scale=1 / 255, seed=3,
                  storage="float32")
    assert (scaled.train_store.kind, floats.train_store.kind) == ("uint8", "float32")
    index = _index(len(floats.train_store))
    assert torch.equal(scaled.train_store[index], floats.train_store[index])


def test_memory_mapped_array_gathers_rows_equal_to_the_loaded_ones(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.random((300, 10, 12, 3), dtype=np.float32)  # channel-last images
    np.save(tmp_path / "x.npy", x)
    options = dict(path=str(tmp_path / "x.npy"), scale=0.5, channels_last=True, seed=2)
    mapped = load("array", storage="mmap", **options)
    loaded = load("array", **options)
    assert mapped.train_store.kind == "mmap" and loaded.train_store.kind == "float32"
    assert mapped.event_shape == loaded.event_shape == (3, 10, 12)
    assert mapped.train_store.nbytes == 270 * 8  # row numbers only
    index = _index(270)
    assert torch.equal(mapped.train_store[index], loaded.train_store[index])
    assert torch.equal(mapped.test, loaded.test)
    assert torch.equal(loaded.train[:2], torch.from_numpy(
        x[mapped.train_store.rows[:2]].transpose(0, 3, 1, 2) * np.float32(0.5)))
    np.savez_compressed(tmp_path / "z.npz", x=x)
    with pytest.raises(PplVaeError, match="compressed and cannot be memory-mapped"):
        load("array", path=str(tmp_path / "z.npz"), storage="mmap")
    bad = x.copy()
    bad[7, 0, 0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(PplVaeError, match="1 NaN or infinite"):
        load("array", path=str(tmp_path / "bad.npy"), storage="mmap", channels_last=True)


@pytest.mark.parametrize("compressed", [True, False])
def test_full_dsprites_layout_loads_all_rows_packed_or_mapped(tmp_path, compressed):
    classes = np.stack(np.unravel_index(np.arange(FULL_ROWS), LAYOUT_SIZES), 1).astype(np.int64)
    images = np.zeros((FULL_ROWS, 2, 2), np.uint8)
    images[:, 0, 0], images[:, 1, 1] = classes[:, 5] % 2, classes[:, 1] == 2
    path = tmp_path / "dsprites.npz"
    (np.savez_compressed if compressed else np.savez)(path, imgs=images, latents_classes=classes)
    ds = load("dsprites", path=str(path), n="all")
    assert ds.spec["n"] == FULL_ROWS and len(ds.train_store) + len(ds.test_store) == FULL_ROWS
    assert ds.train_store.kind == ("bits" if compressed else "mmap")
    codes = ds.train_factors.numpy()
    rows = codes @ np.array([245760, 40960, 1024, 32, 1])
    index = _index(len(codes), 500)
    expected = torch.from_numpy(images[rows[index.numpy()], None].astype(np.float32))
    assert torch.equal(ds.train_store[index], expected)
    assert torch.equal(ds.images_for_factors(codes[index.numpy()]), expected)


def test_metrics_read_the_same_images_from_packed_and_procedural_sources():
    sets = {s: load("shapes", n=300, size=32, storage=s) for s in STORAGES}

    def representation(images):  # centre of mass: tells pos_x and pos_y apart
        grid = torch.arange(32.0)
        mass = images.sum((1, 2, 3)).clamp(min=1)
        return torch.stack([(images.sum((1, 2)) * grid).sum(1) / mass,
                            (images.sum((1, 3)) * grid).sum(1) / mass], 1).numpy()

    scores = {s: compute_mig(representation, ds, num_train=400) for s, ds in sets.items()}
    assert scores["auto"] == scores["render"] == scores["float32"]
    assert min(scores["auto"]["gap_per_factor"][3:]) > 0.5  # pos_x, pos_y captured


class Recording(Estimator):
    """The trace ELBO, remembering every batch; sends SIGINT at call ``stop_at``."""

    def __init__(self, seen: list, stop_at: int = 0):
        super().__init__(1)
        self.inner, self.seen, self.stop_at, self.name = make_elbo("trace"), seen, stop_at, "trace"

    def __call__(self, model, guide, x):
        self.seen.append(x.clone())
        if len(self.seen) == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner(model, guide, x)


def _train(data, out, seen, epochs=2, **options):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    ppl_vae.fit(pair.model, pair.guide, data, elbo=Recording(seen, **options), epochs=epochs,
                batch_size=32, seed=1, out=out, quiet=True, device="cpu", pair=pair,
                report=False, resume=out is not None and (out / "checkpoint.pt").exists())
    return {k: v.detach().clone() for k, v in pair.named_parameters().items()}


def test_every_storage_trains_identically_and_a_resumed_rendered_run_sees_the_same_batches(
        tmp_path):
    sets = {s: load("shapes", n=200, size=32, seed=6, storage=s) for s in STORAGES}
    seen = {s: [] for s in STORAGES}
    params = {s: _train(ds, None, seen[s]) for s, ds in sets.items()}
    training = seen["float32"]  # the estimator sees training batches only
    assert len(training) == 2 * (180 // 32) and all(len(b) == 32 for b in training)
    for s in STORAGES:
        assert len(seen[s]) == len(seen["float32"])
        assert all(torch.equal(a, b) for a, b in zip(seen[s], seen["float32"])), s
        assert all(torch.equal(v, params["float32"][k]) for k, v in params[s].items()), s
    resumed = []
    with pytest.raises(PplVaeError, match="interrupted at epoch 1, step 4"):
        _train(sets["render"], tmp_path / "r", resumed, stop_at=4)  # Ctrl-C in step 4
    after = _train(sets["render"], tmp_path / "r", resumed)
    assert len(resumed) == len(training)
    assert all(torch.equal(a, b) for a, b in zip(resumed, training))
    assert all(torch.equal(v, params["float32"][k]) for k, v in after.items())


def test_the_full_grid_renders_per_batch_and_options_are_checked():
    ds = load("shapes", n="all", storage="render")
    assert len(ds.train_store) + len(ds.test_store) == GRID_SIZE and ds.spec["n"] == GRID_SIZE
    assert ds.train_store.nbytes == len(ds.train_store) * 5 * 8
    batch = ds.train_store[_index(len(ds.train_store), 64)]
    assert batch.shape == (64, 1, 64, 64) and batch.dtype == torch.float32
    with pytest.raises(PplVaeError, match="storage must be one of auto, float32, render"):
        load("shapes", storage="bits")
    with pytest.raises(PplVaeError, match="storage must be one of auto, float32, mmap"):
        load("array", path=__file__, storage="render")


def test_data_train_is_a_float_tensor_and_can_be_replaced():
    ds = load("shapes", n=100, size=32)
    assert ds.train.dtype == torch.float32 and ds.train.shape == (90, 1, 32, 32)
    ds.train = ds.train * 0.5
    assert ds.train_store.kind == "float32" and ds.train.max() == 0.5
    assert ds.train is ds.train_store.tensor  # float32 storage hands out its tensor
    assert "stored as bits" in load("shapes", n=100, size=32).describe()


def test_training_never_decodes_a_whole_split(monkeypatch):
    ds = load("shapes", n=100, size=32)

    def refuse(self):
        raise AssertionError("fit decoded a whole split (data.train / data.test)")

    monkeypatch.setattr(Dataset, "train", property(refuse))
    monkeypatch.setattr(Dataset, "test", property(refuse))
    assert len(_train(ds, None, [], epochs=1))
