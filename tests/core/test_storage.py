"""The blob store contract on a local directory and on an fsspec URL (in-memory filesystem)."""

from __future__ import annotations

import hashlib
import io

import pytest

from server.errors import BlobCorrupt, PayloadTooLarge
from server.storage import FsspecStore, LocalStore, stage_file


@pytest.fixture(params=["local", "fsspec"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "blobs", tmp_path / "tmp")
    import fsspec

    fsspec.filesystem("memory").store.clear()
    return FsspecStore("memory://bucket/blobs", tmp_path / "cache")


def test_put_is_content_addressed_and_idempotent(store):
    key = store.put_bytes(b"hello")
    assert key == hashlib.sha256(b"hello").hexdigest()
    assert store.put_bytes(b"hello") == key
    assert store.exists(key)
    assert store.read_bytes(key) == b"hello"
    assert store.fetch(key).read_bytes() == b"hello"
    store.delete(key)
    assert not store.exists(key)


def test_fetch_detects_corruption(store, tmp_path):
    key = store.put_bytes(b"original")
    if isinstance(store, LocalStore):
        store.path(key).write_bytes(b"tampered")
    else:
        with store.fs.open(store._remote(key), "wb") as f:
            f.write(b"tampered")
    with pytest.raises(BlobCorrupt):
        store.fetch(key)


def test_keys_that_are_not_sha256_are_refused(store):
    for bad in ("../etc/passwd", "a" * 63, "Z" * 64, "/abs"):
        with pytest.raises(ValueError):
            store.exists(bad)


def test_staging_over_the_limit_leaves_no_temp_file(tmp_path):
    with pytest.raises(PayloadTooLarge):
        stage_file(io.BytesIO(b"x" * 100), tmp_path, limit=10)
    assert list(tmp_path.iterdir()) == []
