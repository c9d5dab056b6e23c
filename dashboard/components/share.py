"""The compare page's "Share" control and the list of shared links."""

from __future__ import annotations

from collections.abc import Sequence

import dash
import flask
from dash import ALL, Dash, Input, Output, State, ctx, dcc, get_relative_path, html

from dashboard import data
from dashboard.components.format import when
from dashboard.components.table import Column, table
from dashboard.state import compare_search

CREATE_ID = "share-create"
EXPIRY_ID = "share-expiry"
RESULT_ID = "share-result"
REVOKE_TYPE = "share-revoke"
EXPIRY_OPTIONS = [
    {"label": "never expires", "value": 0},
    {"label": "expires in 1 day", "value": 1},
    {"label": "expires in 7 days", "value": 7},
    {"label": "expires in 30 days", "value": 30},
]
COLUMNS = (
    Column("id", "#", numeric=True),
    Column("view", "view"),
    Column("created", "created"),
    Column("expires", "expires"),
    Column("status", "status"),
    Column("action", ""),
)


def share_controls() -> html.Div:
    return html.Div(
        [
            html.Button("Share this view", id=CREATE_ID, className="ps-button"),
            dcc.Dropdown(id=EXPIRY_ID, options=EXPIRY_OPTIONS, value=0, clearable=False, className="ps-dd"),
            html.Div(id=RESULT_ID, className="ps-result"),
        ],
        className="ps-row ps-share",
    )


def share_result(url: str) -> html.Div:
    return html.Div(
        [
            html.P("Read-only link (shown once; anyone with it can see this view until you revoke it):"),
            dcc.Input(id="share-url-text", value=url, readOnly=True, className="ps-share-url", size="80"),
            dcc.Clipboard(target_id="share-url-text", title="copy", className="ps-copy"),
            html.P(dcc.Link("Shared links", href=get_relative_path("/shares")), className="ps-note"),
        ]
    )


def shares_table(rows: Sequence[dict]) -> html.Table | html.P:
    cells = []
    for row in rows:
        state = row["state"] or {}
        ids = state.get("ids") or []
        href = get_relative_path("/compare") + compare_search(ids, state.get("dataset"), state.get("tab"))
        cells.append(
            {
                "id": row["id"],
                "view": dcc.Link(f"{len(ids)} checkpoint(s), {state.get('tab', '')} tab", href=href),
                "created": when(row["created_at"]),
                "expires": when(row["expires_at"]) if row["expires_at"] else "never",
                "status": "active" if row["active"] else ("revoked" if row["revoked_at"] else "expired"),
                "action": html.Button(
                    "Revoke", id={"type": REVOKE_TYPE, "index": row["id"]}, className="ps-button ps-small"
                )
                if row["active"]
                else "",
            }
        )
    return table(COLUMNS, cells, empty="No shared links yet: use “Share this view” on the compare page.")


def register_share_callbacks(app: Dash) -> None:
    @app.callback(
        Output(RESULT_ID, "children"),
        Input(CREATE_ID, "n_clicks"),
        State(EXPIRY_ID, "value"),
        State("compare-state", "data"),
        State("compare-settings", "data"),
        prevent_initial_call=True,
    )
    def create(clicks, days, state, settings):
        if not clicks:
            return dash.no_update
        try:
            made = data.create_share(
                {**(state or {}), "settings": settings or {}}, float(days) if days else None
            )
        except data.ActionError as exc:
            return html.P(str(exc), className="ps-error", role="alert")
        return share_result(flask.request.host_url.rstrip("/") + get_relative_path(made["url"]))


def register_shares_page_callbacks(app: Dash) -> None:
    @app.callback(
        Output("shares-table", "children"),
        Output("shares-message", "children"),
        Input({"type": REVOKE_TYPE, "index": ALL}, "n_clicks"),
        Input("shares-load", "data"),
    )
    def revoke(_clicks, _load):
        message = None
        if isinstance(ctx.triggered_id, dict) and ctx.triggered and ctx.triggered[0]["value"]:
            try:
                data.revoke_share(ctx.triggered_id["index"])
                message = html.P(f"Link #{ctx.triggered_id['index']} revoked: it now answers 404.")
            except data.ActionError as exc:
                message = html.P(str(exc), className="ps-error", role="alert")
        try:
            return shares_table(data.list_shares()), message
        except data.ActionError as exc:
            return html.P(str(exc), className="ps-error", role="alert"), message
