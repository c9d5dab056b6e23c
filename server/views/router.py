"""Share links. The owner's routes (``/api/views``) create, list and revoke views; a share token reads its
own view through ``/api/shared/{token}`` and nothing else. Every failure of a token is the same 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from server.checkpoints import service as checkpoints
from server.checkpoints.schemas import CheckpointPublic
from server.datasets.models import Dataset
from server.datasets.schemas import DatasetPublic
from server.deps import IdPath, SessionDep, WriteGuard
from server.errors import NotFound
from server.jobs import service as jobs
from server.ratelimit import rate_limited
from server.views import service
from server.views.schemas import SharedResult, SharedViewPublic, ViewCreate, ViewCreated, ViewPublic
from server.views.scope import of_state

router = APIRouter(tags=["share links"])
Token = Annotated[str, Path(max_length=64, description="the share link's secret")]


@router.post(
    "/api/views",
    status_code=201,
    response_model=ViewCreated,
    dependencies=[WriteGuard, rate_limited("share")],
)
def create_view(session: SessionDep, body: ViewCreate):
    """Freeze a compare-page state into a read-only link ``/s/<token>``; the token is shown only here."""
    view, token = service.create(session=session, state=body.state, expires_in_days=body.expires_in_days)
    return {**service.public(view), "token": token, "url": f"/s/{token}"}


@router.get("/api/views", response_model=list[ViewPublic], dependencies=[WriteGuard])
def list_views(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    """The shared links, newest first, without their tokens."""
    return [service.public(v) for v in service.list_all(session=session, limit=limit, offset=offset)]


@router.delete("/api/views/{token}", status_code=204, response_class=Response, dependencies=[WriteGuard])
def revoke_view(session: SessionDep, token: Token):
    """Revoke a link by its token: from then on it gets the same 404 as a token that never existed."""
    service.revoke_token(session=session, token=token)
    return Response(status_code=204)


@router.post("/api/views/{view_id}/revoke", response_model=ViewPublic, dependencies=[WriteGuard])
def revoke_view_by_id(session: SessionDep, view_id: IdPath):
    """Revoke a link from the list of shared links (which knows ids, not tokens)."""
    return service.public(service.revoke_id(session=session, view_id=view_id))


@router.get("/api/shared/{token}", response_model=SharedViewPublic)
def read_shared_view(session: SessionDep, token: Token):
    """The view's state with the checkpoints and dataset it names (those that still exist)."""
    view = service.resolve(session=session, token=token)
    found = checkpoints.list_by_ids(session=session, ids=view.state["ids"])
    dataset = view.state.get("dataset")
    sets = [session.get(Dataset, dataset)] if dataset else []
    return {
        "state": view.state,
        "checkpoints": [CheckpointPublic.model_validate(c).model_dump(mode="json") for c in found],
        "datasets": [DatasetPublic.model_validate(d).model_dump(mode="json") for d in sets if d is not None],
    }


@router.get("/api/shared/{token}/checkpoints/{checkpoint_id}", response_model=CheckpointPublic)
def read_shared_checkpoint(session: SessionDep, token: Token, checkpoint_id: IdPath):
    view = service.resolve(session=session, token=token)
    if not of_state(view.state).allows_checkpoint(checkpoint_id):
        raise NotFound(service.NOT_FOUND)
    try:
        return checkpoints.get(session=session, checkpoint_id=checkpoint_id)
    except NotFound:
        raise NotFound(service.NOT_FOUND) from None


@router.get("/api/shared/{token}/results", response_model=list[SharedResult])
def read_shared_results(
    session: SessionDep, token: Token, analysis: Annotated[str, Query(max_length=64, pattern=r"^[a-z_]+$")]
):
    """The newest result of ``analysis`` per checkpoint of the view, on the view's dataset."""
    view = service.resolve(session=session, token=token)
    found = jobs.latest_results(
        session=session,
        analysis=analysis,
        checkpoint_ids=view.state["ids"],
        dataset_id=view.state.get("dataset"),
    )
    return [
        {"checkpoint_id": cid, "analysis": analysis, "job_id": job.id, "summary": res.summary}
        for cid, (job, res) in found.items()
    ]
