"""The overview tab: the family's headline metrics in one sortable, filterable grid (column groups per
analysis), every metric against sparsity, a dense-vs-child difference mode, and a button that queues the
analyses not yet run.

The difference mode is switched in the browser (a clientside callback): the grid's rows carry both the
values and their differences to the parent, and a store holds both figures, so switching costs no request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import dash
import dash_ag_grid as dag
from dash import Dash, Input, Output, State, dcc, html

from dashboard import data
from dashboard.components.compare import unknown_note
from dashboard.components.graph import graph
from dashboard.figures import overview as fig_overview
from dashboard.figures.common import checkpoint_colors
from dashboard.state import OVERVIEW_MODES, pick

GRID_ID = "overview-grid"
FIGURE_ID = "fig-overview-sparsity"
MODE_ID = "overview-mode"
COLUMNS_STORE = "overview-columns"
FIGURES_STORE = "overview-figures"
QUEUE_BUTTON = "overview-queue"
QUEUE_ROW = "overview-queue-row"  # the button with its note: left out of read-only views
ABSOLUTE, DIFFERENCE = OVERVIEW_MODES
DIFF_SUFFIX = "_diff"


def _formatter(percent: bool, signed: bool) -> dict:
    spec = ("+" if signed else "") + (".2%" if percent else ".4g")
    return {"function": f"params.value == null ? '—' : d3.format('{spec}')(params.value)"}


def _metric_column(metric: fig_overview.Metric, difference: bool) -> dict:
    return {
        "colId": metric.key,  # the same column in both modes, so a sort or a filter survives the switch
        "field": metric.key + (DIFF_SUFFIX if difference else ""),
        "headerName": ("Δ " if difference else "") + metric.label,
        "type": "numericColumn",
        "filter": "agNumberColumnFilter",
        "valueFormatter": _formatter(metric.percent, difference),
    }


def column_defs(difference: bool = False) -> list[dict]:
    """The columns: the checkpoint, its pruning, one group per analysis, and the analyses not yet run."""
    groups: dict[str, list[dict]] = {}
    for metric in fig_overview.METRICS:
        groups.setdefault(metric.analysis, []).append(_metric_column(metric, difference))
    pruning = [
        {"field": "method", "headerName": "method", "filter": "agTextColumnFilter"},
        {
            "field": "sparsity",
            "headerName": "sparsity",
            "type": "numericColumn",
            "filter": "agNumberColumnFilter",
            "valueFormatter": _formatter(True, False),
        },
    ]
    return [
        {
            "field": "name",
            "headerName": "checkpoint",
            "pinned": "left",
            "filter": "agTextColumnFilter",
            "cellStyle": {"function": "({borderLeft: '6px solid ' + params.data.color})"},  # its figure color
        },
        {"headerName": "pruning", "children": pruning},
        *({"headerName": analysis, "children": columns} for analysis, columns in groups.items()),
        {
            "headerName": "missing",
            "children": [{"field": "missing", "headerName": "not yet run", "filter": "agTextColumnFilter"}],
        },
    ]


def grid_rows(rows: Sequence[dict], colors: Mapping[int, str]) -> list[dict]:
    """One grid row per overview row: numbers stay numbers (the grid formats them, so sorting is numeric),
    with each metric's difference to the parent beside it."""
    diffs = {row["id"]: row for row in fig_overview.difference_rows(rows)}
    out = []
    for row in rows:
        cell = {
            "id": row["id"],
            "key": str(row["id"]),  # the grid's row id (a string), which highlight.js reads off a hovered row
            "name": f"{row['name']} (#{row['id']})",
            "color": colors[row["id"]],
            "method": row["method"],
            "sparsity": row["sparsity"],
            "missing": ", ".join(row["missing"]),
        }
        for m in fig_overview.METRICS:
            cell[m.key] = row[m.key]
            cell[m.key + DIFF_SUFFIX] = diffs[row["id"]][m.key]
        out.append(cell)
    return out


def summary_grid(rows: Sequence[dict], colors: Mapping[int, str], difference: bool = False) -> dag.AgGrid:
    return dag.AgGrid(
        id=GRID_ID,
        rowData=grid_rows(rows, colors),
        columnDefs=column_defs(difference),
        defaultColDef={"sortable": True, "resizable": True, "floatingFilter": True, "minWidth": 110},
        getRowId="params.data.key",
        dashGridOptions={"domLayout": "autoHeight", "animateRows": False, "suppressFieldDotNotation": True},
        columnSize="autoSize",
        className="ps-linked-grid",  # AG Grid's default theme, built in: no stylesheet to fetch
        style={"width": "100%"},
    )


def mode_toggle(mode: str = ABSOLUTE) -> dcc.RadioItems:
    return dcc.RadioItems(
        id=MODE_ID,
        options=[
            {"label": "values", "value": ABSOLUTE},
            {"label": "difference to the parent (child − dense)", "value": DIFFERENCE},
        ],
        value=mode,  # the compare page keeps it in its URL, and renders the tab again with it
        inline=True,
        className="ps-overview-mode",
    )


def missing_by_analysis(rows: Sequence[dict]) -> dict[str, list[int]]:
    """The checkpoints lacking each analysis, in row order: ``{analysis: [id, ...]}``."""
    out: dict[str, list[int]] = {}
    for row in rows:
        for analysis in row["missing"]:
            out.setdefault(analysis, []).append(row["id"])
    return out


def _queue_section(rows: Sequence[dict]) -> list:
    wanted = missing_by_analysis(rows)
    if not wanted:
        return []
    what = "; ".join(f"{a}: {len(ids)}" for a, ids in wanted.items())
    return [
        html.Div(
            [
                html.Button("Queue missing analyses", id=QUEUE_BUTTON, className="ps-button"),
                html.Span(f" with default parameters ({what})", className="ps-note"),
            ],
            id=QUEUE_ROW,
            className="ps-row",
        )
    ]


def overview_view(
    ids: Sequence[int],
    checkpoints: dict[int, dict],
    summaries: dict[int, dict],
    jobs: dict[int, dict],
    *,
    writable: bool = True,
    settings: Mapping | None = None,
    dataset_id: int | None = None,  # read by the robustness tab only
) -> list:
    """``summaries`` holds every analysis' newest summary per checkpoint (``data.results_of_all``).
    ``writable=False`` (a read-only shared view) leaves out the button that queues analyses; ``settings``
    (:func:`dashboard.state.parse_settings`) may open it in the difference ``mode``."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    rows = fig_overview.overview_rows(known, checkpoints, summaries)
    figures = {
        ABSOLUTE: fig_overview.metrics_vs_sparsity(rows),
        DIFFERENCE: fig_overview.metrics_vs_sparsity(fig_overview.difference_rows(rows), difference=True),
    }
    out: list = unknown_note(ids, checkpoints)
    if not rows:
        return [*out, html.P("No checkpoints selected.", className="ps-empty")]
    if writable:
        out += _queue_section(rows)
    mode = pick(settings, "mode", OVERVIEW_MODES, ABSOLUTE)
    return [
        *out,
        mode_toggle(mode),
        summary_grid(rows, colors, difference=mode == DIFFERENCE),
        graph(figures[mode], name="overview-sparsity", id=FIGURE_ID),
        dcc.Store(id=COLUMNS_STORE, data={ABSOLUTE: column_defs(False), DIFFERENCE: column_defs(True)}),
        dcc.Store(id=FIGURES_STORE, data={k: f.to_plotly_json() for k, f in figures.items()}),
    ]


def queue_missing(ids: Sequence[int], dataset_id: int | None) -> tuple:
    """Queue, with default parameters, each analysis that has no result for these checkpoints; the
    message to show, and a new value for ``compare-refresh`` when anything was queued."""
    checkpoints = {c["id"]: c for c in data.list_checkpoints()}
    known = [cid for cid in ids if cid in checkpoints]
    rows = fig_overview.overview_rows(known, checkpoints, data.results_of_all("overview", known, dataset_id))
    wanted = missing_by_analysis(rows)
    if not wanted:
        return html.P("Every analysis has a result for these checkpoints."), dash.no_update
    queued: list[str] = []
    for analysis, cids in wanted.items():
        try:
            queued.append(f"{analysis}: {len(data.submit_jobs(analysis, cids, dataset_id))}")
        except data.ActionError as exc:
            done = f" (queued before it: {', '.join(queued)})" if queued else ""
            refresh = time.time() if queued else dash.no_update
            return html.P(f"{analysis}: {exc}{done}", className="ps-error", role="alert"), refresh
    return html.P(f"Queued jobs ({', '.join(queued)}); results appear here when they finish."), time.time()


def register_overview_callbacks(app: Dash, *, writable: bool = True) -> None:
    """The difference-mode switch (in the browser), and with ``writable`` the queue button's callback."""
    app.clientside_callback(
        """function (mode, columns, figures) {
            if (!columns || !figures) { return [window.dash_clientside.no_update,
                                                 window.dash_clientside.no_update]; }
            return [columns[mode] || columns.absolute, figures[mode] || figures.absolute];
        }""",
        Output(GRID_ID, "columnDefs"),
        Output(FIGURE_ID, "figure"),
        Input(MODE_ID, "value"),
        State(COLUMNS_STORE, "data"),
        State(FIGURES_STORE, "data"),
    )
    if not writable:
        return

    @app.callback(
        Output("compare-queue-result", "children", allow_duplicate=True),
        Output("compare-refresh", "data", allow_duplicate=True),
        Input(QUEUE_BUTTON, "n_clicks"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def queue_overview_missing(clicks, state):
        if not clicks:
            return dash.no_update, dash.no_update
        return queue_missing(state["ids"], state["dataset"])
