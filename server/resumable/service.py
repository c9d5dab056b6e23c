"""Resumable uploads on disk: ``<data_dir>/uploads/<id>.part`` and its state ``<id>.json``.

Both files are named by the upload id only (``secrets.token_urlsafe``, checked against
:data:`ID_PATTERN` before any path is built), never by anything else the client sent.

- The state's ``offset`` is the durable truth: it is rewritten (temp file, fsync, rename) only after
  the bytes it covers were fsynced. A partial file longer than its offset (the server died
  mid-PATCH) is cut back to it when the upload is next opened.
- A writer holds an exclusive ``flock`` on the partial file, so two requests, or two server
  processes, never append to one upload at once: the second gets 409 and retries after a HEAD.
- Each PATCH pushes ``expires_at`` back by ``upload_expiry_seconds``; an upload untouched that long
  answers 410 until :func:`sweep` removes it, and 404 afterwards.

Errors, on top of :mod:`server.errors` and :mod:`server.resumable.headers`::

    NotFound 404 ── UploadGone 410     the upload expired and is not swept yet
    ChecksumMismatch 460               Upload-Checksum does not match the PATCH body
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread
from starlette.requests import ClientDisconnect

from server.config import Settings
from server.errors import BadUpload, Conflict, NotFound, PayloadTooLarge, PruneScopeError
from server.resumable.headers import Checksum, TusError
from server.resumable.schemas import UploadState
from server.storage import CHUNK, StagedFile

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)
FLUSH_BYTES = 1024 * 1024  # a PATCH body is written in pieces of about this size, off the event loop


class UploadGone(NotFound):
    status_code = 410


class ChecksumMismatch(PruneScopeError):
    status_code = 460


@dataclass(frozen=True)
class CompletedUpload(StagedFile):
    """A completed upload moved into the staging directory, with what its creator said about it."""

    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str | None:
        return self.metadata.get("filename") or None


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def check_id(upload_id: str) -> str:
    if not ID_PATTERN.fullmatch(upload_id):
        raise NotFound("no such upload")
    return upload_id


def _part(settings: Settings, upload_id: str) -> Path:
    return uploads_dir(settings) / f"{check_id(upload_id)}.part"


def _sidecar(settings: Settings, upload_id: str) -> Path:
    return uploads_dir(settings) / f"{check_id(upload_id)}.json"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save(settings: Settings, state: UploadState) -> None:
    path = _sidecar(settings, state.id)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(state.model_dump_json().encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _load(settings: Settings, upload_id: str) -> UploadState:
    try:
        raw = _sidecar(settings, upload_id).read_bytes()
    except FileNotFoundError:
        raise NotFound("no such upload: it never existed, was deleted, registered or swept") from None
    try:
        return UploadState.model_validate_json(raw)
    except ValueError:
        raise NotFound("no such upload: its state is unreadable") from None


def _check_alive(state: UploadState, now: float | None = None) -> UploadState:
    if state.expires_at <= (time.time() if now is None else now):
        raise UploadGone("this upload expired; start a new one")
    return state


def create(*, settings: Settings, length: int, metadata: dict[str, str]) -> UploadState:
    if length > settings.max_upload_bytes:
        raise PayloadTooLarge(f"upload exceeds the limit of {settings.max_upload_bytes} bytes")
    uploads_dir(settings).mkdir(parents=True, exist_ok=True)
    now = time.time()
    state = UploadState(
        id=secrets.token_urlsafe(24),
        length=length,
        offset=0,
        created_at=now,
        expires_at=now + settings.upload_expiry_seconds,
        metadata=metadata,
    )
    _part(settings, state.id).open("xb").close()  # the part first: a state file always has its part
    _save(settings, state)
    return state


def status(*, settings: Settings, upload_id: str) -> UploadState:
    return _check_alive(_load(settings, upload_id))


class _Locked:
    """An upload opened for writing under an exclusive flock, its file positioned at its offset."""

    def __init__(self, settings: Settings, upload_id: str):
        self.settings = settings
        try:
            self.file: BinaryIO = _part(settings, upload_id).open("r+b")
        except FileNotFoundError:
            raise NotFound("no such upload: it never existed, was deleted, registered or swept") from None
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise Conflict(
                "another request is writing this upload; ask HEAD for its offset and retry"
            ) from None
        try:
            self.state = _check_alive(_load(settings, upload_id))
            size = os.fstat(self.file.fileno()).st_size
            if size > self.state.offset:  # the server died mid-PATCH: drop what the state does not cover
                self.file.truncate(self.state.offset)
            elif size < self.state.offset:  # never expected (bytes are fsynced first); trust the bytes
                self.state = self.state.model_copy(update={"offset": size})
            self.file.seek(self.state.offset)
        except BaseException:
            self.release()
            raise

    def write(self, data: bytearray, digest) -> None:
        self.file.write(data)
        if digest is not None:
            digest.update(data)

    def commit(self, received: int) -> UploadState:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.state = self.state.model_copy(
            update={
                "offset": self.state.offset + received,
                "expires_at": time.time() + self.settings.upload_expiry_seconds,
            }
        )
        _save(self.settings, self.state)
        return self.state

    def rollback(self) -> None:
        """Forget everything this request appended."""
        if self.file.closed:
            return
        try:
            self.file.flush()
        except OSError:
            pass
        self.file.truncate(self.state.offset)
        self.file.seek(self.state.offset)

    def release(self) -> None:
        self.file.close()  # closing the descriptor drops the flock


async def append(
    *,
    settings: Settings,
    upload_id: str,
    offset: int,
    chunks: AsyncIterator[bytes],
    content_length: int | None = None,
    checksum: Checksum | None = None,
) -> UploadState:
    """Append a PATCH body at ``offset``; the body is never held in memory beyond ``FLUSH_BYTES``.

    A body that would pass ``Upload-Length``, or fails its checksum, appends nothing. A client that
    disconnects keeps what arrived (unless it sent a checksum, which then cannot be verified).
    """
    locked = await to_thread.run_sync(_Locked, settings, upload_id)
    try:
        return await _append_locked(locked, offset, chunks, content_length, checksum)
    except BaseException:
        locked.rollback()
        raise
    finally:
        locked.release()


async def _append_locked(
    locked: _Locked,
    offset: int,
    chunks: AsyncIterator[bytes],
    content_length: int | None,
    checksum: Checksum | None,
) -> UploadState:
    state = locked.state
    if offset != state.offset:
        raise Conflict(
            f"Upload-Offset is {offset} but the upload holds {state.offset} bytes; "
            "ask HEAD for the offset and resume from there"
        )
    remaining = state.length - state.offset
    too_large = PayloadTooLarge(
        f"this PATCH would pass Upload-Length ({state.length} bytes, {remaining} still to come); "
        "nothing was appended"
    )
    if content_length is not None and content_length > remaining:
        raise too_large
    digest = hashlib.new(checksum.algorithm) if checksum else None
    received = 0
    pending = bytearray()
    disconnected = False
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > remaining:
                raise too_large
            pending += chunk
            if len(pending) >= FLUSH_BYTES:
                await to_thread.run_sync(locked.write, pending, digest)
                pending.clear()
    except ClientDisconnect:
        disconnected = True
    if pending:
        await to_thread.run_sync(locked.write, pending, digest)
    if checksum is not None and (disconnected or digest.digest() != checksum.digest):
        locked.rollback()
        if disconnected:
            raise TusError("the connection dropped before the body was complete; nothing was appended")
        raise ChecksumMismatch(f"the PATCH body does not match its Upload-Checksum ({checksum.algorithm})")
    return await to_thread.run_sync(locked.commit, received)


def terminate(*, settings: Settings, upload_id: str) -> None:
    locked = _Locked(settings, upload_id)
    try:
        _sidecar(settings, upload_id).unlink(missing_ok=True)
        _part(settings, upload_id).unlink(missing_ok=True)
    finally:
        locked.release()


def _move(src: Path, dest: Path) -> None:
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copyfile(src, dest)  # another filesystem: copy once, then drop the original
        src.unlink()


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def take_completed(upload_id: str, settings: Settings) -> CompletedUpload:
    """Consume a completed upload: move its bytes into ``settings.tmp_dir`` and hash them (sha256).

    For any route that accepts a file (``POST /api/checkpoints`` with ``upload_id``; datasets may
    do the same): pass the result as the ``staged`` file, which the service stores or discards.
    The upload is gone afterwards whatever happens next. Raises NotFound (404) for an unknown id,
    UploadGone (410) for an expired one, Conflict (409) for an incomplete or busy one, and
    BadUpload (422) when the creator's ``sha256`` metadata does not match the bytes.
    """
    locked = _Locked(settings, upload_id)
    try:
        state = locked.state
        if not state.complete:
            raise Conflict(
                f"upload is incomplete: {state.offset} of {state.length} bytes received; "
                "finish it (PATCH) before registering it"
            )
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        dest = settings.tmp_dir / f"upload-{secrets.token_hex(16)}"
        _sidecar(settings, upload_id).unlink()
        _move(_part(settings, upload_id), dest)
    finally:
        locked.release()
    try:
        sha256, size = _sha256(dest)
        expected = state.metadata.get("sha256", "").strip().lower()
        if expected and expected != sha256:
            raise BadUpload(f"the uploaded bytes have sha256 {sha256}, not the {expected!r:.70} announced")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return CompletedUpload(dest, sha256, size, metadata=dict(state.metadata))


def _older_than(path: Path, seconds: float, now: float) -> bool:
    try:
        return path.stat().st_mtime < now - seconds
    except FileNotFoundError:
        return False


def _sweep_one(settings: Settings, upload_id: str, now: float) -> bool:
    """Remove one upload if it expired, under its lock (a PATCH holding it proves it is alive)."""
    part, sidecar = _part(settings, upload_id), _sidecar(settings, upload_id)
    with part.open("rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            expired = _load(settings, upload_id).expires_at <= now
        except NotFound:  # registered or deleted while we waited, or a corrupt state file
            expired = _older_than(sidecar, settings.upload_expiry_seconds, now)
        if expired:
            sidecar.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
        return expired


def sweep(settings: Settings, now: float | None = None) -> int:
    """Remove expired uploads and leftovers (parts without state, stale temp files); returns a count."""
    root = uploads_dir(settings)
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    grace = settings.upload_expiry_seconds
    removed = 0
    for path in sorted(root.iterdir()):
        upload_id, _, suffix = path.name.partition(".")
        if not ID_PATTERN.fullmatch(upload_id):
            continue  # not ours: leave it alone
        try:
            if suffix == "json" and not _part(settings, upload_id).exists():
                path.unlink(missing_ok=True)  # a state without its part (a crash while registering)
            elif suffix == "json":
                removed += _sweep_one(settings, upload_id, now)
            elif suffix in ("part", "json.tmp") and not _sidecar(settings, upload_id).exists():
                if _older_than(path, grace, now):  # (a fresh part may be an upload being created)
                    path.unlink(missing_ok=True)
                    removed += suffix == "part"
        except FileNotFoundError:
            continue
    if removed:
        logger.info("swept %s expired uploads", removed)
    return removed
