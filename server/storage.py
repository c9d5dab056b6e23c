"""Content-addressed blob store: a blob's key is the sha256 of its bytes.

Writes go to a temporary file, are fsynced and renamed into place, so a blob
is either absent or complete. ``LocalStore`` keeps blobs in a directory;
``FsspecStore`` keeps them under any fsspec URL (``s3://bucket/prefix``, ...).
Readers verify the sha256 of what they read (:func:`BlobStore.fetch`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server.errors import BlobCorrupt, PayloadTooLarge

CHUNK = 1024 * 1024
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class StagedFile:
    """Bytes written to a temporary file, with their digest, not yet in the store."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _check_key(key: str) -> str:
    if len(key) != 64 or not set(key) <= _HEX:
        raise ValueError(f"not a blob key: {key!r}")
    return key


def _relpath(key: str) -> str:
    key = _check_key(key)
    return f"{key[:2]}/{key[2:4]}/{key}"


class _Stager:
    """Streams chunks into a temp file while hashing and counting them."""

    def __init__(self, tmp_dir: Path, limit: int | None):
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        self.file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.digest = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise PayloadTooLarge(f"upload exceeds the limit of {self.limit} bytes")
        self.digest.update(chunk)
        self.file.write(chunk)

    def finish(self) -> StagedFile:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return StagedFile(self.path, self.digest.hexdigest(), self.size)

    def abort(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def stage_chunks(chunks: Iterable[bytes], tmp_dir: Path, limit: int | None = None) -> StagedFile:
    stager = _Stager(tmp_dir, limit)
    try:
        for chunk in chunks:
            stager.write(chunk)
        return stager.finish()
    except BaseException:
        stager.abort()
        raise


async def stage_async_chunks(
    chunks: AsyncIterator[bytes], tmp_dir: Path, limit: int | None = None
) -> StagedFile:
    stager = _Stager(tmp_dir, limit)
    try:
        async for chunk in chunks:
            stager.write(chunk)
        return stager.finish()
    except BaseException:
        stager.abort()
        raise


def stage_file(src: BinaryIO, tmp_dir: Path, limit: int | None = None) -> StagedFile:
    return stage_chunks(iter(lambda: src.read(CHUNK), b""), tmp_dir, limit)


def stage_bytes(data: bytes, tmp_dir: Path) -> StagedFile:
    return stage_chunks([data], tmp_dir)


class BlobStore:
    """Interface; see :class:`LocalStore` and :class:`FsspecStore`."""

    tmp_dir: Path

    def put(self, staged: StagedFile) -> str:
        """Move a staged file into the store; returns its key. Idempotent."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def put_bytes(self, data: bytes) -> str:
        return self.put(stage_bytes(data, self.tmp_dir))

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != key:
            raise BlobCorrupt(f"blob {key} does not match its sha256")
        return data

    def fetch(self, key: str) -> Path:
        """A local path holding the blob's bytes, verified against its sha256."""
        raise NotImplementedError


def _verify_file(path: Path, key: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    if digest.hexdigest() != key:
        raise BlobCorrupt(f"blob {key} does not match its sha256")


class LocalStore(BlobStore):
    def __init__(self, root: Path, tmp_dir: Path | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir = tmp_dir or self.root / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / _relpath(key)

    def put(self, staged: StagedFile) -> str:
        dest = self.path(staged.sha256)
        if dest.exists():
            staged.discard()
            return staged.sha256
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, dest)
        dir_fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return staged.sha256

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def fetch(self, key: str) -> Path:
        path = self.path(key)
        _verify_file(path, key)
        return path


class FsspecStore(BlobStore):
    """Blobs under an fsspec URL; fetched blobs are cached in a local directory."""

    def __init__(self, url: str, cache_dir: Path):
        import fsspec

        self.fs, self.base = fsspec.core.url_to_fs(url)
        self.cache_dir = Path(cache_dir)
        self.tmp_dir = self.cache_dir / ".tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _remote(self, key: str) -> str:
        return f"{self.base.rstrip('/')}/{_relpath(key)}"

    def put(self, staged: StagedFile) -> str:
        remote = self._remote(staged.sha256)
        if not self.fs.exists(remote):
            part = f"{remote}.part-{os.getpid()}"
            self.fs.put_file(str(staged.path), part)
            self.fs.mv(part, remote)
        staged.discard()
        return staged.sha256

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._remote(key))

    def delete(self, key: str) -> None:
        if self.fs.exists(self._remote(key)):
            self.fs.rm(self._remote(key))
        (self.cache_dir / _relpath(key)).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        return self.fs.open(self._remote(key), "rb")

    def fetch(self, key: str) -> Path:
        local = self.cache_dir / _relpath(key)
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            with self.open(key) as src:
                staged = stage_file(src, self.tmp_dir)
            os.replace(staged.path, local)
        try:
            _verify_file(local, key)
        except BlobCorrupt:
            local.unlink(missing_ok=True)
            raise
        return local


def make_store(url: str, tmp_dir: Path) -> BlobStore:
    if "://" not in url or url.startswith("file://"):
        return LocalStore(Path(url.removeprefix("file://")), tmp_dir)
    return FsspecStore(url, tmp_dir / "blob-cache")
