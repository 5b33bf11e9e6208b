"""MNIST download against a local HTTP server: checksums, retries, atomic writes, cache."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from ppl_vae.data import download, load
from ppl_vae.data.mnist import IDX_FILES
from ppl_vae.errors import PplVaeError
from tests.idx_files import write_idx


class Server:
    """Serves ``files[name] -> bytes`` on 127.0.0.1; ``fail[name] = k`` answers 500 k times."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.hits[name] = outer.hits.get(name, 0) + 1
                if outer.fail.get(name, 0) > 0:
                    outer.fail[name] -= 1
                    self.send_error(500, "boom")
                    return
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A server holding four small gzip IDX files, and their hash table."""
    monkeypatch.setattr(download, "RETRY_DELAY_S", 0.0)
    monkeypatch.setenv("PPL_VAE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (30, 28, 28)), "y_train": rng.integers(0, 10, 30),
              "x_test": rng.integers(0, 256, (10, 28, 28)), "y_test": rng.integers(0, 10, 10)}
    with Server() as srv:
        srv.hashes = {}
        for key, stem in IDX_FILES.items():
            write_idx(tmp_path / (stem + ".gz"), arrays[key])
            body = (tmp_path / (stem + ".gz")).read_bytes()
            srv.files[stem + ".gz"] = body
            srv.hashes[stem + ".gz"] = hashlib.sha256(body).hexdigest()
        srv.arrays = arrays
        yield srv


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_verifies_and_caches(server, tmp_path):
    ds = load("mnist", download=True, base_url=server.url, sha256=server.hashes)
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(server.files)
    assert np.array_equal(ds.test.numpy()[:, 0] * 255, server.arrays["x_test"].astype(np.float32))
    assert server.hits == {name: 1 for name in server.files}
    again = load(**ds.spec)  # from the cache: no new requests
    assert torch.equal(again.train, ds.train)
    assert server.hits == {name: 1 for name in server.files}


def test_checksum_mismatch_is_rejected_and_leaves_no_file(server, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    server.files[name] = server.files[name][:-10] + b"corrupted!"
    with pytest.raises(PplVaeError, match="SHA-256 mismatch"):
        load("mnist", download=True, base_url=server.url, sha256=server.hashes)
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / name).exists() and leftovers(cache) == []
    assert server.hits[name] == download.RETRIES


def test_a_cached_file_with_a_wrong_hash_is_fetched_again(server, tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"stale")
    ds = load("mnist", path=str(folder), download=True, base_url=server.url, sha256=server.hashes)
    assert len(ds.train) == 30 and server.hits["train-labels-idx1-ubyte.gz"] == 1


def test_server_errors_are_retried_then_reported(server, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    server.fail[name] = download.RETRIES - 1  # fails twice, then succeeds
    ds = load("mnist", download=True, base_url=server.url, sha256=server.hashes)
    assert len(ds.train) == 30 and server.hits[name] == download.RETRIES

    server.fail["t10k-labels-idx1-ubyte.gz"] = 99
    other = tmp_path / "other"
    with pytest.raises(PplVaeError, match="HTTP 500"):
        load("mnist", path=str(other), download=True, base_url=server.url, sha256=server.hashes)
    assert leftovers(other) == [] and not (other / "t10k-labels-idx1-ubyte.gz").exists()


def test_missing_file_is_not_retried(server, tmp_path):
    del server.files["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(PplVaeError, match="HTTP 404"):
        load("mnist", download=True, base_url=server.url, sha256=server.hashes)
    assert server.hits["t10k-images-idx3-ubyte.gz"] == 1


def test_unreachable_host_and_env_base_url(server, monkeypatch):
    monkeypatch.setenv("PPL_VAE_MNIST_URL", "http://127.0.0.1:1/nothing/")
    with pytest.raises(PplVaeError, match="could not download http://127.0.0.1:1/nothing/"):
        load("mnist", download=True, sha256=server.hashes)
    monkeypatch.setenv("PPL_VAE_MNIST_URL", server.url)
    assert len(load("mnist", download=True, sha256=server.hashes).test) == 10


def test_known_hashes_reject_fake_files(server):
    # Without the override the real MNIST hashes apply, and the fake files fail them.
    with pytest.raises(PplVaeError, match="SHA-256 mismatch"):
        load("mnist", download=True, base_url=server.url)
