"""Registering the checkpoints a job makes (pruned children), fenced by the job's lease.

For each child: its bytes are loaded through the normal sandboxed intake (no transaction open meanwhile),
the blob is stored, then one transaction checks the lease (a fenced write on the job row), reuses a child
of the same bytes under the same parent or inserts one, and commits. The follow-up analyses are then
submitted through the same service as ``POST /api/jobs``, so identical work is reused by its cache key.

A worker killed mid-job leaves the children it registered; its retry makes the same bytes (pruning and
fine-tuning are deterministic for a seed on one device) and reuses those rows, so no child is duplicated.
A worker whose lease is gone registers nothing.
"""

from __future__ import annotations

import logging

from server.checkpoints import service as checkpoints
from server.config import Settings
from server.db import session_scope
from server.jobs import leases
from server.jobs import service as jobs
from server.queue import JobQueue
from server.storage import BlobStore, stage_bytes
from workers.registry import NewCheckpoint, RegisteredCheckpoint
from workers.sandbox import LoadLimits

logger = logging.getLogger(__name__)


class ChildRegistrar:
    """``add(new)`` registers one child of the job's checkpoint; ``None`` when the lease is lost."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: BlobStore,
        queue: JobQueue,
        lease: leases.Lease,
        parent: dict,
        dataset: dict | None,
    ):
        self.settings, self.store, self.queue, self.lease = settings, store, queue, lease
        self.parent, self.dataset = parent, dataset

    def _fence(self, session) -> bool:
        return leases.heartbeat(session=session, lease=self.lease)

    def add(self, new: NewCheckpoint) -> RegisteredCheckpoint | None:
        staged = stage_bytes(new.data, self.store.tmp_dir)
        limits = LoadLimits.from_settings(self.settings, tmp_dir=staged.path.parent)
        info = checkpoints.inspect_child(staged=staged, parent=self.parent, limits=limits)
        metadata = {**new.metadata, "made_by_job": self.lease.job_id}
        with session_scope(self.settings.resolved_database_url) as session:
            child = checkpoints.register_child(
                session=session,
                store=self.store,
                staged=staged,
                info=info,
                parent_id=self.parent["id"],
                label=new.label,
                metadata=metadata,
                fence=self._fence,
            )
            if child is None:
                return None
            child_id = child.id
        logger.info("job %s registered child %s (%s)", self.lease.job_id, child_id, new.label)
        return RegisteredCheckpoint(child_id, self._followups(child_id, new.followups))

    def _followups(self, child_id: int, analyses: list[str]) -> list[int]:
        if not analyses or self.dataset is None:
            return []
        ids = []
        with session_scope(self.settings.resolved_database_url) as session:
            for analysis in analyses:
                submitted = jobs.submit(
                    session=session,
                    queue=self.queue,
                    analysis=analysis,
                    checkpoint_ids=[child_id],
                    dataset_id=self.dataset["id"],
                    params={},
                    max_attempts=self.settings.max_attempts,
                )
                ids.extend(job.id for job, _ in submitted)
        return ids
