from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from server.checkpoints import service
from server.checkpoints.schemas import CheckpointPublic, CheckpointUpdate
from server.deps import MAX_ID, IdPath, SessionDep, SettingsDep, StoreDep, WriteGuard
from server.ratelimit import rate_limited
from server.uploads import parse_shape, stage_upload
from workers.sandbox import LoadLimits

router = APIRouter(prefix="/api/checkpoints", tags=["checkpoints"])


@router.post(
    "", status_code=201, response_model=CheckpointPublic, dependencies=[WriteGuard, rate_limited("upload")]
)
def upload_checkpoint(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    architecture: Annotated[str, Form(max_length=100)],
    file: Annotated[
        UploadFile | None, File(description="a state_dict (.pt/.pth/.bin) or .safetensors file")
    ] = None,
    upload_id: Annotated[
        str | None, Form(max_length=100, description="instead of file: a completed upload (/api/uploads)")
    ] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    num_classes: Annotated[int | None, Form(ge=1, le=100_000)] = None,
    input_shape: Annotated[str | None, Form(description="e.g. 3,32,32", max_length=100)] = None,
    family: Annotated[str | None, Form(max_length=200)] = None,
    parent_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
    metadata: Annotated[str | None, Form(description="a JSON object")] = None,
):
    """Register a checkpoint from a multipart ``file`` or from a completed resumable upload."""
    meta = service.parse_metadata(metadata)
    shape = parse_shape(input_shape)
    source = file.file if file else None
    staged, filename = stage_upload(source, file.filename if file else None, upload_id, settings)
    return service.create(
        session=session,
        store=store,
        staged=staged,
        name=name or filename or "checkpoint",
        architecture=architecture,
        num_classes=num_classes,
        input_shape=shape,
        family=family or None,
        parent_id=parent_id,
        metadata=meta,
        limits=LoadLimits.from_settings(settings, tmp_dir=settings.tmp_dir),
    )


@router.get("", response_model=list[CheckpointPublic])
def list_checkpoints(
    session: SessionDep,
    family: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    return service.list_all(session=session, family=family, limit=limit, offset=offset)


@router.get("/{checkpoint_id}", response_model=CheckpointPublic)
def get_checkpoint(session: SessionDep, checkpoint_id: IdPath):
    return service.get(session=session, checkpoint_id=checkpoint_id)


@router.patch("/{checkpoint_id}", response_model=CheckpointPublic, dependencies=[WriteGuard])
def update_checkpoint(session: SessionDep, checkpoint_id: IdPath, body: CheckpointUpdate):
    return service.update(
        session=session, checkpoint_id=checkpoint_id, changes=body.model_dump(exclude_unset=True)
    )


@router.delete("/{checkpoint_id}", status_code=204, dependencies=[WriteGuard])
def delete_checkpoint(session: SessionDep, store: StoreDep, checkpoint_id: IdPath):
    service.delete(session=session, store=store, checkpoint_id=checkpoint_id)
    return Response(status_code=204)
