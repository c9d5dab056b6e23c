"""Builds the Dash app (placeholder until the pages land)."""

from __future__ import annotations

from dash import Dash, html

from server.config import Settings


def create_dash(settings: Settings) -> Dash:
    app = Dash(__name__, title="PruneScope")
    app.layout = html.Div("PruneScope")
    return app
