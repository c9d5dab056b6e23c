"""The landscape tab of the compare page: a summary table, then one section per mode present
(2D surfaces, 1D slices with sharpness against sparsity, interpolation paths).

A checkpoint shows its newest landscape summary, whichever mode it has. The 2D section has a log-scale
switch and a choice of the checkpoint drawn in 3D (none until one is picked);
:func:`register_landscape_callbacks` redraws those two figures when either changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dash import Dash, Input, Output, State, dcc, html
from dash_ag_grid import AgGrid

from dashboard import data
from dashboard.components.compare import grid_name, missing_results, unknown_note
from dashboard.components.format import count, number, percent
from dashboard.components.graph import graph
from dashboard.components.table import Column, grid
from dashboard.figures import landscape as fig_landscape
from dashboard.figures.common import CheckpointSummary, checkpoint_colors
from dashboard.state import pick

LOG_ID = "landscape-log"
SURFACE_ID = "landscape-surface"
CONTOURS_ID = "fig-landscape-contours"
SURFACE_FIG_ID = "fig-landscape-surface"
SURFACE_BOX_ID = "landscape-surface-box"
MODE_NAMES = {"1d": "1D", "2d": "2D", "interpolation": "interpolation"}

COLUMNS = (
    Column("name", "checkpoint"),
    Column("sparsity", "sparsity", numeric=True),
    Column("mode", "mode"),
    Column("loss", "centre loss", numeric=True),
    Column("accuracy", "centre accuracy", numeric=True),
    Column("sharpness", "curvature at centre", numeric=True),
    Column("barrier", "barrier (loss)", numeric=True),
    Column("error_barrier", "barrier (error)", numeric=True),
    Column("target", "interpolated to"),
    Column("precision", "precision"),
    Column("points", "points", numeric=True),
    Column("per_point", "s / point", numeric=True),
)


def _mode_text(s: dict) -> str:
    mode = s.get("mode")
    if mode == "interpolation":
        return f"interpolation (BatchNorm: {s.get('batchnorm') or '?'})"
    if mode in ("1d", "2d"):
        return f"{MODE_NAMES[mode]} ({fig_landscape.direction_text(s)})"
    return str(mode or "?")


def _sharpness(s: dict) -> str | None:
    found = fig_landscape.curvatures(s)
    return " / ".join(number(v) for v in found.values()) if found else None


def _row(cid: int, c: dict, s: dict, color: str, names: Mapping[int, str]) -> dict:
    interpolation = s.get("mode") == "interpolation"
    return {
        **grid_name(cid, c["name"], color),
        "sparsity": percent(c.get("sparsity")),
        "mode": _mode_text(s),
        "loss": number(s.get("center_loss")),
        "accuracy": percent(s.get("center_accuracy"), 2),
        "sharpness": _sharpness(s),
        "barrier": number(s.get("barrier")) if interpolation else None,
        "error_barrier": percent(s.get("error_barrier"), 2) if interpolation else None,
        "target": fig_landscape.target_name(s, names) if interpolation else None,
        "precision": s.get("precision"),
        "points": count(s.get("points")),
        "per_point": number(s.get("seconds_per_point"), 3),
    }


def per_mode(summaries: Mapping[int, dict]) -> dict[int, dict[str, dict]]:
    """``{id: {mode: summary}}`` from either one summary per checkpoint or already by mode
    (:func:`dashboard.data.results_by_mode`)."""
    out: dict[int, dict[str, dict]] = {}
    for cid, value in summaries.items():
        if not isinstance(value, dict):
            continue
        if "mode" in value:
            out[cid] = {str(value["mode"]): value}
        else:
            out[cid] = {m: s for m, s in value.items() if isinstance(s, dict)}
    return out


def landscape_table(
    ids: Sequence[int], checkpoints: Mapping[int, dict], summaries: Mapping[int, dict], colors: dict[int, str]
) -> AgGrid | html.P:
    names = {cid: c["name"] for cid, c in checkpoints.items()}
    modes = per_mode(summaries)
    rows = [
        _row(cid, checkpoints[cid], s, colors[cid], names)
        for cid in ids
        if cid in checkpoints
        for mode in MODE_NAMES
        if (s := modes.get(cid, {}).get(mode)) is not None
    ]
    return grid(COLUMNS, rows, empty="No landscape results yet.", id="landscape-summary")


def _section(title: str, *children) -> html.Section:
    return html.Section([html.H3(title), *children], className="ps-landscape-section")


def _surface_section(
    entries: list[CheckpointSummary], colors: dict[int, str], settings: Mapping | None = None
) -> html.Section:
    log = pick(settings, "log", (True, False), False) is True
    chosen_id = pick(settings, "surface", [e.checkpoint_id for e in entries], None)
    chosen = next((e for e in entries if e.checkpoint_id == chosen_id), None)
    controls = html.Div(
        [
            dcc.Checklist(
                id=LOG_ID,
                options=[{"label": " log₁₀ loss", "value": "log"}],
                value=["log"] if log else [],
                inline=True,
            ),
            dcc.Dropdown(
                id=SURFACE_ID,
                options=[{"label": e.label, "value": e.checkpoint_id} for e in entries],
                value=chosen_id,
                placeholder="Draw one in 3D…",
                className="ps-dd",
            ),
        ],
        className="ps-row",
    )
    return _section(
        "2D surfaces",
        controls,
        graph(
            fig_landscape.contour_grid(entries, colors, log=log), name="landscape-contours", id=CONTOURS_ID
        ),
        html.Div(surface_box(chosen, log, colors), id=SURFACE_BOX_ID),
    )


def surface_box(chosen: CheckpointSummary | None, log: bool, colors: Mapping[int, str]) -> list:
    """The 3D surface of the checkpoint picked for it, or a note: a WebGL scene is the slowest figure of the
    tab to draw (1.2 s of the landscape tab's 5.5 s to draw in Chromium here), so it is drawn on demand."""
    if chosen is None:
        return [html.P("Pick a checkpoint above to draw its surface in 3D.", className="ps-note")]
    figure = fig_landscape.surface_3d(chosen, log=log, color=colors.get(chosen.checkpoint_id))
    return [graph(figure, name="landscape-surface", id=SURFACE_FIG_ID)]


def _slices_section(entries: list[CheckpointSummary], colors: dict[int, str]) -> html.Section:
    return _section(
        "1D slices",
        html.Div(
            [
                graph(fig_landscape.curves_1d(entries, colors), name="landscape-1d", id="fig-landscape-1d"),
                graph(
                    fig_landscape.curves_1d(entries, colors, metric="accuracy"),
                    name="landscape-1d-accuracy",
                    id="fig-landscape-1d-accuracy",
                ),
            ],
            className="ps-grid2",
        ),
    )


def _entries(known: Sequence[int], checkpoints: Mapping[int, dict], summaries: Mapping[int, dict]) -> dict:
    """The summaries of each mode, in the order of ``known``."""
    by_mode: dict[str, list[CheckpointSummary]] = {mode: [] for mode in MODE_NAMES}
    modes = per_mode(summaries)
    for cid in known:
        for mode, s in modes.get(cid, {}).items():
            if mode in by_mode:
                by_mode[mode].append(CheckpointSummary(cid, checkpoints[cid]["name"], s))
    return by_mode


def landscape_view(
    ids: Sequence[int],
    checkpoints: dict[int, dict],
    summaries: dict[int, dict],
    jobs: dict[int, dict],
    *,
    settings: Mapping | None = None,
    dataset_id: int | None = None,  # read by the robustness tab only
) -> list:
    """Everything the landscape tab shows for the checkpoints ``ids`` (unknown ids are skipped).
    ``settings`` (:func:`dashboard.state.parse_settings`) may switch on the log scale (``log``) and name
    the checkpoint drawn in 3D (``surface``, kept if it has a 2D result)."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    missing = [cid for cid in known if cid not in summaries]
    out: list = unknown_note(ids, checkpoints)
    out.append(missing_results(missing, checkpoints, jobs, "landscape"))
    if not any(cid in summaries for cid in known):
        return [o for o in out if o is not None]
    by_mode = _entries(known, checkpoints, summaries)
    out.append(landscape_table(known, checkpoints, summaries, colors))
    if by_mode["2d"]:
        out.append(_surface_section(by_mode["2d"], colors, settings))
    if by_mode["1d"]:
        out.append(_slices_section(by_mode["1d"], colors))
    if by_mode["1d"] or by_mode["2d"]:
        sharp = fig_landscape.sharpness_vs_sparsity(by_mode["1d"] + by_mode["2d"], checkpoints, colors)
        out.append(graph(sharp, name="landscape-sharpness", id="fig-landscape-sharpness"))
    if by_mode["interpolation"]:
        names = {cid: c["name"] for cid, c in checkpoints.items()}
        curves = fig_landscape.interpolation_curves(by_mode["interpolation"], colors, names)
        figure = graph(curves, name="landscape-interpolation", id="fig-landscape-interpolation")
        out.append(_section("Interpolation", figure))
    return [o for o in out if o is not None]


def surface_figures(
    ids: Sequence[int],
    checkpoints: Mapping[int, dict],
    summaries: Mapping[int, dict],
    log: bool,
    surface_id: int | None,
) -> tuple:
    """The contour grid, and what shows the 3D surface of ``surface_id`` (:func:`surface_box`), for the
    switches."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    entries = _entries(known, checkpoints, summaries)["2d"]
    chosen = next((e for e in entries if e.checkpoint_id == surface_id), None)
    return fig_landscape.contour_grid(entries, colors, log=log), surface_box(chosen, log, colors)


def register_landscape_callbacks(app: Dash) -> None:
    """Redraw the 2D figures when the log switch or the 3D checkpoint changes (compare page only)."""

    @app.callback(
        Output(CONTOURS_ID, "figure"),
        Output(SURFACE_BOX_ID, "children"),
        Input(LOG_ID, "value"),
        Input(SURFACE_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def redraw_surfaces(log_value, surface_id, state):
        ids = state.get("ids") or []
        checkpoints = {c["id"]: c for c in data.list_checkpoints() if c["id"] in ids}
        summaries = data.results_by_mode("landscape", ids, state.get("dataset"))
        return surface_figures(ids, checkpoints, summaries, "log" in (log_value or []), surface_id)
