"""The dataset table."""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

from dashboard.components.format import count, when
from dashboard.components.table import Column, table

COLUMNS = (
    Column("id", "id", numeric=True),
    Column("name", "name"),
    Column("kind", "kind"),
    Column("samples", "samples", numeric=True),
    Column("shape", "input shape"),
    Column("classes", "classes", numeric=True),
    Column("size", "size (bytes)", numeric=True),
    Column("created", "created"),
)


def dataset_table(rows: Sequence[dict]) -> html.Table | html.P:
    cells = [
        {
            "id": d["id"],
            "name": d["name"],
            "kind": d["kind"],
            "samples": count(d["sample_count"]),
            "shape": "×".join(str(s) for s in d["input_shape"]),
            "classes": d["num_classes"],
            "size": count(d["size_bytes"]),
            "created": when(d["created_at"]),
        }
        for d in rows
    ]
    return table(
        COLUMNS, cells, empty="No datasets yet: add a built-in one or upload an .npz.", id="ds-table-el"
    )
