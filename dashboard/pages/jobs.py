"""Jobs: live status and progress, refreshed every 1.5 s, with cancel buttons; ``?status=`` filters."""

from __future__ import annotations

import dash
from dash import ALL, Dash, Input, Output, State, ctx, dcc, get_relative_path, html

from dashboard import data
from dashboard.components.jobs import CANCEL_TYPE, job_table

dash.register_page(__name__, path="/jobs", name="Jobs", title="PruneScope · Jobs", order=2)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
REFRESH_MS = 1500


def _filter_links(current: str) -> html.Nav:
    links = [
        dcc.Link(
            label,
            href=get_relative_path("/jobs") + (f"?status={value}" if value else ""),
            className="ps-filter-link" + (" ps-active" if value == current else ""),
        )
        for value, label in [("", "all"), *((s, s) for s in STATUSES)]
    ]
    return html.Nav(links, className="ps-filter")


def layout(status: str | None = None, **_query) -> html.Div:
    status = status if status in STATUSES else ""
    return html.Div(
        [
            html.H1("Jobs"),
            _filter_links(status),
            html.Div(id="jobs-message", className="ps-result"),
            html.Div(id="jobs-table"),
            dcc.Store(id="jobs-status", data=status),
            dcc.Interval(id="jobs-interval", interval=REFRESH_MS),
        ]
    )


def register_callbacks(app: Dash) -> None:
    @app.callback(
        Output("jobs-table", "children"),
        Input("jobs-interval", "n_intervals"),
        State("jobs-status", "data"),
        Input("jobs-message", "children"),
    )
    def render_table(_n, status, _message):
        return job_table(data.list_jobs(status=status or None))

    @app.callback(
        Output("jobs-message", "children"),
        Input({"type": CANCEL_TYPE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def cancel(_clicks):
        if not ctx.triggered_id or not ctx.triggered[0]["value"]:
            return dash.no_update
        try:
            job = data.cancel_job(ctx.triggered_id["index"])
        except data.ActionError as exc:
            return html.P(str(exc), className="ps-error", role="alert")
        return html.P(f"Job #{job['id']} cancelled.")
