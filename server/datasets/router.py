from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from server.datasets import service
from server.datasets.schemas import DatasetBuiltinCreate, DatasetPublic
from server.deps import IdPath, SessionDep, SettingsDep, StoreDep, WriteGuard
from server.errors import InvalidInput
from server.storage import stage_file

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DatasetBuiltinCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": ".npz with x, y"},
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            },
        },
    }
}


@router.post(
    "", status_code=201, response_model=DatasetPublic, dependencies=[WriteGuard], openapi_extra=_BODY_DOC
)
async def create_dataset(request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep):
    """Register a built-in data set (JSON ``{"builtin": "digits"}``) or upload an ``.npz`` (multipart)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = DatasetBuiltinCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise InvalidInput(f'expected {{"builtin": "digits"}}: {exc.errors()[0]["msg"]}') from None
        return await run_in_threadpool(
            service.create_builtin, session=session, store=store, name=body.builtin
        )
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("send JSON {\"builtin\": ...} or a multipart form with a 'file' field")
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the multipart form needs a 'file' field holding an .npz file")
        name = form.get("name")
        name = name if isinstance(name, str) and name else (upload.filename or "dataset")
        staged = await run_in_threadpool(stage_file, upload.file, settings.tmp_dir, settings.max_upload_bytes)
        return await run_in_threadpool(
            service.create_upload, session=session, store=store, staged=staged, name=name
        )


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
