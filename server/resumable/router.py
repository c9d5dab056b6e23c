"""tus 1.0.0 at ``/api/uploads``: OPTIONS, POST (creation), HEAD, PATCH, DELETE (termination)."""

from __future__ import annotations

from email.utils import formatdate
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from server.deps import SettingsDep, WriteGuard
from server.ratelimit import rate_limited
from server.resumable import service
from server.resumable.headers import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    TUS_VERSION,
    TusError,
    check_version,
    encode_metadata,
    parse_checksum,
    parse_content_type,
    parse_int,
    parse_metadata,
)
from server.resumable.schemas import UploadPublic, UploadState

PREFIX = "/api/uploads"
router = APIRouter(prefix=PREFIX, tags=["uploads"])

TusResumable = Annotated[str | None, Header(alias="Tus-Resumable", description="must be 1.0.0")]
UploadLength = Annotated[str | None, Header(alias="Upload-Length", description="total bytes")]
UploadMetadata = Annotated[
    str | None, Header(alias="Upload-Metadata", description="`key base64,...`: filename, kind, sha256")
]
UploadDeferLength = Annotated[str | None, Header(alias="Upload-Defer-Length", description="not supported")]
UploadOffset = Annotated[str | None, Header(alias="Upload-Offset", description="where this body starts")]
UploadChecksum = Annotated[
    str | None, Header(alias="Upload-Checksum", description="`sha256 <base64 digest>` of this body")
]


def _state_headers(state: UploadState) -> dict[str, str]:
    return {
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.length),
        "Upload-Expires": formatdate(state.expires_at, usegmt=True),
        "Cache-Control": "no-store",
    }


@router.options("", status_code=204, response_class=Response)
def describe_uploads(settings: SettingsDep) -> Response:
    """What this server speaks: tus version, extensions, largest upload, checksum algorithms."""
    headers = {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
    return Response(status_code=204, headers=headers)


@router.post(
    "", status_code=201, response_model=UploadPublic, dependencies=[WriteGuard, rate_limited("upload")]
)
def create_upload(
    request: Request,
    response: Response,
    settings: SettingsDep,
    tus_resumable: TusResumable = None,
    upload_length: UploadLength = None,
    upload_metadata: UploadMetadata = None,
    upload_defer_length: UploadDeferLength = None,
) -> UploadPublic:
    """Create an upload of ``Upload-Length`` bytes; its URL is in ``Location``."""
    check_version(tus_resumable)
    if upload_defer_length is not None:
        raise TusError("Upload-Defer-Length is not supported: send Upload-Length")
    length = parse_int(upload_length, "Upload-Length")
    state = service.create(settings=settings, length=length, metadata=parse_metadata(upload_metadata))
    location = f"{request.scope.get('root_path', '')}{PREFIX}/{state.id}"
    response.headers.update({"Location": location, **_state_headers(state)})
    return UploadPublic(
        id=state.id, location=location, length=state.length, offset=state.offset, expires_at=state.expires_at
    )


@router.head("/{upload_id}", response_class=Response, include_in_schema=False)  # no body, even on errors
def get_upload_offset(upload_id: str, settings: SettingsDep, tus_resumable: TusResumable = None) -> Response:
    """How many bytes the server holds (``Upload-Offset``): where a client resumes."""
    check_version(tus_resumable)
    state = service.status(settings=settings, upload_id=service.check_id(upload_id))
    headers = _state_headers(state)
    if state.metadata:
        headers["Upload-Metadata"] = encode_metadata(state.metadata)
    return Response(status_code=200, headers=headers)


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    dependencies=[WriteGuard],
)
async def append_upload(
    upload_id: str,
    request: Request,
    settings: SettingsDep,
    tus_resumable: TusResumable = None,
    upload_offset: UploadOffset = None,
    upload_checksum: UploadChecksum = None,
) -> Response:
    """Append the body (``application/offset+octet-stream``) at ``Upload-Offset``; streamed to disk.

    The body is not described in this schema (its media type is tus's own). After a dropped
    connection, ``HEAD /api/uploads/{upload_id}`` answers the ``Upload-Offset`` to resume from
    (HEAD is left out of this schema: its errors carry no body).
    """
    check_version(tus_resumable)
    service.check_id(upload_id)
    parse_content_type(request.headers.get("content-type"))
    offset = parse_int(upload_offset, "Upload-Offset")
    checksum = parse_checksum(upload_checksum)
    declared = request.headers.get("content-length")
    state = await service.append(
        settings=settings,
        upload_id=upload_id,
        offset=offset,
        chunks=request.stream(),
        content_length=parse_int(declared, "Content-Length") if declared is not None else None,
        checksum=checksum,
    )
    return Response(status_code=204, headers=_state_headers(state))


@router.delete("/{upload_id}", status_code=204, response_class=Response, dependencies=[WriteGuard])
def delete_upload(upload_id: str, settings: SettingsDep, tus_resumable: TusResumable = None) -> Response:
    """Abandon an upload: its bytes are deleted and its URL answers 404."""
    check_version(tus_resumable)
    service.terminate(settings=settings, upload_id=service.check_id(upload_id))
    return Response(status_code=204)


class TusResponseHeaders:
    """ASGI middleware: every response under ``/api/uploads``, errors too, says ``Tus-Resumable``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"tus-resumable", TUS_VERSION.encode()))
                if message["status"] == 412:
                    headers.append((b"tus-version", TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
