"""The ``prunescope`` command: serve, worker, demo, db upgrade, upload, analyse.

Settings come from ``PRUNESCOPE_*`` environment variables; ``--data-dir`` overrides
``PRUNESCOPE_DATA_DIR`` for this command and the worker processes it starts.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="PruneScope: compare a dense network and its pruned variants.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory (PRUNESCOPE_DATA_DIR)")]
ServerUrl = Annotated[str, typer.Option("--server", envvar="PRUNESCOPE_SERVER", help="server base URL")]


def _settings(data_dir: Path | None):
    from server.config import Settings, get_settings

    if data_dir is not None:
        os.environ["PRUNESCOPE_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    settings: Settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Bring the database schema to the newest migration."""
    from server.migrate import upgrade

    settings = _settings(data_dir)
    upgrade(settings.resolved_database_url)
    typer.echo("database is at the newest schema")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="worker processes to start")] = 1,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="start no worker process")] = False,
    migrate: Annotated[bool, typer.Option(help="run migrations first")] = True,
    http_workers: Annotated[
        int, typer.Option("--http-workers", min=1, help="server processes answering HTTP (one per core)")
    ] = 1,
) -> None:
    """Serve the API and the dashboard, with worker processes alongside."""
    import uvicorn

    from server.app import create_app
    from server.migrate import upgrade

    _logging()
    settings = _settings(data_dir)
    if not _is_loopback(host) and not settings.api_token:
        typer.echo("refusing to bind to a non-loopback address without PRUNESCOPE_API_TOKEN", err=True)
        raise typer.Exit(2)
    if migrate:
        upgrade(settings.resolved_database_url)
    supervisor = _WorkerSupervisor(0 if no_worker else workers)
    try:
        if http_workers == 1:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
        else:  # each process builds the app from the same PRUNESCOPE_* environment
            uvicorn.run(
                "server.app:create_app",
                factory=True,
                workers=http_workers,
                host=host,
                port=port,
                log_level="info",
                access_log=False,
            )
    finally:
        supervisor.shutdown()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM if the server dies, even by SIGKILL, and hands its job back."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "prunescope", "worker"], env=os.environ.copy(), preexec_fn=_die_with_parent
    )


class _WorkerSupervisor:
    """Keeps ``count`` worker child processes alive beside the server; restarts any that dies."""

    def __init__(self, count: int, poll_seconds: float = 2.0):
        import threading

        self.children = [_spawn_worker() for _ in range(count)]
        self.stopping = threading.Event()
        self.poll_seconds = poll_seconds
        self.thread = threading.Thread(target=self._watch, daemon=True)
        if count:
            self.thread.start()

    def _watch(self) -> None:
        log = logging.getLogger("prunescope.supervisor")
        while not self.stopping.wait(self.poll_seconds):
            for i, child in enumerate(self.children):
                if child.poll() is not None and not self.stopping.is_set():
                    log.warning("worker %s exited with %s; starting another", child.pid, child.returncode)
                    self.children[i] = _spawn_worker()

    def shutdown(self) -> None:
        self.stopping.set()
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run one worker process: take jobs from the queue until stopped (SIGTERM/SIGINT)."""
    from workers.runner import Worker

    _logging()
    w = Worker(_settings(data_dir))
    w.install_signal_handlers()
    w.run_forever()


@app.command()
def demo(
    data_dir: DataDir = None,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="only when no checkpoint exists yet")] = False,
) -> None:
    """Train the demo CNN on digits, derive its pruned family, and queue every analysis for it."""
    from rich.progress import Progress

    from prunescope.demo import database_is_empty, load_demo
    from server.migrate import upgrade

    _logging("WARNING")
    settings = _settings(data_dir)
    upgrade(settings.resolved_database_url)
    if if_empty and not database_is_empty(settings):
        typer.echo("checkpoints already exist; demo skipped")
        return
    with Progress() as bar:
        task = bar.add_task("training the demo CNN on digits", total=1.0)
        ids = load_demo(settings, progress=lambda f, _msg="": bar.update(task, completed=f))
    typer.echo(f"demo family registered: checkpoints {ids}; analyses queued")


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    architecture: Annotated[str, typer.Option(help="a registered architecture, e.g. small_cnn")],
    name: Annotated[str | None, typer.Option()] = None,
    num_classes: Annotated[int | None, typer.Option()] = None,
    input_shape: Annotated[str | None, typer.Option(help="e.g. 3,32,32")] = None,
    family: Annotated[str | None, typer.Option()] = None,
    parent_id: Annotated[int | None, typer.Option()] = None,
    server: ServerUrl = "http://127.0.0.1:8000",
) -> None:
    """Upload a checkpoint to a running server, with a progress bar."""
    from prunescope.client import upload_checkpoint

    fields = {
        "architecture": architecture,
        "name": name or file.name,
        "num_classes": num_classes,
        "input_shape": input_shape,
        "family": family,
        "parent_id": parent_id,
    }
    body = upload_checkpoint(server, file, {k: str(v) for k, v in fields.items() if v is not None})
    typer.echo(json.dumps(body, indent=2))


@app.command()
def analyse(
    analysis: Annotated[str, typer.Argument(help="e.g. evaluate")],
    checkpoint: Annotated[list[int], typer.Option("--checkpoint", "-c", help="checkpoint id (repeat)")],
    dataset: Annotated[int | None, typer.Option("--dataset", "-d", help="dataset id")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=JSON value (repeat)")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the jobs, showing progress")] = True,
    server: ServerUrl = "http://127.0.0.1:8000",
) -> None:
    """Queue an analysis for checkpoints on a running server and follow the jobs."""
    from prunescope.client import follow_jobs, submit_jobs

    params = {}
    for item in param or []:
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    jobs = submit_jobs(server, analysis, checkpoint, dataset, params)
    if wait:
        jobs = follow_jobs(server, [j["id"] for j in jobs])
    for job in jobs:
        typer.echo(
            f"job {job['id']} checkpoint {job['checkpoint_id']}: {job['status']} {job.get('error') or ''}"
        )
    if any(j["status"] == "failed" for j in jobs):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()
