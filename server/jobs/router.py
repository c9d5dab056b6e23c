from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from server.deps import MAX_ID, IdPath, QueueDep, SessionDep, SettingsDep, StoreDep, WriteGuard
from server.errors import NotFound
from server.jobs import service
from server.jobs.models import JobStatus
from server.jobs.schemas import AnalysisPublic, JobCreate, JobPublic, ResultPublic
from server.ratelimit import rate_limited
from workers import registry

router = APIRouter(prefix="/api", tags=["jobs"])


def _public(job, reused: bool = False) -> JobPublic:
    return JobPublic.model_validate(job).model_copy(update={"reused": reused})


@router.get("/analyses", response_model=list[AnalysisPublic])
def list_analyses(settings: SettingsDep):
    return [s.describe() for s in registry.specs(include_testing=settings.test_analyses)]


@router.post(
    "/jobs", status_code=202, response_model=list[JobPublic], dependencies=[WriteGuard, rate_limited("jobs")]
)
def create_jobs(session: SessionDep, queue: QueueDep, settings: SettingsDep, body: JobCreate):
    jobs = service.submit(
        session=session,
        queue=queue,
        analysis=body.analysis,
        checkpoint_ids=body.checkpoint_ids,
        dataset_id=body.dataset_id,
        params=body.params,
        max_attempts=settings.max_attempts,
        include_testing=settings.test_analyses,
    )
    return [_public(job, reused) for job, reused in jobs]


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(
    session: SessionDep,
    status: JobStatus | None = None,
    checkpoint_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    analysis: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    jobs = service.list_all(
        session=session,
        status=status,
        checkpoint_id=checkpoint_id,
        analysis=analysis,
        limit=limit,
        offset=offset,
    )
    return [_public(j) for j in jobs]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(session: SessionDep, job_id: IdPath):
    return _public(service.get(session=session, job_id=job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic, dependencies=[WriteGuard])
def cancel_job(session: SessionDep, job_id: IdPath):
    return _public(service.cancel(session=session, job_id=job_id))


@router.get("/jobs/{job_id}/result", response_model=ResultPublic)
def get_result(session: SessionDep, job_id: IdPath):
    res = service.result(session=session, job_id=job_id)
    artifacts = [{**a, "url": f"/api/jobs/{job_id}/artifacts/{a['name']}"} for a in res.artifacts]
    return {"job_id": job_id, "summary": res.summary, "artifacts": artifacts}


@router.get("/jobs/{job_id}/artifacts/{name}", response_class=Response)
def get_artifact(
    session: SessionDep, store: StoreDep, job_id: IdPath, name: Annotated[str, Path(max_length=100)]
):
    res = service.result(session=session, job_id=job_id)
    for art in res.artifacts:
        if art["name"] == name:
            return FileResponse(
                store.fetch(art["key"]),
                media_type=art["media_type"],
                filename=f"job{job_id}-{art['name']}.npz",
            )
    raise NotFound(f"job {job_id} has no artifact {name!r}")
