"""A figure in the page, with Plotly's download button set up."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import dcc


def graph_config(name: str) -> dict:
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": f"prunescope-{name}", "scale": 2},
    }


def graph(figure: go.Figure, *, name: str, **props) -> dcc.Graph:
    return dcc.Graph(figure=figure, config=graph_config(name), className=f"ps-graph ps-graph-{name}", **props)
