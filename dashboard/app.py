"""Builds the Dash app: a top navigation bar over the pages in ``dashboard/pages``.

``server.app.create_app`` mounts it at ``/`` behind the API routes. Callbacks are registered on
the app itself (``register_callbacks(app)`` in each page module), not through ``dash.callback``'s
process-wide list, so building several apps in one process (as tests do) never duplicates them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import dash
from dash import Dash, html

from dashboard import context, plotly_bundle
from dashboard.components.nav import navbar
from dashboard.report import register_report_route
from server.config import Settings
from server.ratelimit import RateLimiter

PAGES_DIR = Path(__file__).resolve().parent / "pages"
PAGE_MODULES = ("checkpoints", "datasets", "jobs", "compare", "shares")


def create_dash(settings: Settings, limiter: RateLimiter | None = None) -> Dash:
    context.set_settings(settings, limiter)
    bundle = plotly_bundle.find_bundle(settings.plotlyjs_dir)
    app = Dash(
        "dashboard",
        use_pages=True,
        pages_folder=str(PAGES_DIR),
        title="PruneScope",
        suppress_callback_exceptions=True,
        update_title=None,
        meta_tags=plotly_bundle.meta_tags(bundle),
    )
    plotly_bundle.register_bundle_route(app, bundle)
    app.layout = html.Div([navbar(), html.Main(dash.page_container, className="ps-main")], className="ps-app")
    for name in PAGE_MODULES:
        importlib.import_module(f"dashboard.pages.{name}").register_callbacks(app)
    register_report_route(app.server, app.config.routes_pathname_prefix + "compare/report.html")
    return app
