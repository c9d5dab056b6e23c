"""Figures for the ``landscape`` analysis (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

Each function takes one :class:`CheckpointSummary` per checkpoint and a color per checkpoint id, and
draws only the summaries of its own ``mode`` ("1d", "2d" or "interpolation"), so a page may hand every
summary to every figure. Values may be ``None`` (non-finite floats are stored so), lists may be empty
or ragged; a figure with nothing to draw says so instead of raising.

- :func:`contour_grid`: 2D surfaces as small multiples with one shared color scale and one set of
  contour levels (optionally log10 of the loss), the centre marked.
- :func:`surface_3d`: one checkpoint's 2D surface in 3D.
- :func:`curves_1d`: 1D slices overlaid, loss or accuracy against alpha.
- :func:`interpolation_curves`: loss and error along theta(alpha) = (1 - alpha) theta_A + alpha theta_B,
  with the highest point marked and the barrier in the legend (and annotated, for a few curves).
- :func:`sharpness_vs_sparsity`: the curvature at the centre against sparsity.

Surfaces go to the browser as float32 arrays (Plotly sends numpy arrays as base64 typed arrays, NaN
for a gap): 30 surfaces of 51 x 51 points make about 510 kB of JSON, and building them skips
Plotly's slow per-value validation of nested lists. Curves go as lists rounded to :data:`SIGNIFICANT`
digits, ``None`` for a gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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

COLORSCALE = "Viridis"
SIGNIFICANT = 5  # digits kept in the curves sent to the browser
CONTOUR_LEVELS = 20
ANNOTATE_MAX = 8  # interpolation: barrier annotations and endpoint names for up to this many curves
METRICS = {"loss": "loss", "accuracy": "accuracy"}


# ----------------------------------------------------------------------------------------- input


def _array(values: object, ndim: int) -> np.ndarray | None:
    """A (nested) list of numbers as float64, ``None`` and inf as NaN; ``None`` unless it is a non-empty,
    rectangular, ``ndim``-deep list of numbers."""
    if not isinstance(values, list) or not values:
        return None
    try:
        a = np.array(values, dtype=float)
    except (TypeError, ValueError):  # ragged, or holds something that is not a number
        return None
    if a.ndim != ndim or a.size == 0:
        return None
    a[~np.isfinite(a)] = np.nan
    return a


def _vector(values: object) -> np.ndarray | None:
    return _array(values, 1)


def _matrix(values: object, rows: int, cols: int) -> np.ndarray | None:
    """A nested list of shape (rows, cols) as float64 with NaN gaps; ``None`` if the shape differs."""
    a = _array(values, 2)
    return a if a is not None and a.shape == (rows, cols) else None


def _of_mode(entries: Sequence[CheckpointSummary] | None, mode: str) -> list[CheckpointSummary]:
    return [e for e in entries or () if isinstance(e.summary, dict) and e.summary.get("mode") == mode]


def round_significant(values: np.ndarray, digits: int = SIGNIFICANT) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (NaN, inf and 0 unchanged).

    Dividing by an exact power of ten, never multiplying by an inexact one such as 0.1, gives the
    double nearest the short decimal, so the JSON holds ``0.12346`` rather than ``0.12346000000000001``.
    """
    a = np.asarray(values, dtype=float)
    ok = np.isfinite(a) & (a != 0)
    exponent = np.floor(np.log10(np.abs(np.where(ok, a, 1.0))))
    shift = (digits - 1 - exponent).astype(int)
    with np.errstate(over="ignore", invalid="ignore"):  # subnormals overflow; np.where computes both
        power = 10.0 ** np.abs(shift)
        rounded = np.where(shift >= 0, np.round(a * power) / power, np.round(a / power) * power)
    return np.where(ok & np.isfinite(rounded), rounded, a)


def _json_list(values: np.ndarray) -> list:
    """Rounded values as a list with ``None`` for gaps, which Plotly leaves blank."""
    rounded = round_significant(values).astype(object)
    rounded[~np.isfinite(values)] = None
    return rounded.tolist()


# ------------------------------------------------------------------------------------------- 2D


class Grid:
    """A 2D summary's axes and loss, with loss[i, j] = L(theta + alpha[i] d + beta[j] e)."""

    def __init__(self, alpha: np.ndarray, beta: np.ndarray, loss: np.ndarray, center: float | None):
        self.alpha, self.beta, self.loss, self.center = alpha, beta, loss, center

    @classmethod
    def of(cls, summary: dict) -> Grid | None:
        alpha, beta = _vector(summary.get("alpha")), _vector(summary.get("beta"))
        if alpha is None or beta is None or not (np.isfinite(alpha).all() and np.isfinite(beta).all()):
            return None
        loss = _matrix(summary.get("loss"), len(alpha), len(beta))
        if loss is None or not np.isfinite(loss).any():
            return None
        return cls(alpha, beta, loss, finite(summary.get("center_loss")))

    def values(self, log: bool) -> np.ndarray:
        """The plotted values, (beta, alpha) for Plotly's z[y][x]; log10 of the loss if ``log``."""
        z = self.loss.T
        if not log:
            return z
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)

    def center_value(self, log: bool) -> float | None:
        """The value at alpha = beta = 0 (from the grid if it holds that point, else ``center_loss``)."""
        i, j = np.flatnonzero(self.alpha == 0.0), np.flatnonzero(self.beta == 0.0)
        value = self.loss[i[0], j[0]] if len(i) and len(j) else self.center
        if value is None or not math.isfinite(value) or (log and value <= 0):
            return None
        return math.log10(value) if log else float(value)


def _scale(grids: Sequence[Grid], log: bool) -> tuple[float, float]:
    finite = [z[np.isfinite(z)] for z in (g.values(log) for g in grids)]
    finite = [f for f in finite if f.size]
    if not finite:
        return 0.0, 1.0
    lo, hi = float(min(f.min() for f in finite)), float(max(f.max() for f in finite))
    return (lo, hi) if hi > lo else (lo, lo + max(abs(lo), 1.0) * 1e-6)


def _zlabel(log: bool) -> str:
    return "log₁₀ loss" if log else "loss"


def _usable_grids(entries: Sequence[CheckpointSummary] | None) -> list[tuple[CheckpointSummary, Grid]]:
    pairs = [(e, Grid.of(e.summary)) for e in _of_mode(entries, "2d")]
    return [(e, g) for e, g in pairs if g is not None]


def contour_grid(
    entries: Sequence[CheckpointSummary] | None,
    colors: Mapping[int, str] | None = None,
    log: bool = False,
    *,
    columns: int = 5,
) -> go.Figure:
    """One contour panel per 2D surface, all on one color scale and one set of contour levels.

    x is alpha and y is beta; the summary's ``loss[i][j]`` is indexed (alpha, beta), so it is
    transposed for Plotly's ``z[y][x]``. The shared range runs from the lowest to the highest value
    of any panel; ``log`` plots log10 of the loss (non-positive values left blank), which keeps a
    basin visible next to a steep wall. The centre (alpha = beta = 0) is marked in the checkpoint's color.
    """
    pairs = _usable_grids(entries)
    if not pairs:
        return empty_figure("no 2D landscape results yet")
    colors = entry_colors([e for e, _ in pairs], colors)
    zmin, zmax = _scale([g for _, g in pairs], log)
    rows = panel_rows(len(pairs), columns)
    fig = go.Figure()
    panels = panel_grid(
        fig,
        [e.label for e, _ in pairs],
        columns=columns,
        x_title="α",
        y_title="β",
        showgrid=False,
        zeroline=False,
    )
    levels = dict(start=zmin, end=zmax, size=(zmax - zmin) / CONTOUR_LEVELS, coloring="heatmap")
    hover = "α %{x:.3g}, β %{y:.3g}<br>" + _zlabel(log) + " %{z:.4g}<extra>"
    for (e, g), axes in zip(pairs, panels, strict=True):
        fig.add_contour(
            x=g.alpha.tolist(),
            y=g.beta.tolist(),
            z=g.values(log).astype(np.float32),
            zmin=zmin,
            zmax=zmax,
            coloraxis="coloraxis",
            autocontour=False,
            contours=levels,
            line=dict(width=0.5, color="rgba(255,255,255,0.5)"),
            hoverongaps=False,
            name=e.label,
            meta=checkpoint_meta(e.checkpoint_id),
            hovertemplate=hover + e.label + "</extra>",
            **axes,
        )
        _mark_center(fig, g, colors[e.checkpoint_id], e.label, log, axes)
    fig.update_layout(
        title=f"2D loss landscapes ({'log₁₀ loss' if log else 'loss'}, one color scale)",
        coloraxis=dict(colorscale=COLORSCALE, cmin=zmin, cmax=zmax, colorbar=dict(title=_zlabel(log))),
        height=100 + 240 * rows,
        showlegend=False,
        template=TEMPLATE,
        margin=dict(l=50, r=20, t=80, b=40),
    )
    return fig


def _mark_center(fig: go.Figure, grid: Grid, color: str, label: str, log: bool, axes: dict) -> None:
    value = grid.center_value(log)
    text = "centre" if value is None else f"centre: {_zlabel(log)} {value:.4g}"
    fig.add_scatter(
        x=[0.0],
        y=[0.0],
        mode="markers",
        marker=dict(symbol="x", size=10, color=color, line=dict(width=1.5, color="white")),
        hovertemplate=text + "<extra>" + label + "</extra>",
        showlegend=False,
        **axes,
    )


def surface_3d(entry: CheckpointSummary | None, log: bool = False, color: str | None = None) -> go.Figure:
    """One checkpoint's 2D surface in 3D (x alpha, y beta), the centre marked."""
    grid = Grid.of(entry.summary) if entry is not None and _of_mode([entry], "2d") else None
    if grid is None:
        return empty_figure("no 2D landscape to draw in 3D")
    zmin, zmax = _scale([grid], log)
    fig = go.Figure(
        go.Surface(
            x=grid.alpha.tolist(),
            y=grid.beta.tolist(),
            z=grid.values(log).astype(np.float32),
            cmin=zmin,
            cmax=zmax,
            colorscale=COLORSCALE,
            colorbar=dict(title=_zlabel(log)),
            name=entry.label,
            hovertemplate="α %{x:.3g}, β %{y:.3g}<br>" + _zlabel(log) + " %{z:.4g}<extra></extra>",
        )
    )
    center = grid.center_value(log)
    if center is not None:
        fig.add_scatter3d(
            x=[0.0],
            y=[0.0],
            z=[center],
            mode="markers",
            marker=dict(size=5, color=color or "red", line=dict(width=1, color="white")),
            name="centre",
            hovertemplate=f"centre: {_zlabel(log)} {center:.4g}<extra></extra>",
            showlegend=False,
        )
    fig.update_layout(
        title=f"{entry.label}: {_zlabel(log)} surface",
        scene=dict(xaxis_title="α", yaxis_title="β", zaxis_title=_zlabel(log)),
        height=560,
        template=TEMPLATE,
        margin=dict(l=10, r=10, t=60, b=10),
    )
    return fig


# ------------------------------------------------------------------------------------------- 1D


def _curve(summary: dict, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(alpha, values) with matching lengths, or ``None``."""
    alpha, values = _vector(summary.get("alpha")), _vector(summary.get(key))
    if alpha is None or values is None or len(alpha) != len(values) or not np.isfinite(values).any():
        return None
    return alpha, values


def direction_text(summary: dict) -> str:
    parts = [str(summary.get("direction") or "?"), f"{summary.get('normalization') or '?'}-normalized"]
    if summary.get("masked"):
        parts.append("masked")
    if isinstance(summary.get("seed"), int):
        parts.append(f"seed {summary['seed']}")
    return ", ".join(parts)


def curves_1d(
    entries: Sequence[CheckpointSummary] | None,
    colors: Mapping[int, str] | None = None,
    metric: str = "loss",
    *,
    log: bool = False,
) -> go.Figure:
    """1D slices f(alpha) = L(theta + alpha d), one line per checkpoint; the centre is the dotted line.

    ``metric`` is "loss" or "accuracy"; ``log`` puts the loss on a log axis.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, not {metric!r}")
    drawn = [(e, c) for e in _of_mode(entries, "1d") if (c := _curve(e.summary, metric)) is not None]
    if not drawn:
        return empty_figure(f"no 1D landscape {metric} yet")
    colors = entry_colors([e for e, _ in drawn], colors)
    fig = go.Figure()
    value = "%{y:.2%}" if metric == "accuracy" else "%{y:.4g}"
    for e, (alpha, values) in drawn:
        curvature = finite(e.summary.get("curvature"))
        sharp = "" if curvature is None else f"<br>curvature at 0: {curvature:.4g}"
        fig.add_scatter(
            x=_json_list(alpha),
            y=_json_list(values),
            mode="lines",
            connectgaps=False,
            name=e.label,
            meta=checkpoint_meta(e.checkpoint_id),
            line_color=colors[e.checkpoint_id],
            hovertemplate=f"α %{{x:.3g}}: {metric} {value}{sharp}<br>{direction_text(e.summary)}"
            f"<extra>{e.label}</extra>",
        )
    fig.add_vline(x=0.0, line=dict(color="gray", width=1, dash="dot"))
    fig.update_layout(title=f"1D slices: {metric} along one direction", **LAYOUT)
    fig.update_xaxes(title_text="α")
    if metric == "accuracy":
        fig.update_yaxes(title_text="accuracy", tickformat=".0%")
    else:
        fig.update_yaxes(title_text="loss", type="log" if log else "linear")
    return fig


# -------------------------------------------------------------------------------- interpolation


def barrier(alpha: np.ndarray, values: np.ndarray) -> tuple[float, int] | None:
    """(max_alpha f - (f(0) + f(1)) / 2, index of the max), with f at the first and last alpha."""
    finite = np.isfinite(values)
    if not finite.any() or not (finite[0] and finite[-1]):
        return None
    top = int(np.nanargmax(values))
    return float(values[top] - (values[0] + values[-1]) / 2), top


def _barrier_value(summary: dict, key: str, alpha: np.ndarray, values: np.ndarray) -> float | None:
    """The summary's barrier (the engine's, on all its points) if finite, else computed from the curve."""
    stored = finite(summary.get(key))
    if stored is not None:
        return stored
    found = barrier(alpha, values)
    return None if found is None else found[0]


def target_name(summary: dict, names: Mapping[int, str] | None) -> str:
    """Plain text for an interpolation's target: "name (#id)", or "#id" if its name is unknown."""
    tid = summary.get("target_checkpoint_id")
    if not isinstance(tid, int) or isinstance(tid, bool):
        return "target"
    name = (names or {}).get(tid)
    return f"{name} (#{tid})" if name is not None else f"#{tid}"


def target_label(summary: dict, names: Mapping[int, str] | None) -> str:
    return plain(target_name(summary, names))


def interpolation_curves(
    entries: Sequence[CheckpointSummary] | None,
    colors: Mapping[int, str] | None = None,
    names: Mapping[int, str] | None = None,
) -> go.Figure:
    """Loss (left) and error = 1 - accuracy (right) along the straight line from each checkpoint
    (alpha = 0) to its target (alpha = 1).

    The highest point of each curve is marked with a star and the barrier
    ``max f - (f(0) + f(1)) / 2`` (the summary's ``barrier`` / ``error_barrier``, else computed here)
    is in the legend; for up to :data:`ANNOTATE_MAX` curves it is also annotated at that point and the
    endpoints carry the checkpoints' names. ``names`` maps checkpoint ids to names, for the targets.
    """
    drawn = [
        (e, c) for e in _of_mode(entries, "interpolation") if (c := _curve(e.summary, "loss")) is not None
    ]
    if not drawn:
        return empty_figure("no interpolation results yet")
    colors = entry_colors([e for e, _ in drawn], colors)
    few = len(drawn) <= ANNOTATE_MAX
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["loss", "error (1 − accuracy)"], horizontal_spacing=0.1
    )
    named: set[str] = set()  # targets already named at alpha = 1
    for e, (alpha, loss) in drawn:
        target = target_label(e.summary, names)
        color = colors[e.checkpoint_id]
        b = _barrier_value(e.summary, "barrier", alpha, loss)
        name = f"{e.label} → {target}" + ("" if b is None else f" · barrier {b:.3g}")
        group = dict(
            legendgroup=str(e.checkpoint_id), showlegend=False, row=1, meta=checkpoint_meta(e.checkpoint_id)
        )
        fig.add_scatter(
            x=_json_list(alpha),
            y=_json_list(loss),
            mode="lines",
            line_color=color,
            name=name,
            hovertemplate=f"α %{{x:.3g}}: loss %{{y:.4g}}<extra>{name}</extra>",
            **{**group, "showlegend": True},
            col=1,
        )
        _mark_top(fig, alpha, loss, b, color, e.label, group, col=1, annotate=few)
        shown = [e.label, "" if target in named else target] if few else None
        named.add(target)
        _mark_ends(fig, alpha, loss, color, [e.label, target], shown, group, col=1)
        accuracy = _curve(e.summary, "accuracy")
        if accuracy is not None and len(accuracy[0]) == len(alpha):
            error = 1.0 - accuracy[1]
            fig.add_scatter(
                x=_json_list(alpha),
                y=_json_list(error),
                mode="lines",
                line_color=color,
                name=name,
                hovertemplate=f"α %{{x:.3g}}: error %{{y:.2%}}<extra>{name}</extra>",
                **group,
                col=2,
            )
            eb = _barrier_value(e.summary, "error_barrier", alpha, error)
            _mark_top(fig, alpha, error, eb, color, e.label, group, col=2, annotate=few)
            _mark_ends(fig, alpha, error, color, [e.label, target], None, group, col=2)
    ends = {target_label(e.summary, names) for e, _ in drawn}
    right = ends.pop() if len(ends) == 1 else "target"
    fig.update_xaxes(tickvals=[0, 0.5, 1], ticktext=["checkpoint", "0.5", right], title_text="α")
    fig.update_yaxes(title_text="loss", col=1)
    fig.update_yaxes(title_text="error", tickformat=".0%", col=2)
    fig.update_layout(title="Linear interpolation θ(α) = (1 − α)·θ_A + α·θ_B", **LAYOUT)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2), height=480 + 12 * len(drawn))
    return fig


def _mark_top(
    fig: go.Figure,
    alpha: np.ndarray,
    values: np.ndarray,
    value: float | None,
    color: str,
    label: str,
    group: dict,
    *,
    col: int,
    annotate: bool,
) -> None:
    """A star at the highest point of a path; ``B = value`` above it if ``annotate``."""
    found = barrier(alpha, values)
    if found is None:
        return
    top = found[1]
    x, y = float(alpha[top]), float(round_significant(values[top]))
    text = f"barrier {value:.3g}" if value is not None else "highest"
    fmt = "%{y:.4g}" if col == 1 else "%{y:.2%}"
    fig.add_scatter(
        x=[x],
        y=[y],
        mode="markers",
        marker=dict(symbol="star", size=12, color=color, line=dict(width=1, color="black")),
        name=f"{label}: {text}",
        hovertemplate=f"α %{{x:.3g}}: {fmt}, {text}<extra>{label}</extra>",
        **group,
        col=col,
    )
    if annotate and value is not None:
        fig.add_annotation(
            x=x,
            y=y,
            text=f"B = {value:.3g}",
            font=dict(color=color, size=11),
            arrowcolor=color,
            ax=0,
            ay=-28,
            row=1,
            col=col,
        )


def _mark_ends(
    fig: go.Figure,
    alpha: np.ndarray,
    values: np.ndarray,
    color: str,
    names: list[str],
    shown: list[str] | None,
    group: dict,
    *,
    col: int,
) -> None:
    """Dots at alpha = 0 and 1 whose hover names the two checkpoints; ``shown`` is written beside them."""
    ends = [i for i in (0, len(alpha) - 1) if math.isfinite(values[i])]
    fmt = "%{y:.4g}" if col == 1 else "%{y:.2%}"
    fig.add_scatter(
        x=[float(alpha[i]) for i in ends],
        y=[float(round_significant(values[i])) for i in ends],
        mode="markers+text" if shown else "markers",
        text=[shown[0 if i == 0 else 1] for i in ends] if shown else None,
        customdata=[names[0 if i == 0 else 1] for i in ends],
        textposition=["top right" if i == 0 else "top left" for i in ends],
        textfont=dict(color=color, size=10),
        marker=dict(size=7, color=color),
        name="endpoints",
        hovertemplate=f"%{{customdata}}: {fmt}<extra></extra>",
        **group,
        col=col,
    )


# ------------------------------------------------------------------------------------ sharpness


def curvatures(summary: dict) -> dict[str, float]:
    """The curvature(s) at the centre by direction: {"1D": c} or {"2D α": ca, "2D β": cb}."""
    mode, value = summary.get("mode"), summary.get("curvature")
    if mode == "1d":
        c = finite(value)
        return {} if c is None else {"1D": c}
    if mode == "2d" and isinstance(value, list) and len(value) == 2:
        pairs = zip(("2D α", "2D β"), map(finite, value), strict=True)
        return {k: v for k, v in pairs if v is not None}
    return {}


SYMBOLS = {"1D": "circle", "2D α": "triangle-up", "2D β": "triangle-down"}


def sharpness_vs_sparsity(
    entries: Sequence[CheckpointSummary] | None,
    checkpoints: Mapping[int, dict],
    colors: Mapping[int, str] | None = None,
) -> go.Figure:
    """Curvature at the centre (second derivative of the loss along each normalized direction, from the
    1D or 2D slices) against each checkpoint's sparsity; markers in the checkpoint's color, the shape
    telling the slice."""
    points = [
        (e, kind, c, checkpoints[e.checkpoint_id].get("sparsity"))
        for e in entries or ()
        if e.checkpoint_id in checkpoints and isinstance(e.summary, dict)
        for kind, c in curvatures(e.summary).items()
    ]
    points = [p for p in points if finite(p[3]) is not None]
    if not points:
        return empty_figure("no curvature from 1D or 2D slices yet")
    colors = entry_colors([p[0] for p in points], colors)
    fig = go.Figure()
    for kind, symbol in SYMBOLS.items():
        mine = sorted((p for p in points if p[1] == kind), key=lambda p: p[3])
        if not mine:
            continue
        fig.add_scatter(  # the legend's key to the shapes, in neutral gray
            x=[None],
            y=[None],
            mode="markers",
            name=kind,
            legendgroup=kind,
            marker=dict(symbol=symbol, size=10, color="gray"),
        )
        fig.add_scatter(
            x=[p[3] for p in mine],
            y=[p[2] for p in mine],
            mode="markers",
            name=kind,
            legendgroup=kind,
            showlegend=False,
            text=[p[0].label for p in mine],
            meta=points_meta(p[0].checkpoint_id for p in mine),
            customdata=[direction_text(p[0].summary) for p in mine],
            marker=dict(symbol=symbol, size=11, color=[colors[p[0].checkpoint_id] for p in mine]),
            hovertemplate="%{text}<br>sparsity %{x:.1%}, curvature %{y:.4g}<br>%{customdata}"
            f"<extra>{kind}</extra>",
        )
    fig.add_hline(y=0.0, line=dict(color="gray", width=1, dash="dot"))
    fig.update_layout(title="Sharpness at the centre against sparsity", **LAYOUT)
    fig.update_layout(legend_title_text="slice")
    fig.update_xaxes(title_text="sparsity", tickformat=".0%")
    fig.update_yaxes(title_text="curvature d²L/dα² at 0")
    return fig
