"""Compare: a selection of checkpoints side by side. The URL carries the state:
``/compare?ids=1,2,3&dataset=1&tab=evaluate`` (or ``?family=name``), so a reload or a shared link
shows the same view."""

from __future__ import annotations

import time

import dash
from dash import Dash, Input, Output, State, ctx, dcc, get_relative_path, html

from dashboard import data
from dashboard.components.compare import evaluate_view
from dashboard.components.graph import graph
from dashboard.components.hessian import PER_LAYER_BUTTON, PER_LAYER_PARAMS, hessian_view, lacking_per_layer
from dashboard.components.landscape import landscape_view, register_landscape_callbacks
from dashboard.components.overview import overview_view, register_overview_callbacks
from dashboard.components.robustness import register_robustness_callbacks, robustness_view
from dashboard.components.share import register_share_callbacks, share_controls
from dashboard.downloads import register_download_callbacks
from dashboard.figures.sparsity import layer_sparsity_heatmap
from dashboard.state import COMPARE_TABS, compare_search, parse_id, parse_ids, parse_tab

dash.register_page(__name__, path="/compare", name="Compare", title="PruneScope · Compare", order=3)

# One view per tab of ``COMPARE_TABS``, each ``view(ids, checkpoints, summaries, jobs) -> list``.
VIEWS = {
    "evaluate": evaluate_view,
    "hessian": hessian_view,
    "landscape": landscape_view,
    "robustness": robustness_view,
    "overview": overview_view,
}
# How a tab reads its results (default: the newest per checkpoint): the landscape keeps one per mode.
RESULTS = {"landscape": data.results_by_mode, "overview": data.results_of_all}
POLL_MS = 2000
POLLED_BY_OVERVIEW = ("evaluate", "hessian", "landscape", "robustness")


def _controls(selected: list[int], dataset_id: int | None) -> html.Div:
    rows = data.list_checkpoints()
    families = sorted({r["family"] for r in rows if r["family"]})
    return html.Div(
        [
            dcc.Dropdown(
                id="compare-ids",
                multi=True,
                value=selected,
                placeholder="Pick checkpoints…",
                options=[{"label": f"{r['name']} (#{r['id']})", "value": r["id"]} for r in rows],
                className="ps-dd ps-dd-wide",
            ),
            dcc.Dropdown(
                id="compare-family", options=families, placeholder="…or a whole family", className="ps-dd"
            ),
            dcc.Dropdown(
                id="compare-dataset",
                value=dataset_id,
                clearable=False,
                placeholder="dataset",
                options=[
                    {"label": f"{d['name']} (#{d['id']})", "value": d["id"]} for d in data.list_datasets()
                ],
                className="ps-dd",
            ),
        ],
        className="ps-row",
    )


def layout(ids=None, dataset=None, tab=None, family=None, **_query) -> html.Div:
    selected = parse_ids(ids) or (data.family_ids(family) if isinstance(family, str) else [])
    tab = parse_tab(tab)
    dataset_id = parse_id(dataset) or data.default_dataset(tab, selected)
    return html.Div(
        [
            html.H1("Compare"),
            dcc.Location(id="compare-nav", refresh="callback-nav"),
            _controls(selected, dataset_id),
            dcc.Tabs(
                id="compare-tab",
                value=tab,
                children=[dcc.Tab(label=label, value=name) for name, label in COMPARE_TABS.items()],
            ),
            share_controls(),
            html.Div(id="compare-queue-result", className="ps-result"),
            html.Div(id="compare-content"),
            dcc.Store(id="compare-state", data={"ids": selected, "dataset": dataset_id, "tab": tab}),
            dcc.Store(id="compare-refresh"),
            dcc.Interval(id="compare-poll", interval=POLL_MS, disabled=True),
        ]
    )


def view_content(state: dict) -> tuple[list, bool]:
    """The selected tab's view of the selection, and whether some of its jobs are still running."""
    ids, tab, dataset_id = state["ids"], state["tab"], state["dataset"]
    if not ids:
        return [html.P("Pick checkpoints above, or a whole family.", className="ps-note")], False
    # every checkpoint, so a view can name one outside the selection (an interpolation target, say)
    checkpoints = {c["id"]: c for c in data.list_checkpoints()}
    summaries = RESULTS.get(tab, data.results)(tab, ids, dataset_id)
    known = [i for i in ids if i in checkpoints]
    jobs = data.latest_jobs(tab, known, dataset_id)  # also reruns, to poll
    pending = any(j["status"] in data.ACTIVE for j in jobs.values())
    if tab == "overview":  # it shows every analysis: poll while any of them runs
        pending = pending or any(
            j["status"] in data.ACTIVE
            for analysis in POLLED_BY_OVERVIEW
            for j in data.latest_jobs(analysis, known, dataset_id).values()
        )
    sparsity = layer_sparsity_heatmap([checkpoints[i] for i in ids if i in checkpoints])
    report = "compare/report.html" + compare_search(ids, dataset_id)  # relative to /compare: any app prefix
    return [
        html.A("Download report (HTML)", href=report, id="compare-report", className="ps-report-link"),
        *VIEWS[tab](ids, checkpoints, summaries, jobs),
        graph(sparsity, name="sparsity", id="fig-sparsity"),
    ], pending


def register_callbacks(app: Dash) -> None:
    register_share_callbacks(app)
    register_download_callbacks(app)
    register_overview_callbacks(app)
    register_landscape_callbacks(app)
    register_robustness_callbacks(app)

    @app.callback(
        Output("compare-content", "children"),
        Output("compare-poll", "disabled"),
        Input("compare-state", "data"),
        Input("compare-poll", "n_intervals"),
        Input("compare-refresh", "data"),
    )
    def render(state, _n, _refresh):
        content, pending = view_content(state)
        return content, not pending

    @app.callback(
        Output("compare-nav", "href"),
        Input("compare-ids", "value"),
        Input("compare-family", "value"),
        Input("compare-dataset", "value"),
        Input("compare-tab", "value"),
        prevent_initial_call=True,
    )
    def navigate(ids, family, dataset_id, tab):
        if ctx.triggered_id == "compare-family" and family:
            ids = data.family_ids(family)
        return get_relative_path("/compare") + compare_search(ids or [], dataset_id, tab)

    @app.callback(
        Output("compare-queue-result", "children"),
        Output("compare-refresh", "data"),
        Input("compare-queue", "n_clicks"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def queue_missing(clicks, state):
        if not clicks:
            return dash.no_update, dash.no_update
        done = data.results(state["tab"], state["ids"], state["dataset"])
        known = {c["id"] for c in data.list_checkpoints()}
        missing = [i for i in state["ids"] if i in known and i not in done]
        return _submit(state["tab"], missing, state["dataset"])

    @app.callback(
        Output("compare-queue-result", "children", allow_duplicate=True),
        Output("compare-refresh", "data", allow_duplicate=True),
        Input(PER_LAYER_BUTTON, "n_clicks"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def queue_per_layer(clicks, state):
        if not clicks:
            return dash.no_update, dash.no_update
        done = data.results("hessian", state["ids"], state["dataset"])
        known = {c["id"] for c in data.list_checkpoints()}
        lacking = lacking_per_layer([i for i in state["ids"] if i in known], done)
        return _submit("hessian", lacking, state["dataset"], PER_LAYER_PARAMS)


def _submit(analysis: str, ids: list[int], dataset_id: int | None, params: dict | None = None) -> tuple:
    """Queue the jobs; the message to show, and a new value for ``compare-refresh`` when it worked."""
    try:
        jobs = data.submit_jobs(analysis, ids, dataset_id, params)
    except data.ActionError as exc:
        return html.P(str(exc), className="ps-error", role="alert"), dash.no_update
    return html.P(f"Queued {len(jobs)} job(s); results appear here when they finish."), time.time()
