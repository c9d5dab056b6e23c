"""A job's progress as a native progress bar plus its percentage."""

from __future__ import annotations

from dash import html

from dashboard.components.format import percent


def progress_bar(fraction: float, status: str) -> html.Div:
    fraction = min(max(float(fraction or 0.0), 0.0), 1.0)
    if status == "succeeded":
        fraction = 1.0
    return html.Div(
        [html.Progress(value=str(round(fraction * 100)), max="100"), html.Span(percent(fraction, 0))],
        className=f"ps-progress ps-status-{status}",
    )


def status_badge(status: str) -> html.Span:
    return html.Span(status, className=f"ps-badge ps-status-{status}")
