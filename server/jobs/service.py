"""Submitting, listing and cancelling jobs; reading results."""

from __future__ import annotations

import hashlib
import json
import logging

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.checkpoints.models import Checkpoint
from server.datasets.models import Dataset
from server.db import utcnow
from server.errors import Conflict, InvalidInput, NotFound
from server.jobs.models import FINISHED, Job, JobStatus, Result
from server.queue import JobQueue
from workers import registry

logger = logging.getLogger(__name__)

REUSABLE = (JobStatus.queued, JobStatus.running, JobStatus.succeeded)


def cache_key(
    *, analysis: str, version: str, checkpoint_sha: str, dataset_sha: str | None, params: dict
) -> str:
    """Identical work has an identical key: same bytes in, same analysis code, same parameters."""
    canonical = json.dumps(
        [analysis, version, checkpoint_sha, dataset_sha, params], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validate_params(spec: registry.AnalysisSpec, params: dict) -> dict:
    try:
        return spec.params_model.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidInput(f"invalid parameters for {spec.name!r}: {problems}") from None


def _check_compatible(ckpt: Checkpoint, ds: Dataset) -> None:
    if list(ds.input_shape) != list(ckpt.input_shape):
        raise InvalidInput(
            f"dataset {ds.id} has samples of shape {tuple(ds.input_shape)} but checkpoint {ckpt.id} "
            f"expects {tuple(ckpt.input_shape)}"
        )
    if ds.num_classes > ckpt.num_classes:
        raise InvalidInput(
            f"dataset {ds.id} has {ds.num_classes} classes "
            f"but checkpoint {ckpt.id} predicts {ckpt.num_classes}"
        )


def _check_corrupted_dataset(session: Session, params: dict, ds: Dataset) -> None:
    """A ``corrupted_dataset_id`` must name a CIFAR-C set of the same image shape holding the corruptions."""
    cid = params.get("corrupted_dataset_id")
    if cid is None:
        return
    corrupted = session.get(Dataset, cid)
    if corrupted is None:
        raise InvalidInput(f"corrupted dataset {cid} not found")
    if corrupted.format != "cifar-c":
        raise InvalidInput(f"dataset {cid} is {corrupted.format!r}, not a CIFAR-C set of corrupted images")
    if list(corrupted.input_shape) != list(ds.input_shape):
        raise InvalidInput(
            f"the corrupted set's images are {tuple(corrupted.input_shape)}, "
            f"the data set's {tuple(ds.input_shape)}"
        )
    available = list((corrupted.meta or {}).get("corruptions", []))
    missing = [c for c in params.get("corruptions") or [] if c not in available]
    if missing:
        raise InvalidInput(f"dataset {cid} holds no {missing}; it holds {', '.join(available)}")


def _checkpoint_params(session: Session, spec: registry.AnalysisSpec, params: dict, ckpt: Checkpoint) -> dict:
    """The job's own parameters: the spec's per-checkpoint defaults, and a checked target checkpoint."""
    if spec.per_checkpoint is None:
        return params
    try:
        params = spec.per_checkpoint(params, {"id": ckpt.id, "parent_id": ckpt.parent_id})
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    target_id = params.get("target_checkpoint_id")
    if target_id is not None:
        target = session.get(Checkpoint, target_id)
        if target is None:
            raise InvalidInput(f"target checkpoint {target_id} not found")
        mine = (ckpt.architecture, ckpt.num_classes, list(ckpt.input_shape))
        theirs = (target.architecture, target.num_classes, list(target.input_shape))
        if mine == theirs and ckpt.parameter_count != target.parameter_count:
            raise InvalidInput(
                f"checkpoint {ckpt.id} has {ckpt.parameter_count} parameters and target {target.id} "
                f"{target.parameter_count}: interpolation needs equal shapes (a channel-pruned child has "
                "fewer parameters than its parent)"
            )
        if mine != theirs:
            raise InvalidInput(
                f"checkpoint {ckpt.id} ({mine[0]}, {mine[1]} classes, input {tuple(mine[2])}) and target "
                f"{target.id} ({theirs[0]}, {theirs[1]} classes, input {tuple(theirs[2])}) differ in shape"
            )
    return params


def submit(
    *,
    session: Session,
    queue: JobQueue,
    analysis: str,
    checkpoint_ids: list[int],
    dataset_id: int | None,
    params: dict,
    max_attempts: int,
    include_testing: bool = False,
) -> list[tuple[Job, bool]]:
    """One job per checkpoint; identical work already queued, running or done is returned instead.

    Commits, then enqueues the new jobs' ids (the row must exist before a worker looks for it; a
    failed enqueue is repaired by the workers' resync of queued rows).
    """
    try:
        spec = registry.get(analysis, include_testing=include_testing)
    except registry.UnknownAnalysis as exc:
        raise InvalidInput(str(exc)) from None
    params = _validate_params(spec, params)
    ds = None
    if dataset_id is not None:
        ds = session.get(Dataset, dataset_id)
        if ds is None:
            raise NotFound(f"dataset {dataset_id} not found")
    elif (reason := spec.dataset_reason(params)) is not None:
        raise InvalidInput(reason)
    if ds is not None:
        _check_corrupted_dataset(session, params, ds)
    out: list[tuple[Job, bool]] = []
    seen: set[int] = set()
    for cid in checkpoint_ids:
        if cid in seen:
            continue
        seen.add(cid)
        ckpt = session.get(Checkpoint, cid)
        if ckpt is None:
            raise NotFound(f"checkpoint {cid} not found")
        if ds is not None and not spec.testing:
            _check_compatible(ckpt, ds)
        job_params = _checkpoint_params(session, spec, params, ckpt)
        key = cache_key(
            analysis=spec.name,
            version=spec.version,
            checkpoint_sha=ckpt.sha256,
            dataset_sha=ds.view_key if ds else None,
            params=job_params,
        )
        existing = session.scalar(
            select(Job).where(Job.cache_key == key, Job.status.in_(REUSABLE)).order_by(Job.id.desc()).limit(1)
        )
        if existing is not None:
            out.append((existing, True))
            continue
        job = Job(
            analysis=spec.name,
            analysis_version=spec.version,
            checkpoint_id=ckpt.id,
            dataset_id=ds.id if ds else None,
            params=job_params,
            cache_key=key,
            status=JobStatus.queued,
            max_attempts=max_attempts,
            message="queued",
        )
        session.add(job)
        out.append((job, False))
    session.commit()
    for job, reused in out:
        if not reused:
            try:
                queue.enqueue(job.id)
            except Exception:  # noqa: BLE001 - the row is the truth; workers re-enqueue lost ids
                logger.exception("could not enqueue job %s; workers will pick it up on resync", job.id)
    return out


def get(*, session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def list_all(
    *,
    session: Session,
    status: str | None = None,
    checkpoint_id: int | None = None,
    analysis: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc())
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if checkpoint_id is not None:
        stmt = stmt.where(Job.checkpoint_id == checkpoint_id)
    if analysis is not None:
        stmt = stmt.where(Job.analysis == analysis)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def cancel(*, session: Session, job_id: int) -> Job:
    """Cancel a queued or running job. A running worker notices at its next heartbeat or progress write."""
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if job.status in FINISHED:
        raise Conflict(f"job {job_id} already {job.status}")
    job.status = JobStatus.cancelled
    job.lease_token = None
    job.lease_expires_at = None
    job.message = "cancelled"
    job.finished_at = utcnow()
    session.commit()
    return job


def result(*, session: Session, job_id: int) -> Result:
    job = get(session=session, job_id=job_id)
    res = session.scalar(select(Result).where(Result.job_id == job_id))
    if res is None:
        raise NotFound(f"job {job_id} has no result (status: {job.status})")
    return res


def succeeded_results(
    *, session: Session, analysis: str, checkpoint_ids: list[int], dataset_id: int | None = None
) -> list[tuple[Job, Result]]:
    """Every succeeded result of ``analysis`` for these checkpoints, oldest first."""
    stmt = (
        select(Job, Result)
        .join(Result, Result.job_id == Job.id)
        .where(
            Job.analysis == analysis, Job.checkpoint_id.in_(checkpoint_ids), Job.status == JobStatus.succeeded
        )
        .order_by(Job.id)
    )
    if dataset_id is not None:
        stmt = stmt.where(Job.dataset_id == dataset_id)
    return [(job, res) for job, res in session.execute(stmt)]


def latest_jobs(
    *, session: Session, analysis: str, checkpoint_ids: list[int], dataset_id: int | None
) -> dict[int, Job]:
    """The newest job of ``analysis`` on ``dataset_id`` per checkpoint, whatever its status (one query)."""
    newest = (
        select(func.max(Job.id))
        .where(
            Job.analysis == analysis,
            Job.checkpoint_id.in_(checkpoint_ids),
            Job.dataset_id == dataset_id if dataset_id is not None else Job.dataset_id.is_(None),
        )
        .group_by(Job.checkpoint_id)
    )
    return {job.checkpoint_id: job for job in session.scalars(select(Job).where(Job.id.in_(newest)))}


def latest_results(
    *, session: Session, analysis: str, checkpoint_ids: list[int], dataset_id: int | None = None
) -> dict[int, tuple[Job, Result]]:
    """The newest succeeded result of ``analysis`` per checkpoint (what the compare page shows)."""
    found = succeeded_results(
        session=session, analysis=analysis, checkpoint_ids=checkpoint_ids, dataset_id=dataset_id
    )
    return {job.checkpoint_id: (job, res) for job, res in found}  # oldest first: the newest wins
