"""Jobs survive killed, frozen and restarted processes: real worker and server processes, real databases.

Each test starts ``python -m prunescope worker`` / ``serve`` as subprocesses (see ``conftest.py``)
with a 2 s lease and a reaper pass every 0.5 s, and reads the job rows straight from the database.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import time
from collections import Counter

import httpx
import pytest

from tests.conftest import state_dict_bytes
from tests.reliability.conftest import (
    BACKENDS,
    LEASE_SECONDS,
    cancel,
    create_checkpoint,
    describe_jobs,
    job_row,
    pause_between_transactions,
    pid_alive,
    processes_under,
    result_counts,
    results_for,
    running_jobs,
    submit,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.slow


def _sleep_params(seconds: float, tag: str, steps: int = 10) -> dict:
    return {"seconds": seconds, "steps": steps, "tag": tag}


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_random_sigkills_of_workers_lose_no_job_and_store_one_result_each(stack, procs):
    # Given 30 distinct 1-2 s jobs and 3 workers. Each kill mid-job costs that job an attempt, so the jobs
    # get MAX_ATTEMPTS = 20 (conftest): more than the 12 kills, so no job can be failed for running out.
    rng = random.Random(20261127)
    ckpt = create_checkpoint(stack)
    live = [procs.start_worker(stack) for _ in range(3)]
    job_ids = [
        submit(stack, ckpt, "_sleep", _sleep_params(round(rng.uniform(1.0, 2.0), 2), f"kill-{i}"))
        for i in range(30)
    ]

    # When 12 times a worker is SIGKILLed while it holds a job (and replaced, so 3 keep running)
    killed: list[tuple[int, int]] = []  # (job id, pid of the worker killed while running it)

    def busy_workers():
        ours = {p.worker_id for p in live if p.alive()}
        return {w: job for w, job in running_jobs(stack).items() if w in ours}

    while len(killed) < 12:
        wait_for(
            busy_workers,
            timeout=30,
            what=f"a worker mid-job for kill {len(killed) + 1} of 12",
            details=lambda: describe_jobs(stack, job_ids),
        )
        time.sleep(rng.uniform(0.1, 0.5))
        busy = busy_workers()
        if not busy:
            continue
        chosen = rng.choice(sorted(busy))
        victim = next(p for p in live if p.worker_id == chosen)
        victim.kill()
        held = running_jobs(stack).get(victim.worker_id)  # frozen now: the row still names the dead worker
        if held is not None:
            killed.append((held, victim.pid))
        live[live.index(victim)] = procs.start_worker(stack)

    # Then every job succeeds, with exactly one stored result, written by a worker that was not killed on it
    rows = wait_finished(stack, job_ids, timeout=150)
    assert {j.id: j.status for j in rows.values()} == dict.fromkeys(job_ids, "succeeded"), describe_jobs(
        stack, job_ids
    )
    assert result_counts(stack, job_ids) == dict.fromkeys(job_ids, 1)
    our_pids = {p.pid for p in procs.started}
    for i, job_id in enumerate(job_ids):
        [summary] = results_for(stack, job_id)
        assert summary["tag"] == f"kill-{i}"
        assert summary["pid"] in our_pids
    kills_per_job = Counter(job for job, _ in killed)
    for job_id, n in kills_per_job.items():
        assert rows[job_id].attempts >= n + 1, f"job {job_id} killed {n} times, ran {rows[job_id].attempts}"
        [summary] = results_for(stack, job_id)
        assert summary["pid"] not in {pid for job, pid in killed if job == job_id}
    assert sum(j.attempts for j in rows.values()) >= len(job_ids) + len(killed)
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_worker_paused_past_its_lease_loses_the_job_and_its_late_writes_are_discarded(stack, procs):
    # Given two ready workers and a 4 s job that one of them is running
    ckpt = create_checkpoint(stack)
    workers = [procs.start_worker(stack).wait_ready(), procs.start_worker(stack).wait_ready()]
    job = submit(stack, ckpt, "_sleep", _sleep_params(4, "paused", steps=20))

    def progressing():
        row = job_row(stack, job)
        return row if row.status == "running" and row.progress > 0 else None

    row = wait_for(
        progressing,
        timeout=20,
        what=f"job {job} to make progress",
        details=lambda: describe_jobs(stack, [job]),
    )
    first = next(w for w in workers if w.worker_id == row.worker_id)
    second = next(w for w in workers if w is not first)

    # When the worker running it is frozen for longer than its lease
    pause_between_transactions(first, stack, job)
    paused_at = time.time()
    row = job_row(stack, job)
    assert (row.status, row.worker_id) == ("running", first.worker_id) and row.progress < 1

    # Then the reaper re-queues the job and the other worker completes it
    row = wait_finished(stack, [job], timeout=30)[job]
    assert (row.status, row.worker_id, row.attempts) == ("succeeded", second.worker_id, 2)
    assert time.time() - paused_at > LEASE_SECONDS
    assert first.state() == "T", "the first worker must still be frozen: it cannot have written anything"

    # When the frozen worker wakes up, it notices it lost the lease
    first.resume()
    wait_for(
        lambda: f"job {job}: lease lost" in first.log(),
        timeout=20,
        what="the resumed worker to notice its lease is gone",
        details=first.tail,
    )

    # Then the job and its one result are still the second worker's
    row = job_row(stack, job)
    assert (row.status, row.worker_id, row.message) == ("succeeded", second.worker_id, "done")
    assert row.progress == 1.0
    [summary] = results_for(stack, job)
    assert summary["pid"] == second.pid
    assert summary["started"] >= paused_at
    assert first.alive(), "a worker that lost a lease carries on with other jobs"
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_job_three_times_longer_than_the_lease_runs_exactly_once(stack, procs):
    # Given two workers with an eager reaper, and a job 3 leases long that reports progress only every
    # 1.5 leases (so only the heartbeat thread keeps its lease alive)
    ckpt = create_checkpoint(stack)
    workers = [procs.start_worker(stack), procs.start_worker(stack)]
    job = submit(stack, ckpt, "_sleep", _sleep_params(3 * LEASE_SECONDS, "long", steps=2))

    # When it runs to the end
    row = wait_finished(stack, [job], timeout=45)[job]

    # Then one worker ran it, once, and its result is that worker's
    assert (row.status, row.attempts) == ("succeeded", 1), describe_jobs(stack, [job])
    runners = [w for w in workers if w.ran_job(job)]
    assert len(runners) == 1, f"workers that logged running job {job}: {[w.name for w in runners]}"
    assert row.worker_id == runners[0].worker_id
    [summary] = results_for(stack, job)
    assert summary["pid"] == runners[0].pid
    assert summary["finished"] - summary["started"] >= 3 * LEASE_SECONDS
    assert all(w.alive() for w in workers)
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_crashing_job_fails_after_max_attempts_and_later_jobs_still_run(stack, procs):
    # Given a job that always raises, queued before three ordinary jobs, and a single worker
    ckpt = create_checkpoint(stack)
    crash = submit(stack, ckpt, "_crash", {"message": "deliberate crash in test"}, max_attempts=3)
    later = [submit(stack, ckpt, "_sleep", _sleep_params(0.3, f"after-crash-{i}", steps=3)) for i in range(3)]
    worker = procs.start_worker(stack)

    # When they have all been worked off
    rows = wait_finished(stack, [crash, *later], timeout=45)

    # Then the crashing job failed with its error after exactly max_attempts runs, and left no result
    assert (rows[crash].status, rows[crash].attempts) == ("failed", 3), describe_jobs(stack, [crash])
    assert rows[crash].error == "RuntimeError: deliberate crash in test"
    assert results_for(stack, crash) == []
    log = worker.log()
    assert f"runs job {crash} (attempt 3)" in log and f"runs job {crash} (attempt 4)" not in log
    # and the queue kept moving
    assert [rows[j].status for j in later] == ["succeeded"] * 3
    assert result_counts(stack, later) == dict.fromkeys(later, 1)
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_cancelled_jobs_queued_never_run_and_running_stop_without_result(stack, procs):
    # Given one worker running a 30 s job, with a second job queued behind it
    ckpt = create_checkpoint(stack)
    worker = procs.start_worker(stack)
    running = submit(stack, ckpt, "_sleep", _sleep_params(30, "to-cancel-running", steps=60))
    queued = submit(stack, ckpt, "_sleep", _sleep_params(0.5, "to-cancel-queued", steps=2))
    wait_for(
        lambda: job_row(stack, running).status == "running",
        timeout=20,
        what=f"job {running} to start",
        details=lambda: describe_jobs(stack, [running, queued]),
    )
    assert job_row(stack, queued).status == "queued"

    # When both are cancelled
    assert cancel(stack, queued) == "cancelled"
    cancelled_at = time.monotonic()
    assert cancel(stack, running) == "cancelled"

    # Then the worker stops the running one within a heartbeat or two, long before it would have finished
    wait_for(
        lambda: f"job {running}: lease lost" in worker.log(),
        timeout=15,
        what="the worker to notice the cancellation",
        details=worker.tail,
    )
    assert time.monotonic() - cancelled_at < 3 * LEASE_SECONDS
    # and, offered the cancelled queued job next, refuses it
    wait_for(
        lambda: f"job {queued} not claimable" in worker.log(),
        timeout=10,
        what="the worker to skip the cancelled queued job",
        details=worker.tail,
    )
    # and is free for new work
    after = submit(stack, ckpt, "_sleep", _sleep_params(0.2, "after-cancel", steps=2))
    assert wait_finished(stack, [after], timeout=20)[after].status == "succeeded"

    rows = {j: job_row(stack, j) for j in (running, queued)}
    assert rows[running].status == "cancelled" and rows[running].progress < 1, describe_jobs(stack, [running])
    assert results_for(stack, running) == []
    assert (rows[queued].status, rows[queued].attempts, rows[queued].started_at) == ("cancelled", 0, None)
    assert not worker.ran_job(queued)
    assert results_for(stack, queued) == []
    procs.assert_no_errors()


def _upload_checkpoint(client: httpx.Client, *, seed: int) -> int:
    resp = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", "name": f"ckpt-{seed}"},
        files={"file": (f"w{seed}.pt", state_dict_bytes(seed=seed), "application/octet-stream")},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def _submit_api(client: httpx.Client, body: dict) -> list[int]:
    resp = client.post("/api/jobs", json=body)
    assert resp.status_code == 202, resp.text
    jobs = resp.json()
    assert not any(j["reused"] for j in jobs), jobs
    return [j["id"] for j in jobs]


def _wait_api_finished(client: httpx.Client, job_ids: list[int], timeout: float) -> dict[int, dict]:
    def done():
        jobs = {j: client.get(f"/api/jobs/{j}").json() for j in job_ids}
        finished = all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values())
        return jobs if finished else None

    def details():
        return "\n".join(str(client.get(f"/api/jobs/{j}").json()) for j in job_ids)

    return wait_for(done, timeout=timeout, what=f"jobs {job_ids} to finish", details=details, interval=0.25)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_server_killed_mid_job_hands_it_back_and_the_restarted_server_finishes_it(stack, procs):
    # Given `prunescope serve --workers 1` running a 6 s job submitted through the API
    server = procs.start_server(stack, workers=1).wait_ready()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ckpt = _upload_checkpoint(client, seed=0)
        [job] = _submit_api(
            client,
            {
                "analysis": "_sleep",
                "checkpoint_ids": [ckpt],
                "params": _sleep_params(6, "server-kill", steps=30),
            },
        )
        running = wait_for(
            lambda: (j := client.get(f"/api/jobs/{job}").json())["status"] == "running" and j,
            timeout=30,
            what=f"job {job} to start",
            details=server.tail,
        )
    first_worker = int(running["worker_id"].rsplit(":", 1)[1])
    assert server.children() == [first_worker], "the job runs in the server's one worker child"

    # When the server is SIGKILLed
    server.kill()

    # Then its worker child gets SIGTERM (PR_SET_PDEATHSIG), hands the job back untouched, and exits
    wait_for(
        lambda: not pid_alive(first_worker),
        timeout=15,
        what=f"worker {first_worker} to exit",
        details=server.tail,
    )
    assert "got signal 15" in server.log()
    row = job_row(stack, job)
    assert (row.status, row.attempts, row.message) == ("queued", 0, "worker shut down; re-queued")
    assert processes_under(procs.root) == [], "no orphan worker may outlive the killed server"

    # When the server is restarted on the same data directory
    server2 = procs.start_server(stack, workers=1).wait_ready()

    # Then the job succeeds once, in the new server's worker
    with httpx.Client(base_url=server2.url, timeout=10) as client:
        final = _wait_api_finished(client, [job], timeout=40)[job]
        assert (final["status"], final["attempts"]) == ("succeeded", 1), final
        summary = client.get(f"/api/jobs/{job}/result").json()["summary"]
    assert results_for(stack, job) == [summary]
    [second_worker] = server2.children()
    assert summary["pid"] == second_worker != first_worker

    # and a gracefully stopped server takes its worker with it
    server2.signal(signal.SIGTERM)
    server2.popen.wait(timeout=30)
    wait_for(
        lambda: processes_under(procs.root) == [],
        timeout=15,
        what="no process of this test to remain",
        details=lambda: str(processes_under(procs.root)),
    )
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", BACKENDS, indirect=True)
def test_jobs_in_the_database_but_missing_from_the_queue_run_when_a_worker_starts(stack, procs):
    # Given five queued jobs whose queue messages were lost
    ckpt = create_checkpoint(stack)
    job_ids = [submit(stack, ckpt, "_sleep", _sleep_params(0.2, f"lost-{i}", steps=2)) for i in range(5)]
    stack.queue.flush()
    assert stack.queue.pending_ids() == set()
    assert {job_row(stack, j).status for j in job_ids} == {"queued"}

    # When a worker starts whose periodic reaper will not run during the test (only its start-up resync)
    procs.start_worker(stack, PRUNESCOPE_REAPER_INTERVAL_SECONDS="300")

    # Then it finds and runs all of them
    rows = wait_finished(stack, job_ids, timeout=40)
    assert [rows[j].status for j in job_ids] == ["succeeded"] * 5
    assert result_counts(stack, job_ids) == dict.fromkeys(job_ids, 1)
    procs.assert_no_errors()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
def test_scale_out_server_and_two_workers_over_postgres_redis_and_shared_blobs(stack, procs, tmp_path):
    # Given what docker-compose runs, as plain processes: one API server without a worker and two
    # workers, each with its own data directory, sharing PostgreSQL, Redis and a blob directory
    server = procs.start_server(stack, no_worker=True, PRUNESCOPE_DATA_DIR=str(tmp_path / "server"))
    workers = [
        procs.start_worker(stack, PRUNESCOPE_DATA_DIR=str(tmp_path / f"worker-{name}")) for name in "ab"
    ]
    server.wait_ready()
    for w in workers:
        w.wait_ready()
    assert server.children() == []

    with httpx.Client(base_url=server.url, timeout=30) as client:
        # When two uploaded checkpoints are evaluated on digits through the HTTP API
        ckpts = [_upload_checkpoint(client, seed=seed) for seed in (0, 1)]
        resp = client.post("/api/datasets", json={"builtin": "digits"})
        assert resp.status_code == 201, resp.text
        dataset = resp.json()["id"]
        evaluate = {"analysis": "evaluate", "dataset_id": dataset}
        job_ids = _submit_api(client, {**evaluate, "checkpoint_ids": ckpts})

        # Then both jobs succeed, on our workers, with a plausible accuracy
        jobs = _wait_api_finished(client, job_ids, timeout=60)
        assert [jobs[j]["status"] for j in job_ids] == ["succeeded"] * 2, jobs
        assert {jobs[j]["worker_id"] for j in job_ids} <= {w.worker_id for w in workers}
        summaries = [client.get(f"/api/jobs/{j}/result").json()["summary"] for j in job_ids]
        for summary in summaries:
            assert 0.0 <= summary["accuracy"] <= 1.0
            assert summary["n_samples"] == 1797
        assert summaries[0]["loss"] != summaries[1]["loss"], "two different checkpoints were evaluated"

        # And each worker, alone, serves jobs from the shared database, queue and blob store
        for i, (w, other) in enumerate([(workers[0], workers[1]), (workers[1], workers[0])]):
            other.pause()  # idle: no lease held, and Redis commands are atomic
            try:
                [job] = _submit_api(
                    client, {**evaluate, "checkpoint_ids": [ckpts[i]], "params": {"max_samples": 1000 + i}}
                )
                done = _wait_api_finished(client, [job], timeout=60)[job]
            finally:
                other.resume()
            assert (done["status"], done["worker_id"]) == ("succeeded", w.worker_id), done
            summary = client.get(f"/api/jobs/{job}/result").json()["summary"]
            assert summary["n_samples"] == 1000 + i and 0.0 <= summary["accuracy"] <= 1.0
    for w in workers:
        assert re.search(r"job \d+ succeeded", w.log()), w.tail()
    procs.assert_no_errors()


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_serve_restarts_a_worker_child_that_died(stack, procs):
    # Given `prunescope serve --workers 1`
    server = procs.start_server(stack, workers=1).wait_ready()
    [first] = wait_for(
        lambda: server.children() or None, timeout=20, what="the worker child", details=server.tail
    )

    # When its worker child is SIGKILLed
    os.kill(first, signal.SIGKILL)

    # Then the server starts another, which runs the next job
    second = wait_for(
        lambda: [c for c in server.children() if c != first] or None,
        timeout=20,
        what="a replacement worker child",
        details=server.tail,
    )[0]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ckpt = _upload_checkpoint(client, seed=3)
        [job] = _submit_api(
            client, {"analysis": "_sleep", "checkpoint_ids": [ckpt], "params": _sleep_params(0.2, "respawn")}
        )
        final = _wait_api_finished(client, [job], timeout=30)[job]
        assert final["status"] == "succeeded", final
        assert client.get(f"/api/jobs/{job}/result").json()["summary"]["pid"] == second
    assert "starting another" in server.log()


@pytest.mark.parametrize("stack", ["postgres"], indirect=True)
def test_worker_started_before_its_database_waits_for_it(stack, procs):
    # Given a worker pointed at a PostgreSQL schema that does not exist yet
    import psycopg

    from server.migrate import upgrade
    from tests.conftest import PG_DSN

    schema = "late_" + str(os.getpid())
    late_url = f"{PG_DSN}?options=-csearch_path%3D{schema}"
    worker = procs.start_worker(stack, PRUNESCOPE_DATABASE_URL=late_url)

    # When the schema appears once the worker has tried and failed (its imports alone take seconds on a
    # busy machine, so wait for the attempt rather than a fixed time)
    deadline = time.monotonic() + 60
    while "startup resync failed; retrying" not in worker.log() and time.monotonic() < deadline:
        assert worker.alive(), worker.tail()
        time.sleep(0.2)
    assert worker.alive(), worker.tail()
    assert "startup resync failed; retrying" in worker.log()
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        upgrade(late_url)
        stack_late = dataclasses.replace(
            stack,
            settings=stack.settings.model_copy(update={"database_url": late_url}),
            env={**stack.env, "PRUNESCOPE_DATABASE_URL": late_url},
        )
        # Then the same worker runs jobs there
        ckpt = create_checkpoint(stack_late)
        job = submit(stack_late, ckpt, "_sleep", _sleep_params(0.2, "late-db"))
        wait_finished(stack_late, [job], timeout=30)
        assert job_row(stack_late, job).status == "succeeded"
    finally:
        worker.kill()
        from server.db import dispose_engines

        dispose_engines()
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
