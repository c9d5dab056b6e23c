"""The robustness tab of the compare page: a summary table, accuracy under corruption, neural collapse and
dead ReLUs (from the summaries), then per-sample geometry and a sample explorer (from each result's
``geometry`` artifact, loaded by callbacks so the tab appears before the arrays are read).

Clicking a point of the angle / feature-norm panels or of the margin difference, a listed sample, or typing
an index selects a sample (``dcc.Store`` :data:`SAMPLE_STORE`); the explorer then shows its images, clean and
corrupted (re-drawn: random corruptions differ from the analysis' own draw), and each checkpoint's prediction,
angle, norm and margin. Clicking a checkpoint in the embedding makes it checkpoint A.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import dash
import numpy as np
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash_ag_grid import AgGrid

from dashboard import data
from dashboard.components.compare import grid_name, missing_results, name_cell, unknown_note
from dashboard.components.format import count, number, percent
from dashboard.components.graph import graph
from dashboard.components.table import Column, grid, table
from dashboard.figures import robustness as fig_robustness
from dashboard.figures.common import CheckpointSummary, checkpoint_colors
from dashboard.state import MEAN_SEVERITY, pick

ANALYSIS = "robustness"
ARTIFACT = "geometry"
SEVERITY_ID = "robustness-severity"
A_ID, B_ID = "robustness-a", "robustness-b"
CONDITION_ID = "robustness-condition"
QUANTITY_ID = "robustness-quantity"
INDEX_ID = "robustness-index"
SAMPLE_STORE = "robustness-sample"
PICK_TYPE = "robustness-pick"
LISTS_ID, DETAIL_ID = "robustness-lists", "robustness-detail"
HEATMAP_FIG_ID = "fig-robustness-heatmap"
ANGLE_FIG_ID, DIFF_FIG_ID = "fig-robustness-angle", "fig-robustness-difference"
EMBED_FIG_ID, CKA_FIG_ID = "fig-robustness-embedding", "fig-robustness-cka"
SAMPLE_FIGS = (ANGLE_FIG_ID, DIFF_FIG_ID)  # their points carry the sample index in customdata[0]
LIST_COUNT = 12
THUMB_PX, DETAIL_PX = 48, 112
DETAIL_KEYS = ("conditions", "labels", "prediction", "correct", "angle", "feature_norm", "margin")
RANK_KEYS = ("conditions", "labels", "correct", "margin")
REDRAWN = "corrupted images re-drawn here: random corruptions differ from the analysis' own draw"

COLUMNS = (
    Column("name", "checkpoint"),
    Column("sparsity", "sparsity", numeric=True),
    Column("clean", "clean accuracy", numeric=True),
    Column("corrupted", "mean corruption accuracy", numeric=True),
    Column("relative", "relative robustness", numeric=True),
    Column("margin", "mean margin", numeric=True),
    Column("angle", "mean angle", numeric=True),
    Column("fragile", "fragile", numeric=True),
    Column("robust", "robust", numeric=True),
    Column("samples", "samples", numeric=True),
    Column("speed", "images/s", numeric=True),
)


# ----------------------------------------------------------------------------------------- summaries


def _degrees(radians: object) -> str:
    value = number(radians)
    return "—" if value == "—" else f"{np.degrees(float(radians)):.1f}°"


def _row(cid: int, c: dict, s: dict, color: str) -> dict:
    clean = s.get("clean") if isinstance(s.get("clean"), dict) else {}
    speed = s.get("images_per_second")
    return {
        **grid_name(cid, c["name"], color),
        "sparsity": percent(c.get("sparsity")),
        "clean": percent(clean.get("accuracy"), 2),
        "corrupted": percent(s.get("mean_corruption_accuracy"), 2),
        "relative": number(s.get("relative_robustness"), 3),
        "margin": number(clean.get("mean_margin"), 3),
        "angle": _degrees(clean.get("mean_angle")),
        "fragile": count(s.get("fragile_samples")),
        "robust": count(s.get("robust_samples")),
        "samples": count(s.get("n_samples")),
        "speed": f"{speed:,.0f}" if isinstance(speed, (int, float)) and np.isfinite(speed) else "—",
    }


def robustness_table(
    ids: Sequence[int], checkpoints: Mapping[int, dict], summaries: Mapping[int, dict], colors: dict[int, str]
) -> AgGrid | html.P:
    rows = [
        _row(cid, checkpoints[cid], summaries[cid], colors[cid])
        for cid in ids
        if cid in checkpoints and isinstance(summaries.get(cid), dict)
    ]
    return grid(COLUMNS, rows, empty="No robustness results yet.", id="robustness-summary")


def _entries(ids: Sequence[int], checkpoints: Mapping[int, dict], summaries: Mapping[int, dict]) -> list:
    return [
        CheckpointSummary(cid, checkpoints[cid]["name"], summaries[cid])
        for cid in ids
        if cid in checkpoints and isinstance(summaries.get(cid), dict)
    ]


def condition_options(entries: Sequence[CheckpointSummary]) -> list[str]:
    """``"clean"`` and every ``"corruption/severity"`` of the summaries."""
    levels = fig_robustness.severities(entries)
    return [fig_robustness.CLEAN] + [
        f"{name}/{s}" for name in fig_robustness.corruption_names(entries) for s in levels
    ]


def default_condition(options: Sequence[str]) -> str:
    """The middle severity of the first corruption (``"clean"`` if there is none)."""
    corrupted = [o for o in options if o != fig_robustness.CLEAN]
    if not corrupted:
        return fig_robustness.CLEAN
    first = corrupted[0].split("/")[0]
    same = [o for o in corrupted if o.split("/")[0] == first]
    return same[len(same) // 2]


def _section(title: str, *children) -> html.Section:
    return html.Section([html.H3(title), *children], className="ps-robustness-section")


def _dropdown(component_id: str, options: list, value, label: str) -> html.Label:
    return html.Label(
        [
            label,
            dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, className="ps-dd"),
        ],
        className="ps-robustness-control",
    )


def _accuracy_section(
    entries: list[CheckpointSummary], colors: dict[int, str], settings: Mapping | None
) -> html.Section:
    levels = fig_robustness.severities(entries)
    options = [{"label": "mean over severities", "value": MEAN_SEVERITY}] + [
        {"label": f"severity {s}", "value": s} for s in levels
    ]
    severity = pick(settings, "severity", levels, MEAN_SEVERITY)
    level = None if severity == MEAN_SEVERITY else severity
    return _section(
        "Accuracy under corruption",
        html.Div([_dropdown(SEVERITY_ID, options, severity, "heatmap: ")], className="ps-row"),
        graph(fig_robustness.accuracy_heatmap(entries, level), name="robustness-heatmap", id=HEATMAP_FIG_ID),
        graph(
            fig_robustness.severity_curves(entries, colors),
            name="robustness-severity",
            id="fig-robustness-severity",
        ),
    )


def _condition(entries: Sequence[CheckpointSummary], settings: Mapping | None) -> tuple[list[str], str]:
    """The conditions to choose from, and the settings' one (the default when it is not among them)."""
    conditions = condition_options(entries)
    return conditions, pick(settings, "condition", conditions, default_condition(conditions))


def _sample_section(
    entries: list[CheckpointSummary], colors: dict[int, str], settings: Mapping | None, dataset_id: int | None
) -> html.Section:
    choices = [{"label": e.label, "value": e.checkpoint_id} for e in entries]
    ids = [e.checkpoint_id for e in entries]
    conditions, condition = _condition(entries, settings)
    a, b = pick(settings, "a", ids, ids[0]), pick(settings, "b", ids, ids[-1])
    quantity = pick(settings, "quantity", fig_robustness.QUANTITIES, "correct")
    controls = html.Div(
        [
            _dropdown(A_ID, choices, a, "checkpoint A: "),
            _dropdown(B_ID, choices, b, "checkpoint B: "),
            _dropdown(CONDITION_ID, conditions, condition, "condition: "),
            _dropdown(
                QUANTITY_ID,
                [{"label": v, "value": k} for k, v in fig_robustness.QUANTITIES.items()],
                quantity,
                "embed by: ",
            ),
        ],
        className="ps-row",
    )
    # drawn with the tab (its callbacks then only redraw on a change): one request and one drawing less
    angle, difference = sample_figures(entries, dataset_id, a, b, condition)
    embedding, cka = overview_figures(entries, colors, dataset_id, quantity)
    return _section(
        "Per-sample geometry",
        controls,
        html.P("Click a point to open that sample in the explorer below.", className="ps-note"),
        graph(angle, name="robustness-angle", id=ANGLE_FIG_ID),
        html.Div(
            [
                graph(difference, name="robustness-difference", id=DIFF_FIG_ID),
                graph(embedding, name="robustness-embedding", id=EMBED_FIG_ID),
            ],
            className="ps-grid2",
        ),
        graph(cka, name="robustness-cka", id=CKA_FIG_ID),
    )


def _explorer_section(
    entries: list[CheckpointSummary],
    colors: dict[int, str],
    settings: Mapping | None,
    dataset_id: int | None,
) -> html.Section:
    """The sample explorer, with the settings' ``sample`` (an index) open; one beyond the results says so."""
    sample = (settings or {}).get("sample")
    _conditions, condition = _condition(entries, settings)
    index = dcc.Input(id=INDEX_ID, type="number", min=0, step=1, debounce=True, value=sample)
    detail = (
        explorer_detail(entries, colors, dataset_id, sample, condition)
        if sample is not None
        else html.P("Pick a sample.", className="ps-note")
    )
    return _section(
        "Sample explorer",
        html.Div(
            [html.Label(["open sample #", index], className="ps-robustness-control")],
            className="ps-row",
        ),
        dcc.Store(id=SAMPLE_STORE, data=sample),
        html.Div(id=DETAIL_ID, children=detail),
        html.Div(id=LISTS_ID, children=listed_samples(entries, dataset_id, condition)),
    )


def robustness_view(
    ids: Sequence[int],
    checkpoints: dict[int, dict],
    summaries: dict[int, dict],
    jobs: dict[int, dict],
    *,
    settings: Mapping | None = None,
    dataset_id: int | None = None,
) -> list:
    """Everything the robustness tab shows for the checkpoints ``ids`` (unknown ids are skipped).
    ``settings`` (:func:`dashboard.state.parse_settings`) gives the controls' first values where they
    are among the options: severity, a, b, condition, quantity and the open sample. The per-sample
    figures and lists read the artifacts of the results on ``dataset_id``."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    missing = [cid for cid in known if cid not in summaries]
    out: list = unknown_note(ids, checkpoints)
    out.append(missing_results(missing, checkpoints, jobs, ANALYSIS))
    entries = _entries(known, checkpoints, summaries)
    if entries:
        out += [
            robustness_table(known, checkpoints, summaries, colors),
            _accuracy_section(entries, colors, settings),
            _section(
                "Neural collapse and dead ReLUs",
                html.Div(
                    [
                        graph(
                            fig_robustness.collapse_bars(entries, colors),
                            name="robustness-collapse",
                            id="fig-robustness-collapse",
                        ),
                        graph(
                            fig_robustness.dead_relu_heatmap(entries),
                            name="robustness-dead-relu",
                            id="fig-robustness-dead-relu",
                        ),
                    ],
                    className="ps-grid2",
                ),
            ),
            _sample_section(entries, colors, settings, dataset_id),
            _explorer_section(entries, colors, settings, dataset_id),
        ]
    return [o for o in out if o is not None]


# ----------------------------------------------------------------------------------------- per sample


def aligned(artifacts: Mapping[int, Mapping[str, np.ndarray]], key: str) -> tuple[list[str], dict]:
    """The shared conditions and, per checkpoint, ``key`` restricted to them and to the shared samples."""
    usable = {cid: a for cid, a in artifacts.items() if a is not None and "conditions" in a and key in a}
    conditions = fig_robustness.shared_conditions(usable)
    if fig_robustness.CLEAN not in conditions or not usable:
        return [], {}
    n = min(a[key].shape[1] for a in usable.values())
    out = {}
    for cid, a in usable.items():
        rows = [fig_robustness.condition_index(a, c) for c in conditions]
        out[cid] = a[key][rows, :n]
    return conditions, out


def ranked_samples(artifacts: Mapping[int, Mapping[str, np.ndarray]], count: int = LIST_COUNT) -> tuple:
    """(fragile, robust) entries of :func:`dashboard.figures.robustness.rank_samples`, clean first."""
    conditions, correct = aligned(artifacts, "correct")
    _, margin = aligned(artifacts, "margin")
    ids = [cid for cid in correct if cid in margin]
    if not ids:
        return [], []
    order = [conditions.index(fig_robustness.CLEAN)] + [
        i for i, c in enumerate(conditions) if c != fig_robustness.CLEAN
    ]
    return fig_robustness.rank_samples(
        [correct[cid][order] for cid in ids], [margin[cid][order] for cid in ids], count
    )


def thumbnail(pixels: np.ndarray, size: int = THUMB_PX) -> str:
    """One image ``(C, H, W)`` in [0, 1] as a PNG data URI, upscaled by a whole factor (nearest) or shrunk."""
    from PIL import Image

    img = np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    img = np.moveaxis(img, 0, -1) if img.shape[0] == 3 else img[0]  # (H, W, 3) or (H, W): grey
    image = Image.fromarray(np.round(img * 255).astype(np.uint8))
    if max(image.size) > size:  # a large photo: shrink it, so a list of thumbnails stays small
        image.thumbnail((size, size), Image.BILINEAR)
    else:
        factor = size // max(image.size)
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def corrupted(pixels: np.ndarray, condition: str, seed: int = 0) -> np.ndarray | None:
    """``pixels (N, C, H, W)`` under ``"name/severity"``, drawn from ``seed``; ``None`` if not generated."""
    import torch

    from workers.robustness.corruptions import CORRUPTIONS, corrupt

    name, _, severity = str(condition).partition("/")
    if name not in CORRUPTIONS or not severity.isdigit() or len(pixels) == 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    return corrupt(torch.from_numpy(pixels).float(), name, int(severity), generator=generator).numpy()


def _image(uri: str | None, caption: str, size: int) -> html.Figure:
    body = html.Img(src=uri, width=size, height=size, alt=caption) if uri else html.Span("no image")
    return html.Figure(
        [body, html.Figcaption(caption)],
        style={"display": "inline-block", "margin": "0 0.4rem 0 0", "textAlign": "center"},
    )


def sample_button(entry: dict, kind: str, clean_uri: str | None, corrupted_uri: str | None) -> html.Button:
    i = entry["index"]
    what = (
        f"{entry['flips']}/{entry['pairs']} flips"
        if kind == "fragile"
        else f"{entry['correct']}/{entry['pairs']} correct"
    )
    images = [html.Img(src=u, width=THUMB_PX, height=THUMB_PX) for u in (clean_uri, corrupted_uri) if u]
    return html.Button(
        [*images, html.Div(f"#{i}: {what}")],
        id={"type": PICK_TYPE, "index": i},
        n_clicks=0,
        className="ps-small",
        title=f"open sample {i}; mean margin {entry['mean_margin']:.3g}",
        style={"margin": "0.2rem"},
    )


def sample_lists(
    fragile: list[dict],
    robust: list[dict],
    images: Mapping[int, tuple[str | None, str | None]],
    condition: str,
) -> html.Div:
    """Two rows of buttons (clean and ``condition`` thumbnails) that open a sample."""

    def row(title: str, entries: list[dict], kind: str, empty: str):
        buttons = [sample_button(e, kind, *images.get(e["index"], (None, None))) for e in entries]
        return html.Div(
            [html.H4(title), html.Div(buttons) if buttons else html.P(empty, className="ps-note")]
        )

    return html.Div(
        [
            row(
                "Most fragile (correct clean, wrong under the most conditions)",
                fragile,
                "fragile",
                "No sample flips under corruption.",
            ),
            row(
                "Most robust (correct under the most conditions, largest smallest margin)",
                robust,
                "robust",
                "No sample is correct clean for every checkpoint.",
            ),
            html.P(f"Thumbnails: clean, then {condition}; {REDRAWN}.", className="ps-note"),
        ]
    )


DETAIL_COLUMNS = (
    Column("name", "checkpoint"),
    *(
        Column(f"{where}_{key}", f"{where} {title}", numeric=key != "prediction")
        for where in ("clean", "corrupted")
        for key, title in (
            ("prediction", "prediction"),
            ("angle", "angle"),
            ("feature_norm", "norm"),
            ("margin", "margin"),
        )
    ),
)


def _values(a: Mapping[str, np.ndarray], k: int | None, i: int, where: str) -> dict:
    if k is None or i >= a["prediction"].shape[1]:
        return {}
    ok = bool(a["correct"][k, i])
    return {
        f"{where}_prediction": f"{int(a['prediction'][k, i])} {'✓' if ok else '✗'}",
        f"{where}_angle": _degrees(float(a["angle"][k, i])),
        f"{where}_feature_norm": number(float(a["feature_norm"][k, i])),
        f"{where}_margin": number(float(a["margin"][k, i])),
    }


def sample_rows(
    artifacts: Mapping[int, Mapping[str, np.ndarray]],
    names: Mapping[int, str],
    colors: Mapping[int, str],
    index: int,
    condition: str,
) -> list[dict]:
    """One row per checkpoint with geometry: prediction (✓/✗), angle, norm and margin, clean and corrupted."""
    rows = []
    for cid, a in artifacts.items():
        if a is None or not all(k in a for k in DETAIL_KEYS) or index >= a["prediction"].shape[1]:
            continue
        k_clean = fig_robustness.condition_index(a, fig_robustness.CLEAN)
        k_other = fig_robustness.condition_index(a, condition)
        rows.append(
            {
                "name": name_cell(cid, names.get(cid, "?"), colors.get(cid, "#333")),
                **_values(a, k_clean, index, "clean"),
                **_values(a, k_other, index, "corrupted"),
            }
        )
    return rows


def sample_detail(
    index: int | None,
    artifacts: Mapping[int, Mapping[str, np.ndarray]],
    names: Mapping[int, str],
    colors: Mapping[int, str],
    condition: str,
    images: Sequence[tuple[str, str | None]] = (),
    note: str | None = None,
) -> html.Div:
    """The selected sample: its images (caption, data URI) and one table row per checkpoint."""
    if index is None:
        return html.Div(html.P("Click a point above or a sample below to open it.", className="ps-note"))
    labels = next((a["labels"] for a in artifacts.values() if a is not None and "labels" in a), None)
    if labels is None or not 0 <= index < len(labels):
        return html.Div(html.P(f"Sample #{index} is not in these results.", className="ps-note"))
    rows = sample_rows(artifacts, names, colors, index, condition)
    figures = [_image(uri, caption, DETAIL_PX) for caption, uri in images]
    return html.Div(
        [
            html.H4(f"Sample #{index}, true class {int(labels[index])}"),
            html.Div(figures) if figures else None,
            html.P(note or REDRAWN + ".", className="ps-note"),
            table(
                tuple(
                    Column(c.key, c.header.replace("corrupted", condition), c.numeric) for c in DETAIL_COLUMNS
                ),
                rows,
                empty="No per-sample geometry for this sample.",
                id="robustness-sample-table",
            ),
        ],
        className="ps-panel",
    )


def _severity_conditions(condition: str, options: Sequence[str]) -> list[str]:
    name = condition.split("/")[0]
    return [o for o in options if o.split("/")[0] == name and o != fig_robustness.CLEAN]


def clicked_sample(click: dict | None) -> int | None:
    """The sample index of a clicked point (``customdata[0]``) of a per-sample figure."""
    try:
        value = click["points"][0]["customdata"]
        value = value[0] if isinstance(value, list) else value
        return int(value)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------- callbacks


def _context(state: dict | None) -> tuple[list[CheckpointSummary], dict[int, str], int | None]:
    """The entries with results, a color per known checkpoint, and the data set, for a compare state."""
    state = state or {}
    ids = state.get("ids") or []
    checkpoints = {c["id"]: c for c in data.list_checkpoints() if c["id"] in ids}
    known = [cid for cid in ids if cid in checkpoints]
    summaries = data.results(ANALYSIS, known, state.get("dataset"))
    return _entries(known, checkpoints, summaries), checkpoint_colors(known), state.get("dataset")


def _geometry(ids: Sequence[int], dataset_id: int | None, keys: Sequence[str]) -> dict[int, dict]:
    """Per checkpoint the arrays ``keys`` of its newest result's artifact on ``dataset_id`` (robustness
    results always name their data set: none without one)."""
    if dataset_id is None:
        return {}
    found = data.result_artifacts(ANALYSIS, ids, dataset_id, ARTIFACT, keys)
    return {cid: found[cid] for cid in ids if found.get(cid)}


def _images(dataset_id: int | None, indices: list[int], conditions: Sequence[str], seed: int) -> list:
    """Per condition the images of ``indices`` as data URIs (``None`` where they cannot be made)."""
    try:
        pixels = data.dataset_images(dataset_id, indices) if dataset_id is not None else None
    except data.ActionError:
        pixels = None
    out = []
    for condition in conditions:
        made = (
            pixels
            if condition == fig_robustness.CLEAN or pixels is None
            else corrupted(pixels, condition, seed)
        )
        out.append([thumbnail(p) for p in made] if made is not None else [None] * len(indices))
    return out


def _seed(entries: Sequence[CheckpointSummary]) -> int:
    seed = entries[0].summary.get("seed") if entries else 0
    return seed if isinstance(seed, int) else 0


def register_robustness_callbacks(app: Dash) -> None:
    """The robustness tab's switches, the figures read from artifacts, and the sample explorer."""

    @app.callback(
        Output(HEATMAP_FIG_ID, "figure"),
        Input(SEVERITY_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def redraw_heatmap(severity, state):
        entries, _colors, _ds = _context(state)
        level = int(severity) if str(severity) in ("1", "2", "3", "4", "5") else None  # else the mean
        return fig_robustness.accuracy_heatmap(entries, level)

    @app.callback(
        Output(ANGLE_FIG_ID, "figure"),
        Output(DIFF_FIG_ID, "figure"),
        Input(A_ID, "value"),
        Input(B_ID, "value"),
        Input(CONDITION_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,  # the view draws them with the tab
    )
    def draw_samples(a, b, condition, state):
        entries, _colors, dataset_id = _context(state)
        return sample_figures(entries, dataset_id, a, b, condition)

    @app.callback(
        Output(EMBED_FIG_ID, "figure"),
        Output(CKA_FIG_ID, "figure"),
        Input(QUANTITY_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def draw_overview(quantity, state):
        entries, colors, dataset_id = _context(state)
        return overview_figures(entries, colors, dataset_id, quantity)

    @app.callback(
        Output(LISTS_ID, "children"),
        Input(CONDITION_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,
    )
    def list_samples(condition, state):
        entries, _colors, dataset_id = _context(state)
        return listed_samples(entries, dataset_id, condition)

    @app.callback(
        Output(SAMPLE_STORE, "data"),
        *(Input(fig, "clickData") for fig in SAMPLE_FIGS),
        Input({"type": PICK_TYPE, "index": ALL}, "n_clicks"),
        Input(INDEX_ID, "value"),
        prevent_initial_call=True,
    )
    def pick_sample(*_inputs):
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and trigger.get("type") == PICK_TYPE:
            return int(trigger["index"]) if ctx.triggered[0]["value"] else dash.no_update
        if trigger == INDEX_ID:
            value = ctx.triggered[0]["value"]
            return int(value) if isinstance(value, (int, float)) and value >= 0 else dash.no_update
        picked = clicked_sample(ctx.triggered[0]["value"]) if trigger in SAMPLE_FIGS else None
        return picked if picked is not None else dash.no_update

    @app.callback(
        Output(A_ID, "value"),
        Input(EMBED_FIG_ID, "clickData"),
        prevent_initial_call=True,
    )
    def pick_checkpoint(click):
        picked = clicked_sample(click)  # the embedding's customdata is the checkpoint id
        return picked if picked is not None else dash.no_update

    @app.callback(
        Output(DETAIL_ID, "children"),
        Input(SAMPLE_STORE, "data"),
        Input(CONDITION_ID, "value"),
        State("compare-state", "data"),
        prevent_initial_call=True,  # the view opens the URL's sample
    )
    def show_sample(index, condition, state):
        entries, colors, dataset_id = _context(state)
        return explorer_detail(entries, colors, dataset_id, index, condition)


def sample_figures(
    entries: Sequence[CheckpointSummary], dataset_id: int | None, a: int | None, b: int | None, condition: str
) -> tuple:
    """Checkpoint A's angle-norm panels and A's margins against B's under ``condition``."""
    labels = {e.checkpoint_id: e.label for e in entries}
    keys = ("conditions", "labels", "correct", "angle", "feature_norm", "margin")
    found = _geometry([cid for cid in (a, b) if cid in labels], dataset_id, keys)
    return (
        fig_robustness.angle_norm_grid(found.get(a), condition, labels.get(a, "?")),
        fig_robustness.difference_scatter(
            found.get(a), found.get(b), condition, labels.get(a, "?"), labels.get(b, "?")
        ),
    )


def listed_samples(entries: Sequence[CheckpointSummary], dataset_id: int | None, condition: str) -> list:
    """The most fragile and the most robust samples of the selection, clean and under ``condition``."""
    found = _geometry([e.checkpoint_id for e in entries], dataset_id, RANK_KEYS)
    fragile, robust = ranked_samples(found)
    indices = [e["index"] for e in fragile + robust]
    clean, other = _images(dataset_id, indices, [fig_robustness.CLEAN, condition], _seed(entries))
    return sample_lists(
        fragile, robust, dict(zip(indices, zip(clean, other, strict=True), strict=True)), condition
    )


def overview_figures(
    entries: Sequence[CheckpointSummary], colors: dict[int, str], dataset_id: int | None, quantity: str
) -> tuple:
    """The embedding of the checkpoints and their CKA matrix, read from the artifacts."""
    ids = [e.checkpoint_id for e in entries]
    labels = {e.checkpoint_id: e.label for e in entries}
    vectors = fig_robustness.sample_vectors(_geometry(ids, dataset_id, ("conditions", quantity)), quantity)
    features = _geometry(ids, dataset_id, ("clean_features",))
    with_features = [cid for cid in ids if cid in features]
    matrix = _cka(with_features, features, dataset_id) if with_features else None
    shared = min((features[cid]["clean_features"].shape[0] for cid in with_features), default=0)
    return (
        fig_robustness.checkpoint_embedding(vectors, labels, colors, quantity),
        fig_robustness.cka_heatmap(
            matrix, [labels[cid] for cid in with_features], min(shared, fig_robustness.CKA_SAMPLES)
        ),
    )


def _cka(ids: list[int], features: Mapping[int, dict], dataset_id: int | None) -> np.ndarray:
    """The CKA matrix of the checkpoints' clean features, cached by their artifacts' keys (content
    addresses): 20 checkpoints took 0.23 s, on every drawing of the tab."""
    keys = data.artifact_keys(ANALYSIS, ids, dataset_id, ARTIFACT)
    cache_key = tuple(keys.get(cid) for cid in ids)
    matrix = data.cka_matrix_cache.get(cache_key)
    if matrix is None:
        matrix = fig_robustness.cka_from_features([features[cid]["clean_features"] for cid in ids])
        if None not in cache_key:
            data.cka_matrix_cache.put(cache_key, matrix, matrix.nbytes)
    return matrix


def explorer_detail(
    entries: Sequence[CheckpointSummary],
    colors: dict[int, str],
    dataset_id: int | None,
    index: int | None,
    condition: str,
) -> html.Div:
    """The explorer's panel for one sample: images under each severity of ``condition``'s corruption."""
    names = {e.checkpoint_id: e.name for e in entries}
    found = _geometry(list(names), dataset_id, DETAIL_KEYS)
    if index is None:
        return sample_detail(None, found, names, colors, condition)
    shown = [fig_robustness.CLEAN, *_severity_conditions(condition, condition_options(entries))]
    made = _images(dataset_id, [int(index)], shown, _seed(entries))
    note = None if made and made[0][0] else "The data set's images cannot be read here; numbers only."
    images = [(c, uris[0]) for c, uris in zip(shown, made, strict=True)]
    return sample_detail(int(index), found, names, colors, condition, images, note)
