"""The family at a glance: one row of headline metrics per checkpoint, and each metric against sparsity.

A row is built from every analysis' newest summary of a checkpoint (``{"evaluate": {...}, "hessian": {...},
"landscape": {mode: {...}}, "robustness": {...}}``); a metric whose analysis has not run is ``None``.
:func:`difference_rows` turns rows into differences to each checkpoint's parent (the dense-vs-child mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures.common import (
    LAYOUT,
    checkpoint_meta,
    empty_figure,
    finite,
    plain,
    points_meta,
)

ANALYSES = ("evaluate", "robustness", "hessian", "landscape")
METHOD_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b")
_LAYOUT = {**LAYOUT, "margin": dict(l=60, r=20, t=70, b=50), "legend_title_text": "method"}


def _get(results: Mapping[str, Any], analysis: str, *keys: Any) -> Any:
    value: Any = results.get(analysis)
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def _clean_accuracy(r: Mapping[str, Any]) -> float | None:
    found = finite(_get(r, "evaluate", "accuracy"))
    return found if found is not None else finite(_get(r, "robustness", "clean", "accuracy"))


def _sharpness(r: Mapping[str, Any]) -> float | None:
    """Curvature at the centre: the 1D slice's, else the mean of the 2D slice's two axes."""
    one = finite(_get(r, "landscape", "1d", "curvature"))
    if one is not None:
        return one
    two = [finite(v) for v in (_get(r, "landscape", "2d", "curvature") or []) if finite(v) is not None]
    return sum(two) / len(two) if two else None


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    read: Callable[[Mapping[str, Any]], float | None]
    percent: bool = False
    analysis: str = ""  # the analysis whose result holds it: its column group in the summary grid


METRICS = (
    Metric("clean_accuracy", "clean accuracy", _clean_accuracy, True, "evaluate"),
    Metric(
        "corrupted_accuracy",
        "mean corrupted accuracy",
        lambda r: finite(_get(r, "robustness", "mean_corruption_accuracy")),
        True,
        "robustness",
    ),
    Metric(
        "nc1", "NC1", lambda r: finite(_get(r, "robustness", "neural_collapse", "nc1")), analysis="robustness"
    ),
    Metric(
        "cka_to_parent",
        "CKA to parent",
        lambda r: finite(_get(r, "robustness", "cka_to_parent")),
        analysis="robustness",
    ),
    Metric(
        "top_eigenvalue",
        "top Hessian eigenvalue",
        lambda r: finite(_get(r, "hessian", "top_eigenvalues", 0)),
        analysis="hessian",
    ),
    Metric("trace", "Hessian trace", lambda r: finite(_get(r, "hessian", "trace")), analysis="hessian"),
    Metric(
        "barrier",
        "loss barrier to parent",
        lambda r: finite(_get(r, "landscape", "interpolation", "barrier")),
        analysis="landscape",
    ),
    Metric("sharpness", "curvature at the centre", _sharpness, analysis="landscape"),
)


def overview_rows(
    ids: Sequence[int], checkpoints: Mapping[int, dict], results: Mapping[int, Mapping[str, Any]]
) -> list[dict]:
    """One dict per known checkpoint: id, name, sparsity, method, parent_id, each metric, missing analyses."""
    rows = []
    for cid in ids:
        c = checkpoints.get(cid)
        if c is None:
            continue
        r = results.get(cid) or {}
        row = {
            "id": cid,
            "name": c["name"],
            "sparsity": finite(c.get("sparsity")),
            "method": c.get("pruning_method") or ("dense" if c.get("parent_id") is None else "unknown"),
            "parent_id": c.get("parent_id"),
            "missing": [a for a in ANALYSES if not r.get(a)],
        }
        row.update({m.key: m.read(r) for m in METRICS})
        rows.append(row)
    return rows


def difference_rows(rows: Sequence[dict]) -> list[dict]:
    """``rows`` with each metric replaced by its difference to the checkpoint's parent (child − parent).

    A checkpoint without a parent is its own reference (0 where it has a value); a child whose parent is
    not among ``rows``, or either of which lacks the metric, gets ``None``. Each row gains ``has_parent``.
    """
    by_id = {row["id"]: row for row in rows}
    out = []
    for row in rows:
        parent = by_id.get(row["parent_id"]) if row["parent_id"] is not None else row
        diff = dict(row, has_parent=row["parent_id"] is None or parent is not None)
        for m in METRICS:
            mine, theirs = row.get(m.key), parent.get(m.key) if parent else None
            diff[m.key] = None if mine is None or theirs is None else mine - theirs
        out.append(diff)
    return out


def metrics_vs_sparsity(
    rows: Sequence[dict],
    colors: Mapping[str, str] | None = None,
    *,
    columns: int = 4,
    difference: bool = False,
) -> go.Figure:
    """One panel per metric with any value; one line per pruning method over sparsity; a dense checkpoint
    (no parent) as a star and a dotted line, the reference the pruned children are read against.

    ``difference``: the rows hold :func:`difference_rows` (only the titles change)."""
    metrics = [m for m in METRICS if any(row.get(m.key) is not None for row in rows)]
    if not metrics:
        if difference:
            return empty_figure("no differences yet: select each child with its parent, and run analyses")
        return empty_figure("no results yet: queue analyses on the other tabs")
    cols = max(1, min(columns, len(metrics)))
    nrows = math.ceil(len(metrics) / cols)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=[("Δ " if difference else "") + m.label for m in metrics],
        vertical_spacing=0.18 / max(nrows - 1, 1) if nrows > 1 else 0.1,
    )
    methods = sorted({row["method"] for row in rows if row["parent_id"] is not None})
    palette = colors or {}
    for i, metric in enumerate(metrics):
        where = dict(row=i // cols + 1, col=i % cols + 1)
        for j, method in enumerate(methods):
            pts = sorted(
                (
                    (row["sparsity"], row[metric.key], row["name"], row["id"])
                    for row in rows
                    if row["method"] == method
                    and row["parent_id"] is not None
                    and row[metric.key] is not None
                    and row["sparsity"] is not None
                ),
            )
            if not pts:
                continue
            fig.add_scatter(
                x=[100 * p[0] for p in pts],
                y=[p[1] for p in pts],
                text=[plain(p[2]) for p in pts],
                meta=points_meta(p[3] for p in pts),
                mode="lines+markers",
                name=plain(method),
                legendgroup=method,
                showlegend=i == 0,
                line_color=palette.get(method, METHOD_COLORS[j % len(METHOD_COLORS)]),
                hovertemplate="%{text}<br>sparsity %{x:.1f}%: %{y:.4g}<extra>" + plain(method) + "</extra>",
                **where,
            )
        for row in rows:
            if row["parent_id"] is None and row[metric.key] is not None:
                fig.add_scatter(
                    x=[100 * (row["sparsity"] or 0.0)],
                    y=[row[metric.key]],
                    mode="markers",
                    marker_symbol="star",
                    marker_size=14,
                    marker_color="#222",
                    name=plain(f"dense: {row['name']}"),
                    meta=checkpoint_meta(row["id"]),
                    legendgroup="dense",
                    showlegend=i == 0,
                    hovertemplate=plain(row["name"]) + ": %{y:.4g}<extra>dense</extra>",
                    **where,
                )
                fig.add_hline(y=row[metric.key], line_dash="dot", line_color="#888", **where)
        if metric.percent:
            fig.update_yaxes(tickformat=".4~%", **where)  # 10.02% and 9.96% stay apart
    fig.update_xaxes(title_text="sparsity (%)")
    what = "Difference to the parent of every metric" if difference else "Every metric"
    fig.update_layout(
        title=f"{what} against sparsity (lines: pruning methods; star: the dense model)",
        height=140 + 300 * nrows,
        **_LAYOUT,
    )
    return fig
