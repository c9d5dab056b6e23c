"""Figures for the ``hessian`` analysis (summary keys: see ``workers/hessian/analysis.py``).

Each function takes one :class:`CheckpointSummary` per checkpoint and a color per checkpoint id, so a
checkpoint keeps its color across the page. Values may be ``None`` (non-finite floats are stored so) and
lists may be empty; a figure with nothing to draw says so instead of raising.

- :func:`eigenvalue_bars`: the top and most negative eigenvalues of each checkpoint, outliers solid and
  the bulk faded, residual bounds as error bars; grouped for a few checkpoints, small multiples for more.
- :func:`sparsity_trends`: top eigenvalue, trace and number of outliers against sparsity (a family).
- :func:`density_overlay` and :func:`density_multiples`: the SLQ densities on a log scale, clipped to a
  floor, with each checkpoint's outliers as ticks along the bottom and the number of classes noted
  (Papyan 2020 finds ``C`` outliers for ``C`` classes).
- :func:`per_layer_heatmap`: the top eigenvalue of each parameter group's diagonal block, group x
  checkpoint, on a log color scale.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures.common import (
    LAYOUT,
    TEMPLATE,
    CheckpointSummary,
    checkpoint_meta,
    empty_figure,
    entry_colors,
    finite,
    panel_grid,
    panel_rows,
    plain,
    points_meta,
)

GROUPED_MAX = 6  # eigenvalue bars: grouped up to this many checkpoints, small multiples beyond
DENSITY_FLOOR = 1e-9  # densities are clipped to this fraction of the highest peak, so a log axis works
BULK_OPACITY = 0.4
OUTLIER_TICK = dict(symbol="line-ns-open", size=14, line=dict(width=2))

NO_RESULTS = "no hessian results yet"


def _numbers(values: object) -> list[float | None]:
    return [finite(v) for v in values] if isinstance(values, list) else []


def _outliers(summary: dict) -> list[float]:
    return [v for v in _numbers(summary.get("outliers")) if v is not None]


def _num_classes(summary: dict) -> int | None:
    c = summary.get("num_classes")
    return c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else None


def _is_outlier(value: float | None, outliers: Sequence[float]) -> bool:
    return value is not None and any(math.isclose(value, o, rel_tol=1e-9, abs_tol=0.0) for o in outliers)


DENSITY_POINTS = 250  # points of each density curve drawn (the result keeps its full grid)


def _panel_line(axes: dict, *, x: float | None = None, y: float | None = None, **line) -> dict:
    """A vertical (``x``) or horizontal (``y``) line across the panel on ``axes`` (:func:`panel_grid`), as a
    layout shape. (``fig.add_hline(row=, col=)`` per panel costs plotly.py ~0.15 s each: 20 panels took 3 s.)
    """
    xa, ya = axes["xaxis"], axes["yaxis"]
    if x is not None:
        return dict(type="line", xref=xa, x0=x, x1=x, yref=f"{ya} domain", y0=0, y1=1, line=line)
    return dict(type="line", xref=f"{xa} domain", x0=0, x1=1, yref=ya, y0=y, y1=y, line=line)


# -- eigenvalue bars ----------------------------------------------------------------------------------


def _top_label(i: int) -> str:
    return f"λ{i + 1}"


def _negative_label(i: int) -> str:
    return "λmin" if i == 0 else f"λmin+{i}"


def _eigen_bars(e: CheckpointSummary, color: str, *, faded: bool = True) -> dict:
    """x, y, residual error bars and per-bar styling of one checkpoint's eigenvalues."""
    s = e.summary
    top, neg = _numbers(s.get("top_eigenvalues")), _numbers(s.get("negative_eigenvalues"))
    res = _numbers(s.get("residuals")) + [None] * len(top)
    neg_res = _numbers(s.get("negative_residuals")) + [None] * len(neg)
    outliers = _outliers(s)
    flags = [_is_outlier(v, outliers) for v in top]
    kinds = ["outlier" if f else "bulk" for f in flags] + ["negative"] * len(neg)
    errors = res[: len(top)] + neg_res[: len(neg)]
    return dict(
        x=[_top_label(i) for i in range(len(top))] + [_negative_label(i) for i in range(len(neg))],
        y=top + neg,
        error_y=dict(type="data", array=errors, thickness=1, width=2),
        meta=checkpoint_meta(e.checkpoint_id),
        customdata=[[k, "?" if r is None else f"{r:.2g}"] for k, r in zip(kinds, errors, strict=True)],
        marker=dict(
            color=color,
            opacity=[1.0 if f or not faded else BULK_OPACITY for f in flags] + [0.8] * len(neg),
            pattern_shape=[""] * len(top) + ["/"] * len(neg),
        ),
        hovertemplate="%{x} = %{y:.4g}, residual %{customdata[1]} (%{customdata[0]})<extra>"
        + e.label
        + "</extra>",
    )


def _eigen_categories(entries: Sequence[CheckpointSummary]) -> list[str]:
    k = max((len(e.summary.get("top_eigenvalues") or []) for e in entries), default=0)
    n = max((len(e.summary.get("negative_eigenvalues") or []) for e in entries), default=0)
    return [_top_label(i) for i in range(k)] + [_negative_label(i) for i in range(n)]


def eigenvalue_bars(
    entries: Sequence[CheckpointSummary],
    colors: dict[int, str] | None = None,
    *,
    grouped: bool | None = None,
    columns: int = 5,
) -> go.Figure:
    """Top eigenvalues (descending) then the most negative ones (hatched), one color per checkpoint.

    Outliers (beyond the bulk edge) are solid, the rest of the top eigenvalues faded; the error bars are
    the Lanczos residuals ``||H u - θ u||``, which bound the distance to a true eigenvalue. ``grouped``
    defaults to grouped bars for up to :data:`GROUPED_MAX` checkpoints and small multiples (one panel per
    checkpoint, shared axes, the bulk edge dashed) beyond.
    """
    entries = [
        e for e in entries if e.summary.get("top_eigenvalues") or e.summary.get("negative_eigenvalues")
    ]
    if not entries:
        return empty_figure("no eigenvalues to show")
    colors = entry_colors(entries, colors)
    categories = _eigen_categories(entries)
    grouped = len(entries) <= GROUPED_MAX if grouped is None else grouped
    title = "Eigenvalues: top (solid: outlier, faded: bulk) and most negative (hatched)"
    if grouped:
        fig = go.Figure()
        for e in entries:
            fig.add_bar(name=e.label, **_eigen_bars(e, colors[e.checkpoint_id]))
        fig.update_layout(barmode="group", title=title, **LAYOUT)
        fig.update_xaxes(categoryorder="array", categoryarray=categories, title_text="eigenvalue")
        fig.update_yaxes(title_text="λ", zeroline=True)
        return fig
    rows = panel_rows(len(entries), columns)
    fig = go.Figure()
    panels = panel_grid(
        fig, [e.label for e in entries], columns=columns, h_gap=0.03, v_gap=min(0.08, 0.4 / rows)
    )
    edges = []
    for e, axes in zip(entries, panels, strict=True):
        fig.add_bar(showlegend=False, **_eigen_bars(e, colors[e.checkpoint_id]), **axes)
        edge = finite(e.summary.get("bulk_edge"))
        if edge is not None:
            edges.append(_panel_line(axes, y=edge, dash="dash", width=1, color="#616e7c"))
    fig.update_layout(shapes=edges)
    fig.update_xaxes(categoryorder="array", categoryarray=categories, tickangle=-45, tickfont_size=9)
    fig.update_layout(
        title=title + "; dashed: bulk edge",
        height=110 + 190 * rows,
        template=TEMPLATE,
        margin=dict(l=50, r=20, t=90, b=40),
    )
    fig.update_annotations(font_size=11)
    return fig


# -- against sparsity ---------------------------------------------------------------------------------

_TRENDS = (
    ("λ1 (top eigenvalue)", lambda s: finite((s.get("top_eigenvalues") or [None])[0]), lambda s: None),
    ("trace", lambda s: finite(s.get("trace")), lambda s: finite(s.get("trace_stderr"))),
    ("outliers", lambda s: float(len(_outliers(s))), lambda s: None),
)


def sparsity_trends(
    entries: Sequence[CheckpointSummary],
    sparsity: dict[int, float | None],
    colors: dict[int, str] | None = None,
) -> go.Figure:
    """Top eigenvalue, trace (± its standard error) and the number of outliers against sparsity (%).

    One panel per metric, side by side; one marker per checkpoint in its color (no lines: a family's
    pruning methods share sparsities); an ``x`` marks a top eigenvalue whose Lanczos run did not converge.
    The outlier panel draws the number of classes ``C`` for reference. Checkpoints without a sparsity are
    left out.
    """
    placed = sorted(
        (
            (100 * sparsity[e.checkpoint_id], e)
            for e in entries
            if finite(sparsity.get(e.checkpoint_id)) is not None
        ),
        key=lambda p: p[0],
    )
    if not placed:
        return empty_figure("no hessian results with a known sparsity")
    colors = entry_colors(entries, colors)
    fig = make_subplots(
        rows=1,
        cols=len(_TRENDS),
        shared_xaxes=True,
        subplot_titles=[t[0] for t in _TRENDS],
        horizontal_spacing=0.07,
    )
    for col, (name, value, error) in enumerate(_TRENDS, start=1):
        points = [(x, value(e.summary), error(e.summary), e) for x, e in placed]
        points = [p for p in points if p[1] is not None]
        fig.add_scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            error_y=dict(type="data", array=[p[2] or 0.0 for p in points], visible=any(p[2] for p in points)),
            text=[p[3].label for p in points],
            meta=points_meta(p[3].checkpoint_id for p in points),
            mode="markers",
            marker=dict(
                size=9,
                color=[colors[p[3].checkpoint_id] for p in points],
                symbol=[
                    "x" if col == 1 and p[3].summary.get("converged") is False else "circle" for p in points
                ],
            ),
            name=name,
            showlegend=False,
            hovertemplate="%{text}<br>sparsity %{x:.1f}%<br>" + name + " %{y:.4g}<extra></extra>",
            row=1,
            col=col,
        )
    for c in sorted({c for _, e in placed if (c := _num_classes(e.summary)) is not None}):
        fig.add_hline(
            y=c,
            line=dict(dash="dot", width=1, color="#616e7c"),
            annotation_text=f"C = {c} classes",
            annotation_position="top left",
            row=1,
            col=3,
        )
    fig.update_xaxes(title_text="sparsity (%)")
    fig.update_yaxes(rangemode="tozero", col=3)
    fig.update_layout(
        title="Against sparsity", height=380, template=TEMPLATE, margin=dict(l=60, r=20, t=80, b=50)
    )
    return fig


# -- spectral densities -------------------------------------------------------------------------------


def thin(x: list[float], y: list[float], points: int = DENSITY_POINTS) -> tuple[list[float], list[float]]:
    """About ``points`` of a curve, for drawing: in each of that many blocks of neighbours the point of
    largest ``y`` (so narrow peaks, such as an outlier's, survive), and the ends. A 1,000-point density of 20
    checkpoints in two figures made the Hessian tab's response 1.8 MB."""
    n = len(x)
    if n <= points:
        return x, y
    step = math.ceil(n / points)
    keep = {0, n - 1}
    for start in range(0, n, step):
        block = range(start, min(start + step, n))
        keep.add(max(block, key=lambda j: y[j]))
    order = sorted(keep)
    return [x[j] for j in order], [y[j] for j in order]


def _density(summary: dict) -> tuple[list[float], list[float]]:
    """The density's finite ``(x, y)`` pairs, ``y`` at least 0."""
    d = summary.get("density") or {}
    x, y = d.get("x"), d.get("y")
    if isinstance(x, list) and isinstance(y, list) and all(type(v) is float for v in (*x, *y)):
        n = min(len(x), len(y))  # floats only, as the worker writes them: at C speed (it ran 5x per figure)
        xa, ya = np.asarray(x[:n]), np.asarray(y[:n])
        ok = np.isfinite(xa) & np.isfinite(ya)
        return xa[ok].tolist(), np.maximum(ya[ok], 0.0).tolist()
    pairs = [
        (x, max(y, 0.0))
        for x, y in zip(_numbers(d.get("x")), _numbers(d.get("y")), strict=False)
        if x is not None and y is not None
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _log_range(entries: Sequence[CheckpointSummary], floor_ratio: float) -> tuple[float, list[float]] | None:
    """``(floor, [log10 low, log10 high])`` over every density, or ``None`` when all are zero or empty.

    The range leaves room below the floor for the outlier ticks (:func:`tick_level`).
    """
    peak = max((max(_density(e.summary)[1], default=0.0) for e in entries), default=0.0)
    if peak <= 0:
        return None
    floor = peak * floor_ratio
    return floor, [math.log10(floor) - 1.2, math.log10(peak) + 0.4]


def tick_level(floor: float) -> float:
    """Where the outlier ticks sit: just below the floor that the clipped densities run along."""
    return floor / 10**0.6


def outlier_note(entries: Sequence[CheckpointSummary]) -> str:
    """``"C = 10 classes; 9 outliers found"``, or a range of counts over several checkpoints."""
    classes = sorted({c for e in entries if (c := _num_classes(e.summary)) is not None})
    counts = [len(_outliers(e.summary)) for e in entries]
    c_text = "C = " + "/".join(map(str, classes)) + " classes" if classes else "C unknown"
    if not counts:
        return c_text
    if min(counts) == max(counts):
        found = f"{counts[0]} outlier{'s' if counts[0] != 1 else ''} found"
    else:
        found = f"{min(counts)}–{max(counts)} outliers found (median {statistics.median(counts):g})"
    return f"{c_text}; {found}"


def _ticks(e: CheckpointSummary, floor: float, color: str, **cell) -> dict:
    outliers = _outliers(e.summary)
    return dict(
        x=outliers,
        y=[tick_level(floor)] * len(outliers),
        mode="markers",
        marker=dict(color=color, **OUTLIER_TICK),
        name=e.label + " outliers",
        meta=checkpoint_meta(e.checkpoint_id),
        legendgroup=str(e.checkpoint_id),
        showlegend=False,
        hovertemplate="outlier λ = %{x:.4g}<extra>" + e.label + "</extra>",
        **cell,
    )


def density_overlay(
    entries: Sequence[CheckpointSummary],
    colors: dict[int, str] | None = None,
    *,
    floor_ratio: float = DENSITY_FLOOR,
) -> go.Figure:
    """Every checkpoint's density on one log-scale axis, with its outliers as ticks along the bottom."""
    with_density = [e for e in entries if _density(e.summary)[0]]
    scale = _log_range(with_density, floor_ratio)
    if scale is None:
        return empty_figure("no spectral densities (density_vectors = 0, or no results yet)")
    floor, y_range = scale
    colors = entry_colors(entries, colors)
    fig = go.Figure()
    for e in with_density:
        x, y = thin(*_density(e.summary))
        color = colors[e.checkpoint_id]
        fig.add_scatter(
            x=x,
            y=[max(v, floor) for v in y],
            mode="lines",
            line=dict(color=color, width=1.5),
            name=e.label,
            meta=checkpoint_meta(e.checkpoint_id),
            legendgroup=str(e.checkpoint_id),
            hovertemplate="λ %{x:.4g}: density %{y:.3g}<extra>" + e.label + "</extra>",
        )
        fig.add_scatter(**_ticks(e, floor, color))
    without = [e.label for e in entries if e not in with_density]
    note = outlier_note(with_density) + ("; no density for " + ", ".join(without) if without else "")
    fig.add_annotation(
        text=note,
        xref="paper",
        yref="paper",
        x=1,
        y=1.0,
        xanchor="right",
        yanchor="bottom",
        showarrow=False,
        font=dict(size=12, color="#616e7c"),
    )
    fig.update_yaxes(type="log", range=y_range, title_text="density (log)", exponentformat="power")
    fig.update_xaxes(title_text="eigenvalue λ")
    fig.update_layout(title="Spectral densities (ticks: outliers)", height=460, **LAYOUT)
    return fig


def density_multiples(
    entries: Sequence[CheckpointSummary],
    colors: dict[int, str] | None = None,
    *,
    columns: int = 4,
    floor_ratio: float = DENSITY_FLOOR,
) -> go.Figure:
    """One log-scale density panel per checkpoint on shared axes, outliers as ticks, the bulk edge dashed.

    Each panel's title gives its number of outliers and classes; a checkpoint without a density gets a
    panel that says so (the panel keeps its place, so the grid order is the selection's order).
    """
    scale = _log_range(entries, floor_ratio)
    if not entries or scale is None:
        return empty_figure("no spectral densities (density_vectors = 0, or no results yet)")
    floor, y_range = scale
    colors = entry_colors(entries, colors)
    rows = panel_rows(len(entries), columns)
    titles = []
    for e in entries:
        c = _num_classes(e.summary)
        titles.append(f"{e.label}<br>{len(_outliers(e.summary))} outliers, C = {c if c else '?'}")
    fig = go.Figure()
    panels = panel_grid(fig, titles, columns=columns, h_gap=0.03, v_gap=min(0.1, 0.5 / rows))
    edges = []
    for e, axes in zip(entries, panels, strict=True):
        color = colors[e.checkpoint_id]
        x, y = thin(*_density(e.summary))
        if not x:
            fig.add_annotation(
                text="no density",
                showarrow=False,
                xref=f"{axes['xaxis']} domain",
                yref=f"{axes['yaxis']} domain",
                x=0.5,
                y=0.5,
                font=dict(color="#616e7c"),
            )
            continue
        fig.add_scatter(
            x=x,
            y=[max(v, floor) for v in y],
            mode="lines",
            line=dict(color=color, width=1.2),
            meta=checkpoint_meta(e.checkpoint_id),
            showlegend=False,
            hovertemplate="λ %{x:.4g}: density %{y:.3g}<extra>" + e.label + "</extra>",
            **axes,
        )
        fig.add_scatter(**_ticks(e, floor, color, **axes))
        edge = finite(e.summary.get("bulk_edge"))
        if edge is not None:
            edges.append(_panel_line(axes, x=edge, dash="dash", width=1, color="#9aa5b1"))
    fig.update_layout(shapes=edges)
    fig.update_yaxes(type="log", range=y_range, exponentformat="power", tickfont_size=9)
    fig.update_xaxes(tickfont_size=9)
    fig.update_layout(
        title="Spectral densities, one panel per checkpoint (log scale; ticks: outliers, dashed: bulk edge)",
        height=110 + 200 * rows,
        template=TEMPLATE,
        margin=dict(l=50, r=20, t=100, b=40),
    )
    fig.update_annotations(font_size=11)
    return fig


# -- per layer ----------------------------------------------------------------------------------------


def per_layer_groups(entries: Sequence[CheckpointSummary]) -> list[str]:
    """Parameter-group names over every checkpoint's ``per_layer``, in first-seen order."""
    seen: dict[str, None] = {}
    for e in entries:
        for name in e.summary.get("per_layer") or {}:
            seen.setdefault(name, None)
    return list(seen)


def _layer_cell(entry: dict | None) -> tuple[float | None, str]:
    if not isinstance(entry, dict):
        return None, "absent"
    top = finite((entry.get("top_eigenvalues") or [None])[0])
    n = entry.get("n_params")
    text = "no eigenvalue" if top is None else f"λ1 = {top:.4g}"
    if isinstance(n, int):
        text += f", {n:,} params"
    if entry.get("converged") is False:
        text += ", not converged"
    return (math.log10(top) if top is not None and top > 0 else None), text


def per_layer_heatmap(entries: Sequence[CheckpointSummary]) -> go.Figure:
    """Rows are parameter groups, columns checkpoints; color is log10 of the group's top eigenvalue.

    A group a checkpoint lacks, or one whose top eigenvalue is not positive, is blank (hover says why).
    """
    entries = [e for e in entries if e.summary.get("per_layer")]
    groups = per_layer_groups(entries)
    if not groups:
        return empty_figure("no per-layer spectra yet")
    z, text = [], []
    for g in groups:
        cells = [_layer_cell((e.summary.get("per_layer") or {}).get(g)) for e in entries]
        z.append([c[0] for c in cells])
        text.append([c[1] for c in cells])
    logs = [v for row in z for v in row if v is not None]
    ticks = list(range(math.floor(min(logs)), math.ceil(max(logs)) + 1)) if logs else []
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[e.label for e in entries],
            y=[plain(g) for g in groups],
            text=text,
            colorscale="Viridis",
            colorbar=dict(title=dict(text="λ1"), tickvals=ticks, ticktext=[f"1e{t}" for t in ticks]),
            hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(automargin=True, tickangle=-30)
    fig.update_layout(
        title="Per-layer top eigenvalue (diagonal block of each parameter group, log color scale)",
        template=TEMPLATE,
        height=max(280, 24 * len(groups) + 180),
        margin=dict(l=10, r=10, t=50, b=10),
    )
    return fig
