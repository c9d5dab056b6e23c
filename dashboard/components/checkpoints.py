"""The checkpoint table: a family tree with one selection checkbox per row."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dash import dcc, html

from dashboard.components.format import count, percent, when
from dashboard.components.table import Column, table
from dashboard.tree import family_order

SELECT_TYPE = "ckpt-select"
COLUMNS = (
    Column("select", ""),
    Column("id", "id", numeric=True),
    Column("name", "name"),
    Column("architecture", "architecture"),
    Column("family", "family"),
    Column("parent", "parent"),
    Column("parameters", "parameters", numeric=True),
    Column("sparsity", "sparsity", numeric=True),
    Column("method", "pruning method"),
    Column("created", "created"),
)


def _checkbox(checkpoint_id: int, selected: bool) -> dcc.Checklist:
    return dcc.Checklist(
        options=[{"label": "", "value": checkpoint_id}],
        value=[checkpoint_id] if selected else [],
        id={"type": SELECT_TYPE, "index": checkpoint_id},
        className="ps-select",
    )


def _name(row: dict, depth: int) -> html.Span:
    prefix = "\u00a0\u00a0\u00a0" * (depth - 1) + "└ " if depth else ""
    return html.Span([html.Span(prefix, className="ps-tree"), row["name"]], title=row["name"])


def checkpoint_table(rows: Sequence[dict], selected: Collection[int] = ()) -> html.Table | html.P:
    names = {r["id"]: r["name"] for r in rows}
    cells = [
        {
            "select": _checkbox(r["id"], r["id"] in selected),
            "id": r["id"],
            "name": _name(r, depth),
            "architecture": r["architecture"],
            "family": r["family"],
            "parent": f"{names.get(r['parent_id'], '?')} (#{r['parent_id']})" if r["parent_id"] else "",
            "parameters": count(r["parameter_count"]),
            "sparsity": percent(r["sparsity"]),
            "method": r["pruning_method"],
            "created": when(r["created_at"]),
            "_class": f"ps-depth-{min(depth, 5)}",
        }
        for r, depth in family_order(rows)
    ]
    return table(COLUMNS, cells, empty="No checkpoints yet: drop a file above.", id="ckpt-table-el")


def parent_options(rows: Sequence[dict]) -> list[html.Option]:
    return [html.Option("(no parent)", value="")] + [
        html.Option(f"{r['name']} (#{r['id']})", value=str(r["id"])) for r in rows
    ]
