"""Shared links: every read-only link made with "Share this view", with a button to revoke each."""

from __future__ import annotations

import dash
from dash import Dash, dcc, html

from dashboard.components.share import register_shares_page_callbacks

dash.register_page(__name__, path="/shares", name="Shared links", title="PruneScope · Shared links", order=4)


def layout(**_query) -> html.Div:
    return html.Div(
        [
            html.H1("Shared links"),
            html.P(
                "Each link opens one frozen comparison, read-only, without an account. A revoked or expired "
                "link answers 404, like a link that never existed. Links are shown only when made.",
                className="ps-note",
            ),
            html.Div(id="shares-message", className="ps-result"),
            html.Div(id="shares-table"),
            dcc.Store(id="shares-load", data=True),
        ]
    )


def register_callbacks(app: Dash) -> None:
    register_shares_page_callbacks(app)
