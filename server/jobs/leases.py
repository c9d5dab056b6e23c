"""The job lease protocol: how workers claim, keep and give up a job row.

A worker may run a job only while it holds the row's lease:

- :func:`claim` is one conditional ``UPDATE`` (atomic on SQLite and PostgreSQL:
  a concurrent claimer re-evaluates the ``WHERE`` and matches no row), taking a
  queued job, or a running one whose lease expired, and minting a fresh token.
- :func:`heartbeat` and :func:`report_progress` extend the lease while the token
  still matches; a ``False`` return means the lease is gone (expired and taken,
  or the job was cancelled) and the worker must stop.
- :func:`complete` and :func:`fail` are fenced the same way, so a worker that
  lost its lease (paused, partitioned) can never overwrite the current owner's
  work. The result row is inserted in the same transaction as the status flip,
  and ``results.job_id`` is unique: a job has at most one stored result.
- :func:`reap` re-queues jobs whose lease expired and fails those that used up
  ``max_attempts``; it is idempotent and safe to run from many processes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

# Imported for their mappers too: a flush of Job rows (reap, fail) needs the tables its foreign keys
# reference, and a fresh worker process imports nothing else that defines them.
from server.checkpoints.models import Checkpoint
from server.datasets.models import Dataset
from server.db import utcnow
from server.jobs.models import Job, JobStatus, Result


@dataclass(frozen=True)
class Lease:
    job_id: int
    token: str
    worker_id: str
    lease_seconds: float
    attempt: int


def _fenced(lease: Lease):
    return and_(Job.id == lease.job_id, Job.lease_token == lease.token, Job.status == JobStatus.running)


def claim(*, session: Session, job_id: int, worker_id: str, lease_seconds: float) -> Lease | None:
    now = utcnow()
    token = secrets.token_hex(16)
    claimable = or_(
        Job.status == JobStatus.queued,
        and_(Job.status == JobStatus.running, Job.lease_expires_at < now),
    )
    stmt = (
        update(Job)
        .where(Job.id == job_id, claimable, Job.attempts < Job.max_attempts)
        .values(
            status=JobStatus.running,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            started_at=now,
            message="started",
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:
        return None
    attempt = session.scalar(select(Job.attempts).where(Job.id == job_id))
    return Lease(job_id, token, worker_id, lease_seconds, attempt)


def heartbeat(*, session: Session, lease: Lease) -> bool:
    now = utcnow()
    stmt = (
        update(Job)
        .where(_fenced(lease))
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease.lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def report_progress(*, session: Session, lease: Lease, progress: float, message: str) -> bool:
    now = utcnow()
    stmt = (
        update(Job)
        .where(_fenced(lease))
        .values(
            progress=min(max(float(progress), 0.0), 1.0),
            message=message[:500],
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease.lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def complete(*, session: Session, lease: Lease, summary: dict, artifacts: list[dict]) -> bool:
    """Mark the job succeeded and store its result, if this lease still owns it."""
    stmt = (
        update(Job)
        .where(_fenced(lease))
        .values(
            status=JobStatus.succeeded,
            progress=1.0,
            message="done",
            lease_token=None,
            lease_expires_at=None,
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:
        return False
    session.add(Result(job_id=lease.job_id, summary=summary, artifacts=artifacts))
    session.flush()
    return True


def fail(*, session: Session, lease: Lease, error: str, retry: bool) -> str | None:
    """Record a failed attempt. Returns the new status, or None when the lease was already gone.

    A retryable failure goes back to ``queued`` while attempts remain; the caller re-enqueues it.
    """
    job = session.scalar(select(Job).where(_fenced(lease)))
    if job is None:
        return None
    if retry and job.attempts < job.max_attempts:
        job.status = JobStatus.queued
        job.message = f"attempt {job.attempts} failed, retrying: {error}"[:500]
    else:
        job.status = JobStatus.failed
        job.message = "failed"
        job.finished_at = utcnow()
    job.error = error
    job.lease_token = None
    job.lease_expires_at = None
    session.flush()
    return job.status


def reap(*, session: Session) -> list[int]:
    """Re-queue running jobs whose lease expired; fail those out of attempts. Returns ids to re-enqueue."""
    now = utcnow()
    expired = session.scalars(
        select(Job).where(Job.status == JobStatus.running, Job.lease_expires_at < now).with_for_update()
    ).all()
    requeue = []
    for job in expired:
        lost = f"worker {job.worker_id} stopped heartbeating (attempt {job.attempts})"
        job.lease_token = None
        job.lease_expires_at = None
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.failed
            job.message = "failed"
            job.error = f"{lost}; gave up after {job.attempts} attempts"
            job.finished_at = now
        else:
            job.status = JobStatus.queued
            job.message = f"{lost}; re-queued"
            requeue.append(job.id)
    session.flush()
    return requeue


def queued_ids(*, session: Session) -> list[int]:
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.id)))


def release(*, session: Session, lease: Lease) -> bool:
    """Hand a job back untouched (worker shutting down): queued again, the attempt not counted."""
    stmt = (
        update(Job)
        .where(_fenced(lease))
        .values(
            status=JobStatus.queued,
            lease_token=None,
            lease_expires_at=None,
            attempts=Job.attempts - 1,
            message="worker shut down; re-queued",
        )
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def job_inputs(*, session: Session, job_id: int) -> dict | None:
    """The plain facts a worker needs to run a job (no ORM objects cross into the worker)."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    ckpt = session.get(Checkpoint, job.checkpoint_id)
    ds = session.get(Dataset, job.dataset_id) if job.dataset_id is not None else None
    params = job.params or {}
    target_id = params.get("target_checkpoint_id")
    target = session.get(Checkpoint, target_id) if isinstance(target_id, int) else None
    corrupted_id = params.get("corrupted_dataset_id")
    corrupted = session.get(Dataset, corrupted_id) if isinstance(corrupted_id, int) else None
    return {
        "job_id": job.id,
        "analysis": job.analysis,
        "params": job.params,
        "checkpoint": _checkpoint_facts(ckpt),
        "target": _checkpoint_facts(target) if target is not None else None,
        "reuse": _reusable_artifacts(session, job),
        "dataset": _dataset_facts(ds) if ds is not None else None,
        "corrupted_dataset": _dataset_facts(corrupted) if corrupted is not None else None,
    }


def _dataset_facts(ds: Dataset) -> dict:
    return {
        "id": ds.id,
        "sha256": ds.sha256,
        "blob_key": ds.blob_key,
        "format": ds.format,
        "meta": ds.meta,
        "kind": ds.kind,
        "source_path": ds.source_path,
    }


def _checkpoint_facts(ckpt: Checkpoint) -> dict:
    return {
        "id": ckpt.id,
        "sha256": ckpt.sha256,
        "blob_key": ckpt.blob_key,
        "architecture": ckpt.architecture,
        "num_classes": ckpt.num_classes,
        "input_shape": ckpt.input_shape,
        "parent_id": ckpt.parent_id,
    }


# Artifacts of earlier analyses that a job can reuse: (analysis wanting it, its params predicate) ->
# (analysis that made it, artifact name). A landscape along the top Hessian eigenvector reuses the newest
# hessian result of the same checkpoint and dataset instead of computing the eigenvector again.
REUSE = {"landscape": ("hessian", "spectrum", lambda params: params.get("direction") == "hessian")}


def _reusable_artifacts(session: Session, job: Job) -> dict[str, str]:
    """``{artifact name: blob key}`` of the newest earlier result this job can reuse (may be empty)."""
    rule = REUSE.get(job.analysis)
    if rule is None or not rule[2](job.params or {}):
        return {}
    analysis, name, _ = rule
    stmt = (
        select(Result)
        .join(Job, Result.job_id == Job.id)
        .where(
            Job.analysis == analysis,
            Job.checkpoint_id == job.checkpoint_id,
            Job.dataset_id == job.dataset_id,
            Job.status == JobStatus.succeeded,
        )
        .order_by(Job.id.desc())
        .limit(1)
    )
    result = session.scalar(stmt)
    for artifact in result.artifacts if result is not None else []:
        if artifact.get("name") == name:
            return {name: artifact["key"]}
    return {}
