"""Checkpoints: upload, the family table, selection, running an analysis on the selection, and pruning a
checkpoint into a family of children (the prune dialog)."""

from __future__ import annotations

import dash
from dash import ALL, Dash, Input, Output, State, dcc, get_relative_path, html

from dashboard import data
from dashboard.components.checkpoints import (
    SELECT_TYPE,
    checkpoint_options,
    checkpoint_table,
    parent_options,
    prune_dialog,
    prune_estimate,
    prune_params,
)
from dashboard.components.jobs import submitted
from dashboard.components.upload import drop_zone, select
from dashboard.state import compare_search

dash.register_page(__name__, path="/", name="Checkpoints", title="PruneScope · Checkpoints", order=0)

POLL_MS = 3000

UPLOAD_FIELDS = {
    "architecture": "ckpt-arch",
    "name": "ckpt-name",
    "family": "ckpt-family",
    "parent_id": "ckpt-parent",
}


def _upload_panel() -> html.Section:
    archs = data.architecture_names()
    default = "small_cnn" if "small_cnn" in archs else (archs[0] if archs else "")
    ordered = [default] + [a for a in archs if a != default]
    return html.Section(
        [
            html.H2("Upload checkpoints"),
            html.Div(
                [
                    html.Label(["architecture", select("ckpt-arch", [(a, a) for a in ordered])]),
                    html.Label(["name", dcc.Input(id="ckpt-name", placeholder="default: file name")]),
                    html.Label(["family", dcc.Input(id="ckpt-family", placeholder="e.g. resnet20-cifar10")]),
                    html.Label(["parent", html.Select(parent_options([]), id="ckpt-parent")]),
                ],
                className="ps-fields",
            ),
            drop_zone(
                id="ckpt-drop",
                endpoint="/api/checkpoints",
                accept=".pt,.pth,.bin,.safetensors",
                fields=UPLOAD_FIELDS,
                refresh_id="ckpt-refresh",
                label="Drop state_dict files (.pt, .pth, .bin, .safetensors) here, or choose them:",
            ),
        ],
        className="ps-panel",
    )


def _run_panel() -> html.Section:
    analyses = [{"label": a["title"], "value": a["name"]} for a in data.analyses()]
    datasets = [{"label": f"{d['name']} (#{d['id']})", "value": d["id"]} for d in data.list_datasets()]
    return html.Section(
        [
            html.H2("Selection"),
            html.Div(
                [
                    html.Span("0 selected", id="ckpt-selected-count"),
                    dcc.Dropdown(id="ckpt-family", placeholder="Select a whole family…", className="ps-dd"),
                    dcc.Link(
                        "Compare selected",
                        id="ckpt-compare-link",
                        href=get_relative_path("/compare"),
                        className="ps-button",
                    ),
                ],
                className="ps-row",
            ),
            html.Div(
                [
                    dcc.Dropdown(
                        id="ckpt-analysis",
                        options=analyses,
                        value="evaluate",
                        clearable=False,
                        className="ps-dd",
                    ),
                    dcc.Dropdown(
                        id="ckpt-dataset",
                        options=datasets,
                        value=datasets[0]["value"] if datasets else None,
                        placeholder="dataset",
                        className="ps-dd",
                    ),
                    html.Button("Run analysis", id="ckpt-run", n_clicks=0, className="ps-button"),
                ],
                className="ps-row",
            ),
            html.Div(id="ckpt-run-result", className="ps-result"),
        ],
        className="ps-panel",
    )


def layout(**_query) -> html.Div:
    return html.Div(
        [
            html.H1("Checkpoints"),
            _upload_panel(),
            _run_panel(),
            prune_dialog(data.list_datasets()),
            html.Div(id="ckpt-table"),
            dcc.Store(id="ckpt-selection", data=[]),
            dcc.Interval(id="ckpt-poll", interval=POLL_MS, disabled=True),  # on while prune jobs run
        ]
    )


def register_callbacks(app: Dash) -> None:
    @app.callback(
        Output("ckpt-table", "children"),
        Output("ckpt-parent", "children"),
        Output("ckpt-family", "options"),
        Output("prune-checkpoint", "options"),
        Output("ckpt-poll", "disabled"),
        Input("ckpt-refresh", "n_clicks"),
        Input("ckpt-poll", "n_intervals"),
        Input("prune-result", "children"),
        State("ckpt-selection", "data"),
    )
    def render_table(_clicks, _n, _pruned, selected):
        """The table; while prune jobs run it is redrawn every few seconds, so children appear."""
        rows = data.list_checkpoints()
        families = sorted({r["family"] for r in rows if r["family"]})
        table = checkpoint_table(rows, set(selected or []))
        pruning = any(
            j["analysis"] == "prune" and j["status"] in data.ACTIVE for j in data.list_jobs(limit=100)
        )
        return table, parent_options(rows), families, checkpoint_options(rows), not pruning

    @app.callback(
        Output("ckpt-selection", "data"),
        Output("ckpt-compare-link", "href"),
        Output("ckpt-selected-count", "children"),
        Input({"type": SELECT_TYPE, "index": ALL}, "value"),
    )
    def on_select(values):
        ids = sorted({v for vs in values or [] for v in vs or []})
        return ids, get_relative_path("/compare") + compare_search(ids), f"{len(ids)} selected"

    @app.callback(
        Output({"type": SELECT_TYPE, "index": ALL}, "value"),
        Input("ckpt-family", "value"),
        State({"type": SELECT_TYPE, "index": ALL}, "id"),
        prevent_initial_call=True,
    )
    def select_family(family, ids):
        members = set(data.family_ids(family))
        return [[i["index"]] if i["index"] in members else [] for i in ids]

    @app.callback(
        Output("ckpt-run-result", "children"),
        Input("ckpt-run", "n_clicks"),
        State("ckpt-selection", "data"),
        State("ckpt-analysis", "value"),
        State("ckpt-dataset", "value"),
        prevent_initial_call=True,
    )
    def run(_clicks, selected, analysis, dataset_id):
        try:
            jobs = data.submit_jobs(analysis, list(selected or []), dataset_id)
        except data.ActionError as exc:
            return html.P(str(exc), className="ps-error", role="alert")
        names = {c["id"]: c["name"] for c in data.list_checkpoints()}
        return submitted(jobs, names)

    register_prune_callbacks(app)


PRUNE_INPUTS = (
    Input("prune-methods", "value"),
    Input("prune-sparsities", "value"),
    Input("prune-extra", "value"),
    Input("prune-epochs", "value"),
    Input("prune-then", "value"),
)


def register_prune_callbacks(app: Dash) -> None:
    @app.callback(
        Output("prune-checkpoint", "value"),
        Input("ckpt-selection", "data"),
        State("prune-checkpoint", "value"),
    )
    def follow_selection(selected, current):
        return selected[0] if selected and len(selected) == 1 else current

    @app.callback(
        Output("prune-estimate", "children"),
        Output("prune-run", "disabled"),
        *PRUNE_INPUTS,
        Input("prune-dataset", "value"),
    )
    def estimate(methods, presets, extra, epochs, then, dataset_id):
        try:
            params = prune_params(methods, presets, extra, epochs, then)
        except ValueError as exc:
            return str(exc), True
        if not params["methods"] or not params["sparsities"]:
            return "Choose at least one method and one sparsity.", True
        p = params
        _, text = prune_estimate(p["methods"], p["sparsities"], p["finetune_epochs"], p["then"])
        if dataset_id is None and (params["finetune_epochs"] or params["then"]):
            return text + " Fine-tuning and follow-up analyses need a dataset.", True
        return text, False

    @app.callback(
        Output("prune-result", "children"),
        Input("prune-run", "n_clicks"),
        State("prune-checkpoint", "value"),
        State("prune-dataset", "value"),
        State("prune-seed", "value"),
        State("prune-rewind", "value"),
        *(State(i.component_id, i.component_property) for i in PRUNE_INPUTS),
        prevent_initial_call=True,
    )
    def run_prune(_clicks, checkpoint_id, dataset_id, seed, rewind, methods, presets, extra, epochs, then):
        try:
            params = prune_params(methods, presets, extra, epochs, then, seed, rewind)
            jobs = data.submit_prune(checkpoint_id, dataset_id, params)
        except (ValueError, data.ActionError) as exc:
            return html.P(str(exc), className="ps-error", role="alert")
        names = {c["id"]: c["name"] for c in data.list_checkpoints()}
        return submitted(jobs, names)
