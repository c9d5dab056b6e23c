"""Start a real ``prunescope serve`` process for a benchmark, and read its memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(data_dir: Path, *, env: dict | None = None, workers: int = 0, http_workers: int = 1):
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "prunescope",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--http-workers",
        str(http_workers),
    ]
    args += ["--workers", str(workers)] if workers else ["--no-worker"]
    proc = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)
