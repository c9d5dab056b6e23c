"""Tables: a plain HTML table, whose cells are text (React escapes it) or components, never raw HTML;
and the same rows as one AG Grid (:func:`grid`), for the compare page's summaries.

(``dash_table.DataTable`` warns that it is deprecated in Dash 4, and a plain table can indent a
family tree and hold per-row checkboxes and buttons.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dash_ag_grid as dag
from dash import html
from dash.development.base_component import Component


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    numeric: bool = False


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (Component, list)):
        return value
    return str(value)


def table(
    columns: Sequence[Column], rows: Sequence[dict[str, Any]], *, empty: str = "nothing here yet", **props
) -> html.Table | html.P:
    """One row per dict; ``row["_class"]`` (optional) becomes the row's class name."""
    if not rows:
        return html.P(empty, className="ps-empty")
    head = html.Thead(html.Tr([html.Th(c.header, className="num" if c.numeric else None) for c in columns]))
    body = html.Tbody(
        [
            html.Tr(
                [html.Td(_cell(row.get(c.key)), className="num" if c.numeric else None) for c in columns],
                className=row.get("_class"),
            )
            for row in rows
        ]
    )
    return html.Table([head, body], className="ps-table", **props)


# Sorts a numeric column's formatted text ("1,234", "12.5%", "3.1°", "4.2 ± 0.1") by its leading number;
# cells without one ("—", "") come first.
_NUMERIC_ORDER = (
    "((a, b) => (isNaN(a) ? (isNaN(b) ? 0 : -1) : isNaN(b) ? 1 : a - b))"
    "(parseFloat(String(valueA).replace(/,/g, '')), parseFloat(String(valueB).replace(/,/g, '')))"
)
GRID_ROWS = 8  # rows a summary grid shows before it scrolls
GRID_HEIGHT = 400  # px: the header and GRID_ROWS rows


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def grid(
    columns: Sequence[Column], rows: Sequence[dict[str, Any]], *, id: str, empty: str = "nothing here yet"
) -> dag.AgGrid | html.P:
    """The rows as one AG Grid: sortable (numeric columns by their number) and resizable, every cell text.

    A table of ``html.Td`` cells is one Dash component per cell, and the Dash renderer takes about 1.5 ms
    per component in Chromium here: the landscape tab's summary (58 rows of 12 cells) took 1.4 s of the
    tab's 4.6 s to show. The grid is one component whatever its size. Cells are text (``None`` shows
    as empty); a row's ``_color`` colors the first column's left edge (the checkpoint's figure color).
    Beyond :data:`GRID_ROWS` rows it scrolls in a box of its own, so the figures start on the first screen.
    """
    if not rows:
        return html.P(empty, className="ps-empty")
    defs = [
        {
            "field": c.key,
            "headerName": c.header,
            **({"type": "numericColumn", "comparator": {"function": _NUMERIC_ORDER}} if c.numeric else {}),
        }
        for c in columns
    ]
    defs[0]["cellStyle"] = {
        "function": "({borderLeft: '6px solid ' + (params.data._color || 'transparent')})"
    }
    data = [
        {
            **{c.key: _text(row.get(c.key)) for c in columns},
            "_color": row.get("_color"),
        }
        for row in rows
    ]
    tall = len(data) > GRID_ROWS  # scrolls within a box of GRID_ROWS rows, and the figures below show
    return dag.AgGrid(
        id=id,
        rowData=data,
        columnDefs=defs,
        defaultColDef={"sortable": True, "resizable": True, "minWidth": 90},
        dashGridOptions={
            "domLayout": "normal" if tall else "autoHeight",
            "animateRows": False,
            "suppressFieldDotNotation": True,
        },
        columnSize="autoSize",
        className="ps-summary-grid",
        style={"width": "100%", **({"height": f"{GRID_HEIGHT}px"} if tall else {})},
    )
