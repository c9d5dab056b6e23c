"""A plain HTML table: cells are text (React escapes it) or components, never raw HTML.

(``dash_table.DataTable`` warns that it is deprecated in Dash 4, and a plain table can indent a
family tree and hold per-row checkboxes and buttons.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
