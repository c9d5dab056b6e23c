"""Reads and writes for the callbacks: open a session, call a server service, return plain dicts.

Callbacks stay a few lines long and never touch SQLAlchemy objects. Domain errors come back as
:class:`ActionError` carrying the server's human-readable message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from dashboard.context import get_settings
from server import storage
from server.checkpoints import service as checkpoints
from server.checkpoints.schemas import CheckpointPublic
from server.datasets import service as datasets
from server.datasets.schemas import DatasetPublic
from server.db import session_scope
from server.errors import PruneScopeError
from server.jobs import service as jobs
from server.jobs.schemas import JobPublic
from server.queue import get_queue
from workers import architectures, registry
from workers.data import BUILTINS

ACTIVE = ("queued", "running")


class ActionError(Exception):
    """A user action the server refused; ``str(exc)`` is the reason, fit to show."""


@contextmanager
def _session(*, write: bool = False) -> Iterator[Session]:
    try:
        with session_scope(get_settings().resolved_database_url, write=write) as session:
            yield session
    except PruneScopeError as exc:
        raise ActionError(exc.detail) from None


def _check_writable() -> None:
    """With an API token configured, writes need it; the dashboard has no way to send it yet."""
    if get_settings().api_token:
        raise ActionError("this server requires an API token for changes; use the REST API or the CLI")


def _job(job, reused: bool = False) -> dict:
    return JobPublic.model_validate(job).model_dump() | {"reused": reused}


def list_checkpoints() -> list[dict]:
    with _session() as session:
        return [
            CheckpointPublic.model_validate(c).model_dump() for c in checkpoints.list_all(session=session)
        ]


def families() -> list[str]:
    return sorted({c["family"] for c in list_checkpoints() if c["family"]})


def family_ids(family: str | None) -> list[int]:
    if not family:
        return []
    with _session() as session:
        return [c.id for c in checkpoints.list_all(session=session, family=family)]


def list_datasets() -> list[dict]:
    with _session() as session:
        return [DatasetPublic.model_validate(d).model_dump() for d in datasets.list_all(session=session)]


def builtin_dataset_names() -> list[str]:
    return list(BUILTINS)


def add_builtin_dataset(name: str) -> dict:
    _check_writable()
    settings = get_settings()
    store = storage.make_store(settings.resolved_storage_url, settings.tmp_dir)
    with _session(write=True) as session:
        return DatasetPublic.model_validate(
            datasets.create_builtin(session=session, store=store, name=name)
        ).model_dump()


def analyses() -> list[dict]:
    specs = registry.specs(include_testing=get_settings().test_analyses)
    return [{"name": s.name, "title": s.title, "description": s.description} for s in specs]


def architecture_names() -> list[str]:
    return list(architectures.names())


def submit_jobs(
    analysis: str, checkpoint_ids: list[int], dataset_id: int | None, params: dict | None = None
) -> list[dict]:
    """One job per checkpoint; each dict has ``reused`` true when identical work already existed."""
    if not checkpoint_ids:
        raise ActionError("select at least one checkpoint")
    _check_writable()
    settings = get_settings()
    with _session(write=True) as session:
        out = jobs.submit(
            session=session,
            queue=get_queue(settings.resolved_queue_url),
            analysis=analysis,
            checkpoint_ids=checkpoint_ids,
            dataset_id=dataset_id,
            params=params or {},
            max_attempts=settings.max_attempts,
            include_testing=settings.test_analyses,
        )
        return [_job(job, reused) for job, reused in out]


def list_jobs(status: str | None = None, limit: int = 200) -> list[dict]:
    """Newest first, each with ``checkpoint_name`` and ``dataset_name`` for display."""
    with _session() as session:
        rows = [_job(j) for j in jobs.list_all(session=session, status=status, limit=limit)]
        names = {c.id: c.name for c in checkpoints.list_all(session=session, limit=100_000)}
        ds_names = {d.id: d.name for d in datasets.list_all(session=session)}
    for row in rows:
        row["checkpoint_name"] = names.get(row["checkpoint_id"], "")
        row["dataset_name"] = ds_names.get(row["dataset_id"], "")
    return rows


def cancel_job(job_id: int) -> dict:
    _check_writable()
    with _session(write=True) as session:
        return _job(jobs.cancel(session=session, job_id=job_id))


def results(analysis: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """The newest succeeded result summary per checkpoint."""
    with _session() as session:
        found = jobs.latest_results(
            session=session, analysis=analysis, checkpoint_ids=checkpoint_ids, dataset_id=dataset_id
        )
        return {cid: dict(res.summary) for cid, (_job_row, res) in found.items()}


def latest_jobs(analysis: str, checkpoint_ids: list[int], dataset_id: int | None) -> dict[int, dict]:
    """The newest job of ``analysis`` on ``dataset_id`` per checkpoint, whatever its status."""
    out: dict[int, dict] = {}
    with _session() as session:
        for cid in checkpoint_ids:
            for job in jobs.list_all(session=session, checkpoint_id=cid, analysis=analysis, limit=50):
                if job.dataset_id == dataset_id:
                    out[cid] = _job(job)
                    break
    return out


def default_dataset(analysis: str, checkpoint_ids: list[int]) -> int | None:
    """The dataset with the most results of ``analysis`` for these checkpoints, else the first dataset."""
    all_ids = [d["id"] for d in list_datasets()]
    if not all_ids:
        return None
    counts = {ds: len(results(analysis, checkpoint_ids, ds)) for ds in all_ids} if checkpoint_ids else {}
    best = max(all_ids, key=lambda ds: (counts.get(ds, 0), -ds))
    return best
