"""Figures for the ``evaluate`` analysis (summary keys: loss, accuracy, n_samples, num_classes,
per_class_accuracy, confusion, ece; see ``workers/analyses/evaluate.py``).

Each function takes one :class:`CheckpointSummary` per checkpoint and a color per checkpoint id
(:func:`checkpoint_colors`), so a checkpoint keeps its color across every figure of a page.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

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
)

_LAYOUT = {**LAYOUT, "margin": dict(l=60, r=20, t=50, b=50)}
CONFUSION_COLORSCALE = "Blues"


def accuracy_bars(entries: Sequence[CheckpointSummary], colors: dict[int, str] | None = None) -> go.Figure:
    """Grouped bars: accuracy and calibration (1 - ECE), one bar per checkpoint in each group."""
    if not entries:
        return empty_figure("no evaluate results yet")
    colors = entry_colors(entries, colors)
    metrics = ["accuracy", "1 − ECE"]
    fig = go.Figure()
    for e in entries:
        acc = finite(e.summary.get("accuracy"))
        ece = finite(e.summary.get("ece"))
        fig.add_bar(
            x=metrics,
            y=[acc, None if ece is None else 1.0 - ece],
            name=e.label,
            meta=checkpoint_meta(e.checkpoint_id),
            marker_color=colors[e.checkpoint_id],
            hovertemplate="%{x}: %{y:.2%}<extra>" + e.label + "</extra>",
        )
    fig.update_layout(barmode="group", title="Accuracy and calibration", **_LAYOUT)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def per_class_accuracy(
    entries: Sequence[CheckpointSummary], colors: dict[int, str] | None = None
) -> go.Figure:
    """One line per checkpoint over the classes, on one shared 0-100% axis; absent classes are gaps."""
    if not entries:
        return empty_figure("no evaluate results yet")
    colors = entry_colors(entries, colors)
    fig = go.Figure()
    for e in entries:
        values = [finite(v) for v in e.summary.get("per_class_accuracy") or []]
        fig.add_scatter(
            x=list(range(len(values))),
            y=values,
            mode="lines+markers",
            connectgaps=False,
            name=e.label,
            meta=checkpoint_meta(e.checkpoint_id),
            line_color=colors[e.checkpoint_id],
            hovertemplate="class %{x}: %{y:.2%}<extra>" + e.label + "</extra>",
        )
    fig.update_layout(title="Per-class accuracy", **_LAYOUT)
    fig.update_xaxes(title_text="class", dtick=1)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%")
    return fig


def _confusion_matrix(summary: dict, normalize: bool) -> tuple[list[list[float | None]], list[list[int]]]:
    counts = [[int(c) for c in row] for row in summary.get("confusion") or []]
    if not normalize:
        return [[float(c) for c in row] for row in counts], counts
    rates = [[c / sum(row) if sum(row) else None for c in row] for row in counts]
    return rates, counts


def confusion_grid(
    entries: Sequence[CheckpointSummary], *, normalize: bool = True, columns: int = 5
) -> go.Figure:
    """Confusion matrices as small multiples with one shared color scale and a single colorbar.

    ``normalize`` divides each row (true class) by its count, so the scale is 0..1 whatever the
    sample counts; otherwise the scale runs from 0 to the largest count of any matrix. The panels share
    one x axis per column and one y axis per row (:func:`panel_grid`).
    """
    if not entries:
        return empty_figure("no evaluate results yet")
    matrices = [_confusion_matrix(e.summary, normalize) for e in entries]
    zmax = 1.0 if normalize else max((max(map(max, c), default=0) for _, c in matrices), default=0) or 1.0
    fig = go.Figure()
    panels = panel_grid(
        fig,
        [e.label for e in entries],
        columns=columns,
        h_gap=0.05,
        x_title="predicted",
        y_title="true",
        dtick=1,
        showgrid=False,
        zeroline=False,
    )
    value = "%{z:.1%}" if normalize else "%{z:d}"
    for e, (z, counts), axes in zip(entries, matrices, panels, strict=True):
        fig.add_heatmap(
            z=z,
            customdata=counts,
            zmin=0.0,
            zmax=zmax,
            coloraxis="coloraxis",
            meta=checkpoint_meta(e.checkpoint_id),
            hovertemplate="true %{y}, predicted %{x}: "
            + value
            + " (%{customdata} samples)<extra>"
            + e.label
            + "</extra>",
            **axes,
        )
    rows = panel_rows(len(entries), columns)
    fig.update_layout(
        title="Confusion matrices (rows: true class, normalized)"
        if normalize
        else "Confusion matrices (counts)",
        coloraxis=dict(
            colorscale=CONFUSION_COLORSCALE,
            cmin=0.0,
            cmax=zmax,
            colorbar=dict(title="rate" if normalize else "count"),
        ),
        height=120 + 240 * rows,
        template=TEMPLATE,
        margin=dict(l=50, r=20, t=80, b=40),
    )
    fig.update_yaxes(autorange="reversed")
    return fig
