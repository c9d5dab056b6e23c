"""The compare page as one static HTML file: a title, the date, each tab's tables and figures, and
plotly.js inlined once, so the file opens anywhere without a network.

Each tab's view (``dashboard.pages.compare.VIEWS``) is built as on the page, from results read through
:mod:`dashboard.data`; its headings, tables and figures are written out, its controls (buttons, dropdowns,
callback-filled placeholders) left out. Every text goes through :func:`html.escape`; figure JSON is
escaped by Plotly (``<`` as ``\\u003c``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

import dash_ag_grid as dag
import flask
import plotly.graph_objects as go
from dash import dcc, html
from dash.development.base_component import Component
from plotly.offline import get_plotlyjs

from dashboard import data
from dashboard.figures.sparsity import layer_sparsity_heatmap
from dashboard.state import COMPARE_TABS, DEFAULT_TAB, format_ids, parse_id, parse_ids

FIRST_TAB = "overview"  # its table summarises every analysis, so the report opens with it
_D3_FORMAT = re.compile(r"d3\.format\('([^']*)'\)")  # the grid's valueFormatter, e.g. d3.format('.2%')
LEFT_OUT = ("Button", "Label")  # interactive parts of a view, meaningless in a static file
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #1d2330; }
.meta { color: #5b6475; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #dde1e8; padding: 0.3rem 0.6rem; text-align: left; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.ps-swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; border-radius: 2px; }
.figure { margin: 0.8rem 0; }
section { margin-top: 2rem; }
"""


class NoCheckpoints(LookupError):
    """None of the requested ids names a checkpoint (that this reader may see)."""


# ------------------------------------------------------------------------------------------ HTML


def _css(style: dict) -> str:
    """``{"backgroundColor": "#fff"}`` -> ``"background-color: #fff"``."""
    return "; ".join(f"{_kebab(str(k))}: {v}" for k, v in style.items())


def _kebab(name: str) -> str:
    return re.sub(r"([A-Z])", r"-\1", name).lower()


def static_html(node: Any) -> str:
    """An ``html.*`` component tree as HTML text, every string escaped; other components left out."""
    if node is None:
        return ""
    if isinstance(node, (list, tuple)):
        return "".join(static_html(n) for n in node)
    if isinstance(node, (str, int, float)):
        return escape(str(node))
    if not isinstance(node, Component) or getattr(node, "_namespace", "") != "dash_html_components":
        return ""
    name = type(node).__name__
    if name in LEFT_OUT:
        return ""
    attrs = ""
    if getattr(node, "className", None):
        attrs += f' class="{escape(str(node.className))}"'
    if isinstance(getattr(node, "style", None), dict):
        attrs += f' style="{escape(_css(node.style))}"'
    tag = name.lower()
    return f"<{tag}{attrs}>{static_html(getattr(node, 'children', None))}</{tag}>"


def _dicts(items: Any) -> list[dict]:
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _leaves(defs: Any) -> Iterator[dict]:
    for d in _dicts(defs):
        if "children" in d:
            yield from _leaves(d["children"])
        else:
            yield d


def _grid_value(value: Any, column: dict) -> str:
    """A grid cell as the page shows it: numbers formatted by the column's d3 format, when it has one."""
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        formatter = column.get("valueFormatter")
        function = formatter.get("function") if isinstance(formatter, dict) else None
        spec = _D3_FORMAT.search(function if isinstance(function, str) else "")
        try:
            return format(value, spec.group(1) if spec else ".4g")
        except ValueError:
            return str(value)
    return str(value)


def grid_html(grid: dag.AgGrid) -> str:
    """An AG Grid's rows as a static table: column groups over their columns, values formatted."""
    defs = getattr(grid, "columnDefs", None) or []
    columns = list(_leaves(defs))
    head = ""
    if any("children" in d for d in _dicts(defs)):
        spans = [(d.get("headerName", ""), len(list(_leaves(d.get("children", [d]))))) for d in _dicts(defs)]
        head = "<tr>" + "".join(f'<th colspan="{n}">{escape(str(h))}</th>' for h, n in spans if n) + "</tr>"
    titles = [escape(str(c.get("headerName") or c.get("field"))) for c in columns]
    head += "<tr>" + "".join(f"<th>{t}</th>" for t in titles)
    rows = []
    for row in _dicts(getattr(grid, "rowData", None)):
        cells = "".join(f"<td>{escape(_grid_value(row.get(c.get('field')), c))}</td>" for c in columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _has_data(figure: Any) -> bool:
    if isinstance(figure, go.Figure):
        return bool(figure.data)
    return isinstance(figure, dict) and bool(figure.get("data"))


def blocks(tree: Any) -> Iterator[tuple[str, Any]]:
    """``("heading" | "table" | "figure", component or figure)`` of a view, in page order."""
    if isinstance(tree, (list, tuple)):
        for child in tree:
            yield from blocks(child)
    elif isinstance(tree, (html.Table, dag.AgGrid)):
        yield "table", tree
    elif isinstance(tree, (html.H2, html.H3)):
        yield "heading", tree
    elif isinstance(tree, dcc.Graph):
        if _has_data(tree.figure):
            yield "figure", tree.figure
    elif isinstance(tree, Component):
        yield from blocks(getattr(tree, "children", None))


def _without_empty_headings(found: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Drop headings of sections whose content was all left out (controls, placeholders)."""
    keep = []
    for i, (kind, item) in enumerate(found):
        following = found[i + 1][0] if i + 1 < len(found) else None
        if kind != "heading" or following not in (None, "heading"):
            keep.append((kind, item))
    return keep


def figure_html(figure: Any) -> str:
    fig = go.Figure(figure)
    body = fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
    return f'<div class="figure">{body}</div>'


def view_html(tree: Any) -> str:
    out = []
    for kind, item in _without_empty_headings(list(blocks(tree))):
        if kind == "figure":
            out.append(figure_html(item))
        elif kind == "heading":
            out.append(f"<h3>{escape(' '.join(_texts(item)))}</h3>")
        else:
            out.append(grid_html(item) if isinstance(item, dag.AgGrid) else static_html(item))
    return "\n".join(out)


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from _texts(child)
    elif isinstance(node, (str, int, float)):
        yield str(node)
    elif isinstance(node, Component):
        yield from _texts(getattr(node, "children", None))


# ------------------------------------------------------------------------------------------ report


def _tab_order() -> list[str]:
    return sorted(COMPARE_TABS, key=lambda tab: tab != FIRST_TAB)


def _tab_section(tab: str, ids: list[int], checkpoints: dict[int, dict], dataset_id: int | None) -> str:
    # imported here: importing a page module registers it with Dash, which needs the app built first
    from dashboard.pages.compare import RESULTS, VIEWS

    summaries = RESULTS.get(tab, data.results)(tab, ids, dataset_id)
    body = view_html(VIEWS[tab](ids, checkpoints, summaries, {}, dataset_id=dataset_id)) if summaries else ""
    label = escape(COMPARE_TABS[tab])
    note = f'<p class="meta">No {escape(tab)} results for this selection yet.</p>'
    return f"<section><h2>{label}</h2>\n{body or note}\n</section>"


def _meta(ids: Sequence[int], checkpoints: dict[int, dict], dataset_id: int | None) -> str:
    names = ", ".join(f"{checkpoints[i]['name']} (#{i})" for i in ids)
    dataset = next((d for d in data.list_datasets() if d["id"] == dataset_id), None)
    dataset_text = f"{dataset['name']} (#{dataset_id})" if dataset else "none"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f'<p class="meta">Generated {escape(when)} · dataset {escape(dataset_text)}</p>\n'
        f'<p class="meta">Checkpoints: {escape(names)}</p>'
    )


def build_report(ids: Sequence[int], dataset_id: int | None) -> str:
    """The comparison of the checkpoints ``ids`` on ``dataset_id`` as a self-contained HTML document.

    Raises :class:`NoCheckpoints` when no id names a checkpoint."""
    checkpoints = {c["id"]: c for c in data.list_checkpoints()}
    known = [i for i in ids if i in checkpoints]
    if not known:
        raise NoCheckpoints("none of these ids names a checkpoint")
    sections = [_tab_section(tab, known, checkpoints, dataset_id) for tab in _tab_order()]
    sparsity = layer_sparsity_heatmap([checkpoints[i] for i in known])
    sections.append(f"<section><h2>Sparsity per layer</h2>\n{figure_html(sparsity)}\n</section>")
    return "\n".join(
        [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
            "<title>PruneScope comparison</title>",
            f"<style>{STYLE}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head>\n<body>\n<h1>PruneScope comparison</h1>",
            _meta(known, checkpoints, dataset_id),
            *sections,
            "</body>\n</html>\n",
        ]
    )


# ------------------------------------------------------------------------------------------ route


def _plain(message: str, status: int) -> flask.Response:
    return flask.Response(message + "\n", status=status, mimetype="text/plain")


def _report_response() -> flask.Response:
    args = flask.request.args
    ids = parse_ids(args.getlist("ids"))
    if not ids:
        return _plain("give the checkpoints to compare, e.g. ?ids=1,2&dataset=3", 400)
    dataset_id = parse_id(args.get("dataset"))
    if args.get("dataset") not in (None, "") and dataset_id is None:
        return _plain("dataset must be a positive integer id", 400)
    try:
        dataset_id = dataset_id or data.default_dataset(DEFAULT_TAB, ids)
        document = build_report(ids, dataset_id)
    except NoCheckpoints as exc:
        return _plain(str(exc), 404)
    except data.ActionError as exc:
        return _plain(str(exc), 400)
    filename = f"prunescope-report-{format_ids(ids[:10]).replace(',', '-')}.html"
    return flask.Response(
        document,
        status=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def register_report_route(server: flask.Flask, rule: str) -> None:
    """Serve :func:`build_report` at ``rule`` (``?ids=1,2&dataset=3``) as an HTML attachment."""
    endpoint = "prunescope_report:" + rule
    if endpoint not in server.view_functions:
        server.add_url_rule(rule, endpoint=endpoint, view_func=_report_response, methods=["GET"])
