"""Disk faults: a full or failing disk gives a clear error and the previous checkpoint
survives, loadable."""

import errno
import os
import subprocess
import uuid

import pytest
import torch

import ppl_vae
from ppl_vae import runs
from ppl_vae.errors import PplVaeError


def _fit(data, out, epochs, **options):
    pair = ppl_vae.build("vae", latent_dim=2, data=data, net="mlp", seed=0)
    return ppl_vae.fit(pair.model, pair.guide, data, epochs=epochs, batch_size=20, out=out,
                       quiet=True, device="cpu", pair=pair, **options)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1000 KiB tmpfs (needs root); skipped where mounting is not allowed."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1000k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_full_disk_keeps_the_previous_checkpoint(binary_data, tiny_disk):
    out = tiny_disk / "run"
    _fit(binary_data, out, epochs=1)  # one checkpoint (~660 KiB) fits, a second does not
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(PplVaeError, match="could not write.*previous file is intact"):
        _fit(binary_data, out, epochs=3, resume=True)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert runs.load_checkpoint(out)["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


def test_failing_write_keeps_the_previous_checkpoint(binary_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _fit(binary_data, out, epochs=1)
    before = (out / "checkpoint.pt").read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs.os, "fsync", no_space)
    with pytest.raises(PplVaeError, match="No space left on device"):
        _fit(binary_data, out, epochs=2, resume=True)
    monkeypatch.undo()
    assert (out / "checkpoint.pt").read_bytes() == before
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1


def test_run_folder_that_cannot_be_created(binary_data, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(PplVaeError, match="cannot create run folder"):
        _fit(binary_data, tmp_path / "file" / "run", epochs=1)
