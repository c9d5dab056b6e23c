"""Job tables and the summary of a submission."""

from __future__ import annotations

from collections.abc import Sequence

from dash import dcc, get_relative_path, html

from dashboard.components.format import when
from dashboard.components.progress import progress_bar, status_badge
from dashboard.components.table import Column, table
from dashboard.state import compare_search

CANCEL_TYPE = "job-cancel"
CANCELLABLE = ("queued", "running")
COLUMNS = (
    Column("id", "id", numeric=True),
    Column("analysis", "analysis"),
    Column("checkpoint", "checkpoint"),
    Column("dataset", "dataset"),
    Column("status", "status"),
    Column("progress", "progress"),
    Column("message", "message"),
    Column("error", "error"),
    Column("attempts", "attempts", numeric=True),
    Column("worker", "worker"),
    Column("created", "created"),
    Column("action", ""),
)


def _cancel_button(job: dict) -> html.Button | None:
    if job["status"] not in CANCELLABLE:
        return None
    return html.Button("Cancel", id={"type": CANCEL_TYPE, "index": job["id"]}, className="ps-button ps-small")


def job_table(jobs: Sequence[dict]) -> html.Table | html.P:
    rows = [
        {
            "id": j["id"],
            "analysis": j["analysis"],
            "checkpoint": f"{j.get('checkpoint_name', '')} (#{j['checkpoint_id']})",
            "dataset": j.get("dataset_name") or (f"#{j['dataset_id']}" if j["dataset_id"] else ""),
            "status": status_badge(j["status"]),
            "progress": progress_bar(j["progress"], j["status"]),
            "message": j["message"],
            "error": html.Span(j["error"], className="ps-error") if j["error"] else "",
            "attempts": f"{j['attempts']}/{j['max_attempts']}",
            "worker": j["worker_id"],
            "created": when(j["created_at"]),
            "action": _cancel_button(j),
            "_class": f"ps-job ps-job-{j['status']}",
        }
        for j in jobs
    ]
    return table(
        COLUMNS, rows, empty="No jobs yet: select checkpoints and run an analysis.", id="jobs-table-el"
    )


def _outcome(job: dict) -> str:
    return f"reused ({job['status']})" if job["reused"] else job["status"]


def submitted(jobs: Sequence[dict], names: dict[int, str]) -> html.Div:
    """What a submission created or reused, with links to follow it."""
    items = [
        html.Li(
            f"job #{j['id']} {j['analysis']} on {names.get(j['checkpoint_id'], '?')} "
            f"(#{j['checkpoint_id']}): {_outcome(j)}"
        )
        for j in jobs
    ]
    ids = [j["checkpoint_id"] for j in jobs]
    dataset = jobs[0]["dataset_id"] if jobs else None
    links = html.P(
        [
            dcc.Link("Follow the jobs", href=get_relative_path("/jobs")),
            " · ",
            dcc.Link("Compare these", href=get_relative_path("/compare") + compare_search(ids, dataset)),
        ]
    )
    return html.Div([html.Ul(items, className="ps-submitted"), links])
