"""The top navigation bar."""

from __future__ import annotations

from dash import dcc, get_relative_path, html

PAGES = (
    ("Checkpoints", "/"),
    ("Datasets", "/datasets"),
    ("Jobs", "/jobs"),
    ("Compare", "/compare"),
    ("Shared links", "/shares"),
)


def navbar() -> html.Header:
    links = [dcc.Link(label, href=get_relative_path(path), className="ps-nav-link") for label, path in PAGES]
    return html.Header(
        [html.Span("PruneScope", className="ps-brand"), html.Nav(links, className="ps-nav")],
        className="ps-header",
    )
