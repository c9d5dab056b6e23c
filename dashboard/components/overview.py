"""The overview tab: the family's headline metrics in one table, and every metric against sparsity."""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

from dashboard.components.compare import name_cell, unknown_note
from dashboard.components.format import number, percent
from dashboard.components.graph import graph
from dashboard.components.table import Column, table
from dashboard.figures import overview as fig_overview
from dashboard.figures.common import checkpoint_colors

COLUMNS = (
    Column("name", "checkpoint"),
    Column("sparsity", "sparsity", numeric=True),
    Column("method", "method"),
    *(Column(m.key, m.label, numeric=True) for m in fig_overview.METRICS),
    Column("missing", "not yet run"),
)


def overview_view(
    ids: Sequence[int], checkpoints: dict[int, dict], summaries: dict[int, dict], jobs: dict[int, dict]
) -> list:
    """``summaries`` holds every analysis' newest summary per checkpoint (``data.results_of_all``)."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    rows = fig_overview.overview_rows(known, checkpoints, summaries)
    cells = []
    for row in rows:
        cell = {
            "name": name_cell(row["id"], row["name"], colors[row["id"]]),
            "sparsity": percent(row["sparsity"]),
            "method": row["method"],
            "missing": ", ".join(row["missing"]) or "—",
        }
        for m in fig_overview.METRICS:
            cell[m.key] = percent(row[m.key], 2) if m.percent else number(row[m.key])
        cells.append(cell)
    out: list = unknown_note(ids, checkpoints)
    if any(row["missing"] for row in rows):
        out.append(
            html.P(
                "Analyses not yet run can be queued from their own tabs.",
                className="ps-note",
            )
        )
    out += [
        table(COLUMNS, cells, empty="No checkpoints selected.", id="overview-summary"),
        graph(fig_overview.metrics_vs_sparsity(rows), name="overview-sparsity", id="fig-overview-sparsity"),
    ]
    return out
