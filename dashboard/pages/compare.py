"""Compare: a selection of checkpoints side by side. The URL carries the state:
``/compare?ids=1,2,3&dataset=1&tab=robustness&severity=3&sample=17`` (or ``?family=name``): the selection,
the tab and the tabs' settings (:data:`dashboard.state.SETTINGS`), so a reload or a copied link shows the
same view.

Changing the selection, the data set or the tab navigates (the page is built again from its new URL);
changing a tab's setting only rewrites the address bar (``history.replaceState``, in the browser) and the
``compare-settings`` store, which the next navigation and every re-render of the tab carry on."""

from __future__ import annotations

import json
import time

import dash
from dash import Dash, Input, Output, State, ctx, dcc, get_relative_path, html

from dashboard import data
from dashboard.components import landscape, overview, robustness
from dashboard.components.compare import evaluate_view
from dashboard.components.graph import graph
from dashboard.components.hessian import PER_LAYER_BUTTON, PER_LAYER_PARAMS, hessian_view, lacking_per_layer
from dashboard.components.landscape import landscape_view, register_landscape_callbacks
from dashboard.components.overview import overview_view, register_overview_callbacks
from dashboard.components.robustness import register_robustness_callbacks, robustness_view
from dashboard.components.share import register_share_callbacks, share_controls
from dashboard.downloads import register_download_callbacks
from dashboard.figures.sparsity import layer_sparsity_heatmap
from dashboard.state import COMPARE_TABS, compare_search, parse_id, parse_ids, parse_settings, parse_tab

dash.register_page(__name__, path="/compare", name="Compare", title="PruneScope · Compare", order=3)

# One view per tab of ``COMPARE_TABS``, each
# ``view(ids, checkpoints, summaries, jobs, *, settings, dataset_id) -> list``.
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
SETTINGS_STORE = "compare-settings"
# Each setting the URL carries: the control holding it, per tab (a tab's controls are drawn together).
# ``kind`` says how the browser reads the control's value: as it is, or a checklist's "on" (``flag``).
# When the tab is drawn, every input of its group reports a change at once: that is no change of a
# setting, so a group has two inputs at least (the overview's one control has its columns' store beside).
URL_CONTROLS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "robustness": (
        ("severity", robustness.SEVERITY_ID, "value", "value"),
        ("a", robustness.A_ID, "value", "value"),
        ("b", robustness.B_ID, "value", "value"),
        ("condition", robustness.CONDITION_ID, "value", "value"),
        ("quantity", robustness.QUANTITY_ID, "value", "value"),
        ("sample", robustness.SAMPLE_STORE, "data", "value"),
    ),
    "landscape": (
        ("log", landscape.LOG_ID, "value", "flag"),
        ("surface", landscape.SURFACE_ID, "value", "value"),
    ),
    "overview": (
        ("mode", overview.MODE_ID, "value", "value"),
        ("", overview.COLUMNS_STORE, "data", "drawn"),  # set once, when the tab is drawn
    ),
}
# In the browser: the changed controls' values into the settings store and the address bar, in place
# (no navigation, so nothing is rendered again). ``false`` and ``null`` leave the URL (the default).
_KEEP_SETTINGS = """function (...args) {
    const controls = %s;
    const changed = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
    if (changed.length >= controls.length) { return window.dash_clientside.no_update; }  // just drawn
    const settings = Object.assign({}, args[controls.length] || {});
    const params = new URLSearchParams(window.location.search);
    controls.forEach(([name, id, prop, kind], i) => {
        if (kind === "drawn" || !changed.includes(id + "." + prop)) { return; }
        let value = args[i];
        if (kind === "flag") { value = Array.isArray(value) && value.length > 0; }
        settings[name] = value;
        if (value === null || value === undefined || value === false) { params.delete(name); }
        else { params.set(name, value === true ? "1" : String(value)); }
    });
    const search = params.toString().replace(/%%2C/gi, ",").replace(/%%2F/gi, "/");
    const url = window.location.pathname + (search ? "?" + search : "") + window.location.hash;
    window.history.replaceState(window.history.state, "", url);
    return settings;
}"""


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


def layout(ids=None, dataset=None, tab=None, family=None, **query) -> html.Div:
    selected = parse_ids(ids) or (data.family_ids(family) if isinstance(family, str) else [])
    tab = parse_tab(tab)
    settings = parse_settings(query)
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
            dcc.Store(id=SETTINGS_STORE, data=settings),
            dcc.Store(id="compare-refresh"),
            dcc.Interval(id="compare-poll", interval=POLL_MS, disabled=True),
        ]
    )


def view_content(state: dict, settings: dict | None = None) -> tuple[list, bool]:
    """The selected tab's view of the selection, and whether some of its jobs are still running.
    ``settings`` (:func:`dashboard.state.parse_settings`) set the view's controls; without, their defaults."""
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
            for analysis in data.OVERVIEW_ANALYSES
            for j in data.latest_jobs(analysis, known, dataset_id).values()
        )
    sparsity = layer_sparsity_heatmap([checkpoints[i] for i in ids if i in checkpoints])
    report = "compare/report.html" + compare_search(ids, dataset_id)  # relative to /compare: any app prefix
    settings = parse_settings(settings)
    view = VIEWS[tab](ids, checkpoints, summaries, jobs, settings=settings, dataset_id=dataset_id)
    return [
        html.A("Download report (HTML)", href=report, id="compare-report", className="ps-report-link"),
        *view,
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
        State(SETTINGS_STORE, "data"),
    )
    def render(state, _n, _refresh, settings):
        content, pending = view_content(state, settings)
        return content, not pending

    for controls in URL_CONTROLS.values():
        app.clientside_callback(
            _KEEP_SETTINGS % json.dumps(controls),
            Output(SETTINGS_STORE, "data", allow_duplicate=True),
            *(Input(component_id, prop) for _name, component_id, prop, _kind in controls),
            State(SETTINGS_STORE, "data"),
            prevent_initial_call=True,
        )

    @app.callback(
        Output("compare-nav", "href"),
        Input("compare-ids", "value"),
        Input("compare-family", "value"),
        Input("compare-dataset", "value"),
        Input("compare-tab", "value"),
        State(SETTINGS_STORE, "data"),
        prevent_initial_call=True,
    )
    def navigate(ids, family, dataset_id, tab, settings):
        if ctx.triggered_id == "compare-family" and family:
            ids = data.family_ids(family)
        return get_relative_path("/compare") + compare_search(ids or [], dataset_id, tab, settings)

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
