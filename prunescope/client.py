"""A small REST client for the CLI: streamed upload with progress, job submission and following."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn


def _raise_for_detail(resp: httpx.Response) -> None:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        typer.echo(f"error {resp.status_code}: {detail}", err=True)
        raise typer.Exit(1)


def _headers() -> dict:
    import os

    token = os.environ.get("PRUNESCOPE_API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


class _ProgressReader:
    def __init__(self, f, bar: Progress, task):
        self.f, self.bar, self.task = f, bar, task

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bar.update(self.task, advance=len(data))
        return data


def upload_checkpoint(server: str, path: Path, fields: dict) -> dict:
    size = path.stat().st_size
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns) as bar, path.open("rb") as f:
        task = bar.add_task(f"uploading {path.name}", total=size)
        files = {"file": (path.name, _ProgressReader(f, bar, task), "application/octet-stream")}
        resp = httpx.post(
            f"{server}/api/checkpoints", data=fields, files=files, headers=_headers(), timeout=None
        )
    _raise_for_detail(resp)
    return resp.json()


def submit_jobs(server: str, analysis: str, checkpoint_ids: list[int], dataset_id: int | None, params: dict):
    body = {
        "analysis": analysis,
        "checkpoint_ids": checkpoint_ids,
        "dataset_id": dataset_id,
        "params": params,
    }
    resp = httpx.post(f"{server}/api/jobs", json=body, headers=_headers(), timeout=60)
    _raise_for_detail(resp)
    return resp.json()


def follow_jobs(server: str, job_ids: list[int], poll: float = 1.0) -> list[dict]:
    with Progress() as bar, httpx.Client(base_url=server, timeout=30, headers=_headers()) as client:
        tasks = {jid: bar.add_task(f"job {jid}", total=1.0) for jid in job_ids}
        while True:
            jobs = []
            for jid in job_ids:
                resp = client.get(f"/api/jobs/{jid}")
                _raise_for_detail(resp)
                job = resp.json()
                jobs.append(job)
                bar.update(tasks[jid], completed=job["progress"], description=f"job {jid} {job['status']}")
            if all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs):
                return jobs
            time.sleep(poll)
