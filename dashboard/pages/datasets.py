"""Datasets: the table, built-in sets, and ``.npz`` uploads streamed to the API."""

from __future__ import annotations

import dash
from dash import ALL, Dash, Input, Output, ctx, dcc, html

from dashboard import data
from dashboard.components.datasets import dataset_table
from dashboard.components.upload import drop_zone

dash.register_page(__name__, path="/datasets", name="Datasets", title="PruneScope · Datasets", order=1)

BUILTIN_TYPE = "ds-builtin"


def layout(**_query) -> html.Div:
    buttons = [
        html.Button(f"Add built-in {name}", id={"type": BUILTIN_TYPE, "index": name}, className="ps-button")
        for name in data.builtin_dataset_names()
    ]
    return html.Div(
        [
            html.H1("Datasets"),
            html.Section(
                [
                    html.H2("Add a dataset"),
                    html.Div(buttons, className="ps-row"),
                    html.Div(id="ds-builtin-result", className="ps-result"),
                    html.Div(
                        [html.Label(["name", dcc.Input(id="ds-name", placeholder="default: file name")])],
                        className="ps-fields",
                    ),
                    drop_zone(
                        id="ds-drop",
                        endpoint="/api/datasets",
                        accept=".npz",
                        fields={"name": "ds-name"},
                        refresh_id="ds-refresh",
                        label="Drop an .npz file (arrays x, y; optional mean, std), or choose it:",
                    ),
                ],
                className="ps-panel",
            ),
            html.Div(id="ds-table"),
        ]
    )


def register_callbacks(app: Dash) -> None:
    @app.callback(
        Output("ds-table", "children"),
        Input("ds-refresh", "n_clicks"),
        Input("ds-builtin-result", "children"),
    )
    def render_table(_clicks, _added):
        return dataset_table(data.list_datasets())

    @app.callback(
        Output("ds-builtin-result", "children"),
        Input({"type": BUILTIN_TYPE, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def add_builtin(_clicks):
        if not ctx.triggered_id or not ctx.triggered[0]["value"]:
            return dash.no_update
        try:
            ds = data.add_builtin_dataset(ctx.triggered_id["index"])
        except data.ActionError as exc:
            return html.P(str(exc), className="ps-error", role="alert")
        return html.P(f"Dataset {ds['name']} (#{ds['id']}) is ready.")
