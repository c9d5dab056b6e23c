"""Real worker and server processes for the reliability tests.

Every process is ``sys.executable -m prunescope ...`` started with ``subprocess.Popen`` in its own
session (so a server and the worker children it spawns share one process group), its stdout and
stderr written to a file under the test's ``tmp_path``. Teardown always resumes and SIGKILLs every
process group it started, plus any process still carrying the test's data directory in its
environment. When a test fails, the tail of every process log is attached to the report.

A :class:`Stack` is one deployment: where the database, the queue and the blobs live, and the
``PRUNESCOPE_*`` environment its processes get. Short leases keep the tests fast.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from server import storage
from server.checkpoints import service as checkpoints_service
from server.config import Settings
from server.db import get_engine, session_scope
from server.jobs import service as jobs_service
from server.jobs.models import FINISHED, Job, Result
from server.queue import JobQueue, get_queue
from tests.conftest import state_dict_bytes

LEASE_SECONDS = 2.0
REAPER_INTERVAL_SECONDS = 0.5
# High enough that the random SIGKILLs of the kill test can never use up a job's attempts: every kill
# mid-job costs that job one attempt, and a test kills at most a dozen times.
MAX_ATTEMPTS = 20
LOG_TAIL_LINES = 120
HOSTNAME = socket.gethostname()

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


# --- waiting ----------------------------------------------------------------------------------------


def wait_for(
    predicate: Callable,
    *,
    timeout: float,
    what: str,
    details: Callable[[], str] | None = None,
    interval: float = 0.1,
):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = details() if details is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{extra}")
        time.sleep(interval)


# --- processes --------------------------------------------------------------------------------------


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, T, Z, ...), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def pid_alive(pid: int) -> bool:
    state = process_state(pid)
    return state is not None and state not in ("Z", "X")


def processes_under(data_root: Path) -> list[int]:
    """Live processes (other than this one) whose ``PRUNESCOPE_DATA_DIR`` lies under ``data_root``."""
    prefix = f"PRUNESCOPE_DATA_DIR={data_root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(prefix) for var in environ.split(b"\0")) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """One process we started: a worker, or a server (whose worker children share its process group)."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def worker_id(self) -> str:
        """The id ``workers.runner.Worker`` records on the jobs it claims."""
        return f"{HOSTNAME}:{self.pid}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def state(self) -> str | None:
        return process_state(self.pid) if self.alive() else None

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL this process only (not its children) and reap it."""
        self.popen.kill()
        self.popen.wait(timeout=10)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        wait_for(lambda: self.state() == "T", timeout=5, what=f"{self.name} to stop")

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def ran_job(self, job_id: int) -> bool:
        return re.search(rf"runs job {job_id} \(attempt", self.log()) is not None

    def children(self) -> list[int]:
        """Live child processes (a server's workers)."""
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if parent_pid(pid) == self.pid and pid_alive(pid):
                out.append(pid)
        return out

    def wait_ready(self, timeout: float = 60) -> Proc:
        """A worker: its loop started. A server: ``/api/health`` answers 200."""
        if self.port is None:
            wait_for(
                lambda: self._check_alive() and f"worker {self.worker_id} on " in self.log(),
                timeout=timeout,
                what=f"{self.name} to start",
                details=self.tail,
            )
        else:
            wait_for(
                self._healthy, timeout=timeout, what=f"{self.name} to answer /api/health", details=self.tail
            )
        return self

    def _check_alive(self) -> bool:
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}\n{self.tail()}")
        return True

    def _healthy(self) -> bool:
        self._check_alive()
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text_ = self.log() if self.log_path.exists() else ""
        return "\n".join(text_.splitlines()[-lines:])


class Processes:
    """Starts ``prunescope`` processes and guarantees they are gone after the test."""

    def __init__(self, root: Path):
        self.root = root
        self.log_dir = root / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[Proc] = []
        self._counts: dict[str, int] = {}

    def _name(self, kind: str) -> str:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        return f"{kind}-{self._counts[kind]}"

    def start(self, kind: str, args: list[str], env: dict[str, str], port: int | None = None) -> Proc:
        name = self._name(kind)
        log_path = self.log_dir / f"{name}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
        child_env.update(env)
        child_env.update({"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "prunescope", *args],
                cwd=self.root,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path, port)
        self.started.append(proc)
        return proc

    def start_worker(self, stack: Stack, **env_overrides: str) -> Proc:
        return self.start("worker", ["worker"], {**stack.env, **env_overrides})

    def start_server(
        self, stack: Stack, *, workers: int = 1, no_worker: bool = False, **env_overrides: str
    ) -> Proc:
        port = free_port()
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        if no_worker:
            args.append("--no-worker")
        return self.start("server", args, {**stack.env, **env_overrides}, port=port)

    def close(self) -> None:
        for proc in self.started:
            for sig in (signal.SIGCONT, signal.SIGKILL):  # a stopped process must not keep its group alive
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        # Anything that escaped its group but carries this test's data directory is ours too.
        for pid in processes_under(self.root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)

    def log_sections(self) -> list[tuple[str, str]]:
        return [
            (f"{p.name} (pid {p.pid}) log, last {LOG_TAIL_LINES} lines of {p.log_path}", p.tail())
            for p in self.started
        ]

    def assert_no_errors(self) -> None:
        """No process logged at ERROR level (a failed reaper pass, heartbeat or dequeue is logged so)."""
        for proc in self.started:
            errors = [line for line in proc.log().splitlines() if " ERROR " in line]
            assert not errors, f"{proc.name} logged errors:\n" + "\n".join(errors[:10])

    def logs(self) -> str:
        return "\n".join(f"--- {title}\n{body}" for title, body in self.log_sections())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    procs: Processes | None = getattr(item, "_reliability_processes", None)
    if procs is not None and report.failed and not getattr(item, "_reliability_logs_shown", False):
        item._reliability_logs_shown = True
        report.sections.extend(procs.log_sections())


# --- deployments --------------------------------------------------------------------------------------


@dataclass
class Stack:
    """Where one deployment keeps its database, queue and blobs, and the environment of its processes."""

    kind: str
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.settings.resolved_database_url

    @property
    def queue(self) -> JobQueue:
        return get_queue(self.settings.resolved_queue_url)

    def write_lock_free(self, job_id: int) -> bool:
        """True when no transaction holds what a worker or the reaper needs to touch ``job_id``.

        A process frozen inside a transaction would block everyone (SQLite's single writer lock, a
        PostgreSQL row lock), so tests that SIGSTOP a worker first check it froze between two.
        """
        if self.kind == "postgres":
            try:
                with get_engine(self.db_url).begin() as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '300ms'"))
                    conn.execute(select(Job.id).where(Job.id == job_id).with_for_update())
                return True
            except OperationalError:
                return False
        paths = [
            self.db_url.removeprefix("sqlite:///"),
            self.settings.resolved_queue_url.removeprefix("sqlite:///"),
        ]
        for path in paths:
            conn = sqlite3.connect(path, timeout=0.3, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                return False
            finally:
                conn.close()
        return True


def _stack(
    kind: str, data_dir: Path, database_url: str | None, queue_url: str | None, storage_url: str | None = None
) -> Stack:
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        queue_url=queue_url,
        storage_url=storage_url,
        lease_seconds=LEASE_SECONDS,
        reaper_interval_seconds=REAPER_INTERVAL_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        test_analyses=True,
        device="cpu",
    )
    env = {
        "PRUNESCOPE_DATA_DIR": str(data_dir),
        "PRUNESCOPE_LEASE_SECONDS": str(LEASE_SECONDS),
        "PRUNESCOPE_REAPER_INTERVAL_SECONDS": str(REAPER_INTERVAL_SECONDS),
        "PRUNESCOPE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PRUNESCOPE_TEST_ANALYSES": "1",
        "PRUNESCOPE_DEVICE": "cpu",
    }
    urls = {"DATABASE_URL": database_url, "QUEUE_URL": queue_url, "STORAGE_URL": storage_url}
    env.update({f"PRUNESCOPE_{key}": value for key, value in urls.items() if value is not None})
    data_dir.mkdir(parents=True, exist_ok=True)
    return Stack(kind, settings, env)


@pytest.fixture
def stack(request, tmp_path) -> Stack:
    """``sqlite`` (default): SQLite database and SQLite Huey queue. ``postgres``: PostgreSQL + Redis.
    ``embedded``: nothing but a data directory, as ``prunescope serve`` runs out of the box."""
    kind = getattr(request, "param", "sqlite")
    data_dir = tmp_path / "data"
    if kind == "sqlite":
        return _stack(kind, data_dir, request.getfixturevalue("sqlite_url"), None)
    if kind == "postgres":
        return _stack(
            kind,
            data_dir,
            request.getfixturevalue("pg_url"),
            request.getfixturevalue("redis_url"),
            storage_url=str(tmp_path / "shared-blobs"),
        )
    if kind == "embedded":
        return _stack(kind, data_dir, None, None)
    raise ValueError(kind)


@pytest.fixture
def procs(request, stack, tmp_path):
    """Depends on ``stack`` so that the processes die before their database schema is dropped."""
    processes = Processes(tmp_path)
    request.node._reliability_processes = processes
    try:
        yield processes
    finally:
        processes.close()


# --- rows ---------------------------------------------------------------------------------------------


def create_checkpoint(stack: Stack, *, seed: int = 0) -> int:
    settings = stack.settings
    store = storage.make_store(settings.resolved_storage_url, settings.tmp_dir)
    staged = storage.stage_bytes(state_dict_bytes(seed=seed), settings.tmp_dir)
    with session_scope(stack.db_url) as session:
        ckpt = checkpoints_service.create(
            session=session, store=store, staged=staged, name=f"ckpt-{seed}", architecture="small_cnn"
        )
        return ckpt.id


def submit(
    stack: Stack, checkpoint_id: int, analysis: str, params: dict, *, max_attempts: int = MAX_ATTEMPTS
) -> int:
    with session_scope(stack.db_url) as session:
        [(job, reused)] = jobs_service.submit(
            session=session,
            queue=stack.queue,
            analysis=analysis,
            checkpoint_ids=[checkpoint_id],
            dataset_id=None,
            params=params,
            max_attempts=max_attempts,
            include_testing=True,
        )
        assert not reused, f"job {job.id} was deduplicated; give it a distinct tag"
        return job.id


def cancel(stack: Stack, job_id: int) -> str:
    with session_scope(stack.db_url) as session:
        return jobs_service.cancel(session=session, job_id=job_id).status


def job_row(stack: Stack, job_id: int) -> Job:
    with session_scope(stack.db_url) as session:
        job = session.get(Job, job_id)
        assert job is not None, f"job {job_id} does not exist"
        session.expunge(job)
        return job


def job_rows(stack: Stack, job_ids: list[int]) -> dict[int, Job]:
    with session_scope(stack.db_url) as session:
        jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
        session.expunge_all()
    return {j.id: j for j in jobs}


def results_for(stack: Stack, job_id: int) -> list[dict]:
    """Every stored result summary of a job (the contract is: at most one)."""
    with session_scope(stack.db_url) as session:
        return [r.summary for r in session.scalars(select(Result).where(Result.job_id == job_id))]


def result_counts(stack: Stack, job_ids: list[int]) -> dict[int, int]:
    with session_scope(stack.db_url) as session:
        rows = session.execute(
            select(Result.job_id, func.count()).where(Result.job_id.in_(job_ids)).group_by(Result.job_id)
        ).all()
    counts = {job_id: 0 for job_id in job_ids}
    counts.update({job_id: n for job_id, n in rows})
    return counts


def running_jobs(stack: Stack) -> dict[str, int]:
    """worker_id -> id of the job it holds a lease on."""
    with session_scope(stack.db_url) as session:
        rows = session.execute(select(Job.worker_id, Job.id).where(Job.status == "running")).all()
    return {worker_id: job_id for worker_id, job_id in rows}


def describe_jobs(stack: Stack, job_ids: list[int]) -> str:
    rows = job_rows(stack, job_ids)
    return "\n".join(
        f"job {j.id}: {j.status} attempts={j.attempts}/{j.max_attempts} worker={j.worker_id} "
        f"progress={j.progress:.2f} message={j.message!r} error={j.error!r}"
        for j in rows.values()
    )


def wait_finished(stack: Stack, job_ids: list[int], *, timeout: float) -> dict[int, Job]:
    def done():
        rows = job_rows(stack, job_ids)
        finished = len(rows) == len(job_ids) and all(j.status in FINISHED for j in rows.values())
        return rows if finished else None

    return wait_for(
        done,
        timeout=timeout,
        what=f"jobs {job_ids} to finish",
        details=lambda: describe_jobs(stack, job_ids),
        interval=0.25,
    )


def pause_between_transactions(proc: Proc, stack: Stack, job_id: int, tries: int = 50) -> None:
    """SIGSTOP ``proc`` at a moment it holds no database or queue lock (see ``Stack.write_lock_free``)."""
    for _ in range(tries):
        proc.pause()
        if stack.write_lock_free(job_id):
            return
        proc.resume()
        time.sleep(0.05)
    raise AssertionError(f"{proc.name} was inside a transaction each of {tries} times it was paused")
