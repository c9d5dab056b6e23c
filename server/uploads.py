"""Request-size limits and small parsers shared by the upload routes."""

from __future__ import annotations

import json
from typing import BinaryIO

from server.config import Settings
from server.errors import InvalidInput, PayloadTooLarge
from server.storage import StagedFile, stage_file

UPLOAD_PATHS = ("/api/checkpoints", "/api/datasets")


def stage_upload(
    file: BinaryIO | None, filename: str | None, upload_id: str | None, settings: Settings
) -> tuple[StagedFile, str | None]:
    """The bytes a registration names: a multipart file, or a completed resumable upload (consumed)."""
    from server.resumable.service import take_completed

    if (file is None) == (not upload_id):
        raise InvalidInput("send either a 'file' or the 'upload_id' of a completed upload, not both")
    if upload_id:
        completed = take_completed(upload_id, settings)
        return completed, completed.filename
    return stage_file(file, settings.tmp_dir, settings.max_upload_bytes), filename


def parse_shape(raw: str | None) -> list[int] | None:
    if raw is None or not raw.strip():
        return None
    try:
        shape = [int(p) for p in raw.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        raise InvalidInput(
            f"input_shape must be integers separated by commas, e.g. 3,32,32; got {raw!r}"
        ) from None
    if not 1 <= len(shape) <= 4 or any(d < 1 or d > 100_000 for d in shape):
        raise InvalidInput(f"input_shape must have 1 to 4 positive dimensions; got {raw!r}")
    return shape


class BodySizeLimit:
    """ASGI middleware: refuse upload bodies over the limit (413) before and while they stream in."""

    def __init__(self, app, get_limit):
        self.app = app
        self.get_limit = get_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] not in UPLOAD_PATHS:
            return await self.app(scope, receive, send)
        limit = self.get_limit() + 1024 * 1024  # slack for the multipart envelope and form fields
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await _reject(send, limit)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes")
            return message

        return await self.app(scope, limited_receive, send)


async def _reject(send, limit: int) -> None:
    body = json.dumps({"detail": f"upload exceeds the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
