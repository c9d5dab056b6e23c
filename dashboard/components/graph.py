"""A figure in the page, with PNG, SVG and CSV download buttons beside it.

The buttons carry ``data-ps-download`` (the format) and ``data-ps-name`` (the file name's stem);
``assets/downloads.js`` handles their clicks: ``Plotly.downloadImage`` for PNG and SVG, and a POST of the
drawn figure to :mod:`dashboard.downloads`' endpoint for CSV. The ``dcc.Graph`` keeps the id it is given.
"""

from __future__ import annotations

import plotly.graph_objects as go
from dash import dcc, html

FORMATS = (("PNG", "png"), ("SVG", "svg"), ("CSV", "csv"))
DEFAULT_HEIGHT = 450  # Plotly's, for a figure that sets none


def graph_config(name: str) -> dict:
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": f"prunescope-{name}", "scale": 2},
    }


def download_button(label: str, fmt: str, name: str) -> html.Button:
    what = "the figure's data" if fmt == "csv" else "the figure"
    return html.Button(
        label,
        type="button",
        className="ps-download",
        title=f"Download {what} as {label}",
        **{"data-ps-download": fmt, "data-ps-name": name},
    )


def graph(figure: go.Figure, *, name: str, **props) -> html.Div:
    """The ``dcc.Graph`` (with ``props``, e.g. its ``id``) and its download buttons, in one box."""
    buttons = html.Div(
        [download_button(label, fmt, name) for label, fmt in FORMATS],
        className="ps-downloads",
        role="group",
        **{"aria-label": f"download {name}"},
    )
    height = figure.layout.height or DEFAULT_HEIGHT
    plot = dcc.Graph(
        figure=figure,
        config=graph_config(name),
        className=f"ps-graph ps-graph-{name}",
        style={"minHeight": f"{height}px"},  # its place is known before it is drawn (assets/plotly_setup.js)
        **props,
    )
    return html.Div([plot, buttons], className="ps-figure")
