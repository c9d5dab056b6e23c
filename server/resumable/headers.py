"""Parsers for the tus request headers. Each raises :class:`TusError` (400) with the header's name."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from server.errors import PruneScopeError

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration,checksum"
CHECKSUM_ALGORITHMS = {"sha1": 20, "sha256": 32}  # algorithm -> digest bytes
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 4096

_INT = re.compile(r"\d{1,19}")
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class TusError(PruneScopeError):
    """A tus header is missing or malformed."""

    status_code = 400


class TusVersionUnsupported(PruneScopeError):
    status_code = 412


class UnsupportedMediaType(PruneScopeError):
    status_code = 415


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def check_version(raw: str | None) -> None:
    if raw != TUS_VERSION:
        raise TusVersionUnsupported(f"send the header Tus-Resumable: {TUS_VERSION} (got {raw!r:.40})")


def parse_int(raw: str | None, header: str) -> int:
    if raw is None:
        raise TusError(f"the {header} header is required")
    if not _INT.fullmatch(raw.strip()):
        raise TusError(f"{header} must be a non-negative integer (got {raw!r:.40})")
    return int(raw)


def parse_metadata(raw: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs; values are UTF-8 text."""
    if raw is None or not raw.strip():
        return {}
    if len(raw) > MAX_METADATA_CHARS:
        raise TusError(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    metadata: dict[str, str] = {}
    for pair in raw.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not _KEY.fullmatch(key):
            raise TusError(
                f"Upload-Metadata keys are 1-64 letters, digits, '_', '.' or '-' (got {key!r:.70})"
            )
        if key in metadata:
            raise TusError(f"Upload-Metadata repeats the key {key!r}")
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise TusError(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
        if "\x00" in value:
            raise TusError(f"Upload-Metadata value of {key!r} contains a NUL character")
        metadata[key] = value
    return metadata


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in metadata.items()
    )


def parse_checksum(raw: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` of one PATCH body."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    size = CHECKSUM_ALGORITHMS.get(algorithm.lower())
    if size is None:
        supported = ", ".join(CHECKSUM_ALGORITHMS)
        raise TusError(f"Upload-Checksum algorithm {algorithm!r:.40} is not supported (use {supported})")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != size:
        raise TusError(f"Upload-Checksum must be '{algorithm.lower()} <base64 of the {size}-byte digest>'")
    return Checksum(algorithm.lower(), digest)


def parse_content_type(raw: str | None) -> None:
    if (raw or "").split(";")[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(f"PATCH bodies must be sent as Content-Type: {OFFSET_CONTENT_TYPE}")
