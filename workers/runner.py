"""The worker process: take job ids from the queue, claim each job's lease, run it, write back fenced.

Retries, heartbeats and the lease are handled here once, for every analysis; analyses stay pure.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback

import server.models  # noqa: F401 - every table's mapper, so flushes can resolve foreign keys
from server import storage
from server.config import Settings
from server.db import session_scope
from server.jobs import leases
from server.queue import JobQueue, get_queue
from workers.children import ChildRegistrar
from workers.device import pick_device
from workers.execute import Executor, JobInputs

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between progress writes


class LeaseLost(Exception):
    """The job was cancelled, or its lease expired and another worker took it."""


class ShuttingDown(Exception):
    """The worker was asked to stop while a job was running."""


# Errors that are properties of the input: retrying cannot help.
PERMANENT = (ValueError, TypeError, KeyError, LookupError)


class Worker:
    def __init__(self, settings: Settings, *, worker_id: str | None = None):
        self.settings = settings
        self.db_url = settings.resolved_database_url
        self.queue: JobQueue = get_queue(settings.resolved_queue_url)
        self.store = storage.make_store(settings.resolved_storage_url, settings.tmp_dir)
        self.device = pick_device(settings.device)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.executor = Executor(self.store, self.device, include_testing=settings.test_analyses)
        self.stop = threading.Event()

    # --- queue upkeep -------------------------------------------------------------------------
    def reap_and_resync(self) -> None:
        """Re-queue expired leases, and enqueue queued jobs the queue lost."""
        with session_scope(self.db_url) as session:
            requeue = leases.reap(session=session)
        pending = self.queue.pending_ids()
        with session_scope(self.db_url) as session:
            queued = leases.queued_ids(session=session)
        for job_id in sorted(set(requeue) | (set(queued) - pending)):
            self.queue.enqueue(job_id)

    def _reaper_loop(self) -> None:
        while not self.stop.wait(self.settings.reaper_interval_seconds):
            try:
                self.reap_and_resync()
            except Exception:  # noqa: BLE001 - the reaper must outlive a database hiccup
                logger.exception("reaper pass failed")

    # --- one job --------------------------------------------------------------------------------
    def run_one(self, job_id: int) -> str:
        with session_scope(self.db_url) as session:
            lease = leases.claim(
                session=session,
                job_id=job_id,
                worker_id=self.worker_id,
                lease_seconds=self.settings.lease_seconds,
            )
            facts = leases.job_inputs(session=session, job_id=job_id) if lease else None
        if lease is None or facts is None:
            logger.info("job %s not claimable (done, cancelled or held by another worker)", job_id)
            return "skipped"
        logger.info("worker %s runs job %s (attempt %s)", self.worker_id, job_id, lease.attempt)
        lost = threading.Event()
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(lease, lost, beat_stop), daemon=True)
        beat.start()
        last_write = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            if self.stop.is_set():
                raise ShuttingDown()
            if lost.is_set():
                raise LeaseLost()
            now = time.monotonic()
            if now - last_write[0] < PROGRESS_INTERVAL and fraction < 1.0:
                return
            last_write[0] = now
            with session_scope(self.db_url) as s:
                ok = leases.report_progress(session=s, lease=lease, progress=fraction, message=message)
            if not ok:
                lost.set()
                raise LeaseLost()

        registrar = ChildRegistrar(
            settings=self.settings,
            store=self.store,
            queue=self.queue,
            lease=lease,
            parent=facts["checkpoint"],
            dataset=facts["dataset"],
        )

        def add_checkpoint(new):
            if lost.is_set():
                raise LeaseLost()
            registered = registrar.add(new)
            if registered is None:
                lost.set()
                raise LeaseLost()
            return registered

        try:
            summary, blobs = self.executor.run(JobInputs(**facts), progress, add_checkpoint)
            if lost.is_set():
                raise LeaseLost()
            artifacts = [
                {
                    "name": name,
                    "key": self.store.put_bytes(data),
                    "size": len(data),
                    "media_type": "application/x-npz",
                }
                for name, data in blobs.items()
            ]
            with session_scope(self.db_url) as session:
                if not leases.complete(session=session, lease=lease, summary=summary, artifacts=artifacts):
                    raise LeaseLost()
            logger.info("job %s succeeded", job_id)
            return "succeeded"
        except LeaseLost:
            logger.warning("job %s: lease lost (cancelled or taken over); result discarded", job_id)
            return "lost"
        except ShuttingDown:
            with session_scope(self.db_url) as session:
                released = leases.release(session=session, lease=lease)
            if released:
                self.queue.enqueue(job_id)
            return "released"
        except Exception as exc:  # noqa: BLE001 - any analysis failure is recorded on the job
            error = f"{type(exc).__name__}: {exc}"[:2000]
            logger.warning("job %s failed: %s\n%s", job_id, error, traceback.format_exc())
            with session_scope(self.db_url) as session:
                status = leases.fail(
                    session=session, lease=lease, error=error, retry=not isinstance(exc, PERMANENT)
                )
            if status == "queued":
                self.queue.enqueue(job_id)
            return status or "lost"
        finally:
            beat_stop.set()
            beat.join()

    def _heartbeat(self, lease: leases.Lease, lost: threading.Event, beat_stop: threading.Event) -> None:
        interval = lease.lease_seconds / 3
        while not beat_stop.wait(interval):
            try:
                with session_scope(self.db_url) as session:
                    alive = leases.heartbeat(session=session, lease=lease)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the lease has slack
                logger.exception("heartbeat for job %s failed", lease.job_id)
                continue
            if not alive:
                lost.set()
                return

    # --- the loop -------------------------------------------------------------------------------
    def run_forever(self, *, idle_sleep: float = 0.2, max_jobs: int | None = None) -> None:
        logger.info("worker %s on %s, queue %s", self.worker_id, self.device, type(self.queue.huey).__name__)
        while not self.stop.is_set():  # the database or queue may still be starting (compose, reboot)
            try:
                self.reap_and_resync()
                break
            except Exception:  # noqa: BLE001
                logger.exception("startup resync failed; retrying")
                self.stop.wait(2.0)
        reaper = threading.Thread(target=self._reaper_loop, daemon=True)
        reaper.start()
        done = 0
        while not self.stop.is_set():
            try:
                job_id = self.queue.dequeue()
            except Exception:  # noqa: BLE001 - queue backend briefly unavailable
                logger.exception("dequeue failed")
                self.stop.wait(1.0)
                continue
            if job_id is None:
                self.stop.wait(idle_sleep)
                continue
            self.run_one(job_id)
            done += 1
            if max_jobs is not None and done >= max_jobs:
                break
        self.stop.set()

    def install_signal_handlers(self) -> None:
        def _stop(signum, _frame):
            logger.info("worker %s got signal %s; stopping", self.worker_id, signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
