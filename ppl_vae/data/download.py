"""Checked downloads into a cache: urllib only, SHA-256 verified, atomic writes.

A file is streamed into a temporary file beside its destination, hashed while
it is written, flushed and fsynced, and only then moved into place with
``os.replace``; a failed or corrupted download never leaves a file under the
final name. Transient failures (connection errors, HTTP 5xx/408/429, checksum
mismatches) are retried ``RETRIES`` times with exponential back-off.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ppl_vae.errors import PplVaeError

RETRIES = 3
RETRY_DELAY_S = 1.0
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The download cache: ``$PPL_VAE_CACHE``, else ``~/.cache/ppl_vae``."""
    return Path(os.environ.get("PPL_VAE_CACHE") or Path.home() / ".cache" / "ppl_vae")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _ChecksumError(Exception):
    """The downloaded bytes do not have the expected SHA-256."""


def fetch(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right hash is there.

    Args:
        url: http(s) URL of the file.
        dest: Final path; its folder is created.
        sha256: Expected hex SHA-256 of the file's bytes.

    Returns:
        ``dest``, holding bytes whose SHA-256 equals ``sha256``.

    Raises:
        PplVaeError: Every attempt failed (the message names the last cause).
    """
    dest = Path(dest)
    if dest.exists() and sha256_of(dest) == sha256.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = "no attempt made"
    for attempt in range(RETRIES):
        if attempt:
            time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
        try:
            _fetch_once(url, dest, sha256.lower())
            return dest
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code} {error.reason}"
            if 400 <= error.code < 500 and error.code not in (408, 429):
                break
        except (urllib.error.URLError, OSError, _ChecksumError) as error:
            last = str(getattr(error, "reason", None) or error)
    raise PplVaeError(
        f"could not download {url} ({last}); check the URL or your connection, "
        f"or put the file at {dest} yourself"
    )


def _fetch_once(url: str, dest: Path, sha256: str) -> None:
    """One attempt: stream to a temp file, verify, fsync, then ``os.replace``."""
    descriptor, temporary = tempfile.mkstemp(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
    )
    try:
        digest = hashlib.sha256()
        with (
            os.fdopen(descriptor, "wb") as handle,
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
        ):
            for block in iter(lambda: response.read(_CHUNK), b""):
                digest.update(block)
                handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        if digest.hexdigest() != sha256:
            raise _ChecksumError(
                f"SHA-256 mismatch: expected {sha256}, got {digest.hexdigest()}"
            )
        os.replace(temporary, dest)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
