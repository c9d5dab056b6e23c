"""The lease protocol on SQLite and PostgreSQL: one owner at a time, fenced writes, reaping."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from server.checkpoints.models import Checkpoint
from server.db import session_scope, utcnow
from server.jobs import leases
from server.jobs.models import Job, Result


def _job(url, max_attempts=3) -> int:
    with session_scope(url) as s:
        c = Checkpoint(
            name="c",
            format="torch_zip",
            architecture="mlp",
            num_classes=10,
            input_shape=[1, 8, 8],
            parameter_count=1,
            sparsity=0.0,
            layer_sparsity={},
            meta={},
            sha256="0" * 64,
            size_bytes=1,
            blob_key="0" * 64,
        )
        s.add(c)
        s.flush()
        j = Job(
            analysis="_sleep",
            analysis_version="1",
            checkpoint_id=c.id,
            params={},
            cache_key="k",
            max_attempts=max_attempts,
        )
        s.add(j)
        s.flush()
        return j.id


def _claim(url, job_id, worker="w", seconds=30.0):
    with session_scope(url) as s:
        return leases.claim(session=s, job_id=job_id, worker_id=worker, lease_seconds=seconds)


def _expire(url, job_id):
    with session_scope(url) as s:
        s.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_concurrent_claims_have_exactly_one_winner(db_url):
    job_id = _job(db_url)
    wins = []
    barrier = threading.Barrier(8)

    def go(i):
        barrier.wait()
        wins.append(_claim(db_url, job_id, worker=f"w{i}"))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([w for w in wins if w is not None]) == 1


def test_stale_lease_cannot_write_after_takeover(db_url):
    job_id = _job(db_url)
    old = _claim(db_url, job_id, "old")
    _expire(db_url, job_id)
    new = _claim(db_url, job_id, "new")
    assert new is not None and new.attempt == 2
    with session_scope(db_url) as s:
        assert not leases.heartbeat(session=s, lease=old)
        assert not leases.report_progress(session=s, lease=old, progress=0.5, message="x")
        assert not leases.complete(session=s, lease=old, summary={"who": "old"}, artifacts=[])
        assert leases.fail(session=s, lease=old, error="boom", retry=True) is None
    with session_scope(db_url) as s:
        assert leases.complete(session=s, lease=new, summary={"who": "new"}, artifacts=[])
    with session_scope(db_url) as s:
        results = s.scalars(select(Result)).all()
        assert [r.summary for r in results] == [{"who": "new"}]
        assert s.get(Job, job_id).status == "succeeded"


def test_live_lease_is_not_claimable_and_heartbeat_extends_it(db_url):
    job_id = _job(db_url)
    lease = _claim(db_url, job_id, seconds=1.0)
    assert _claim(db_url, job_id, "other") is None
    time.sleep(0.6)
    with session_scope(db_url) as s:
        assert leases.heartbeat(session=s, lease=lease)
    time.sleep(0.6)
    assert _claim(db_url, job_id, "other") is None  # 1.2 s after claim, but heartbeat extended it


def test_reaper_requeues_expired_and_fails_exhausted(db_url):
    a, b = _job(db_url, max_attempts=3), _job(db_url, max_attempts=1)
    _claim(db_url, a)
    _claim(db_url, b)
    _expire(db_url, a)
    _expire(db_url, b)
    with session_scope(db_url) as s:
        assert leases.reap(session=s) == [a]
    with session_scope(db_url) as s:
        ja, jb = s.get(Job, a), s.get(Job, b)
        assert ja.status == "queued" and ja.lease_token is None
        assert jb.status == "failed" and "gave up after 1 attempts" in jb.error


def test_failures_retry_until_max_attempts(db_url):
    job_id = _job(db_url, max_attempts=2)
    with session_scope(db_url) as s:
        assert leases.fail(session=s, lease=_claim(db_url, job_id), error="e1", retry=True) == "queued"
    with session_scope(db_url) as s:
        assert leases.fail(session=s, lease=_claim(db_url, job_id), error="e2", retry=True) == "failed"
    with session_scope(db_url) as s:
        job = s.get(Job, job_id)
        assert job.error == "e2" and job.attempts == 2
    assert _claim(db_url, job_id) is None


def test_release_hands_job_back_without_counting_the_attempt(db_url):
    job_id = _job(db_url)
    lease = _claim(db_url, job_id)
    with session_scope(db_url) as s:
        assert leases.release(session=s, lease=lease)
    with session_scope(db_url) as s:
        job = s.get(Job, job_id)
        assert job.status == "queued" and job.attempts == 0
