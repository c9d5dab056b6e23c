from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from server.datasets import service
from server.datasets.schemas import DatasetBuiltinCreate, DatasetOptions, DatasetPathCreate, DatasetPublic
from server.deps import IdPath, SessionDep, SettingsDep, StoreDep, WriteGuard
from server.errors import InvalidInput
from server.ratelimit import rate_limited
from server.uploads import stage_upload

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [DatasetBuiltinCreate.model_json_schema(), DatasetPathCreate.model_json_schema()]
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".npz (x, y), CIFAR-10 binary batch or a zip / tar.gz of them, "
                            "CIFAR-C zip (<corruption>.npy + labels.npy) or ImageFolder zip",
                        },
                        "upload_id": {
                            "type": "string",
                            "description": "instead of file: a completed resumable upload (/api/uploads)",
                        },
                        "name": {"type": "string", "maxLength": 200},
                        "split": {"type": "string", "enum": ["train", "test", "all"]},
                        "image_size": {"type": "string", "description": "H,W or one number"},
                        "mean": {"type": "string", "description": "per-channel, comma-separated"},
                        "std": {"type": "string", "description": "per-channel, comma-separated"},
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    dependencies=[WriteGuard, rate_limited("upload")],
    openapi_extra=_BODY_DOC,
)
async def create_dataset(request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep):
    """Register a built-in set (JSON ``{"builtin": "digits"}``), a file under the dataset roots (JSON
    ``{"path": "/abs/file", "name": ...}``) or upload one (multipart ``file``, ``name``, options)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        payload = _json(await request.body())
        if "path" in payload:
            body = _parse_obj(DatasetPathCreate, payload, '{"path": "/abs/file", "name": ...}')
            return await run_in_threadpool(service.create_path, session=session, settings=settings, body=body)
        body = _parse_obj(DatasetBuiltinCreate, payload, '{"builtin": "digits"}')
        return await run_in_threadpool(
            service.create_builtin, session=session, store=store, name=body.builtin
        )
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput(
            'send JSON {"builtin": ...} or {"path": ...}, or a multipart form with a \'file\' field'
        )
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        upload_id = form.get("upload_id")
        if not isinstance(upload, UploadFile) and not isinstance(upload_id, str):
            raise InvalidInput(
                "the multipart form needs a 'file' field holding the data set, or the 'upload_id' "
                "of a completed resumable upload"
            )
        upload = upload if isinstance(upload, UploadFile) else None
        upload_id = upload_id if isinstance(upload_id, str) else None
        fields = {k: v for k, v in form.items() if k in ("split", "image_size", "mean", "std") and v}
        options = _parse_obj(DatasetOptions, fields)
        name = form.get("name")
        staged, filename = await run_in_threadpool(
            stage_upload,
            upload.file if upload else None,
            upload.filename if upload else None,
            upload_id,
            settings,
        )
        name = name if isinstance(name, str) and name else (filename or "dataset")
        return await run_in_threadpool(
            service.create_upload,
            session=session,
            store=store,
            staged=staged,
            name=name,
            options=options,
            settings=settings,
        )


def _json(raw: bytes) -> dict:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput('expected a JSON object: {"builtin": ...} or {"path": ...}')
    return payload


def _parse_obj(model, fields: dict, example: str | None = None):
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(f"expected {example}: {_first(exc)}" if example else _first(exc)) from None


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


@router.get("", response_model=list[DatasetPublic])
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    return service.list_all(session=session, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(session: SessionDep, dataset_id: IdPath):
    return service.get(session=session, dataset_id=dataset_id)
