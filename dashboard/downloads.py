"""Figure data as CSV, and the endpoint that the figures' CSV buttons post to.

:func:`figure_csv` turns a Plotly figure (as JSON) into a long, tidy CSV: one row per point, or per cell
of a heatmap, contour or surface. :func:`register_download_callbacks` adds to a Dash app's server the
``POST <prefix>_prunescope/figure.csv`` route that ``assets/downloads.js`` calls with the figure drawn in
the page; PNG and SVG need no server (``Plotly.downloadImage`` in the browser). The route converts only
what it is sent and reads no stored data, so any app (the read-only share app too) can have it.

(The download buttons carry ``data-*`` attributes rather than Dash ids: pattern-matching ids are dicts,
and the views' trees are compared as sets of ids, so the buttons stay out of Dash's id space.)
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import flask
import numpy as np
from dash import Dash

FIELDS = ("x", "y", "z", "text", "customdata")
ROUTE = "_prunescope/figure.csv"
MAX_BODY_BYTES = 64 * 2**20
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TYPED = {"i1", "u1", "u1c", "i2", "u2", "i4", "u4", "f4", "f8"}


# ------------------------------------------------------------------------------------------ values


def _typed_array(spec: Mapping) -> list:
    """A plotly.js typed-array spec (``{"dtype": "f8", "bdata": base64, "shape": "2, 3"}``) as lists."""
    dtype = str(spec.get("dtype"))
    if dtype not in _TYPED:
        raise ValueError(f"unknown typed array dtype {dtype!r}")
    values = np.frombuffer(base64.b64decode(str(spec.get("bdata", ""))), dtype="<" + dtype[:2])
    shape = spec.get("shape")
    if isinstance(shape, str) and shape.strip():
        values = values.reshape([int(s) for s in shape.split(",") if s.strip()])
    return values.tolist()


def _array(value: Any) -> Any:
    """Lists for arrays in any of their JSON forms; anything else as it is."""
    if isinstance(value, Mapping) and "bdata" in value:
        return _typed_array(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def _unplain(text: str) -> str:
    """The inverse of ``dashboard.figures.common.plain``: figures escape user text for Plotly."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def cell(value: Any) -> str:
    """One CSV cell: numbers at full precision (shortest round-trip form), text unescaped and guarded
    against formula injection (a leading apostrophe before ``= + - @``, tab or CR, unless a plain number)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = _unplain(str(value))
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


# ------------------------------------------------------------------------------------------ traces


def _at(values: Any, i: int) -> Any:
    """``values[i]`` of an array, the value itself when it is one for all points (a scalar ``text``)."""
    if isinstance(values, list):
        return values[i] if i < len(values) else None
    return values if isinstance(values, (str, int, float)) else None


def _is_grid(z: Any) -> bool:
    return isinstance(z, list) and bool(z) and all(isinstance(row, list) for row in z)


def _grid_value(values: Any, i: int, j: int) -> Any:
    """Cell ``(i, j)`` of a 2D array; one string for every cell; nothing for other shapes."""
    if _is_grid(values):
        return _at(_at(values, i), j)
    return values if isinstance(values, str) else None


def _grid_rows(arrays: dict) -> Iterator[dict]:
    """One row per cell of a 2D ``z``, with the cell's x and y labels (1D axes or 2D coordinates)."""
    x, y = arrays.get("x"), arrays.get("y")
    for i, row in enumerate(arrays["z"]):
        for j, z in enumerate(row):
            yield {
                "x": _grid_value(x, i, j) if _is_grid(x) else _at(x, j) if x is not None else j,
                "y": _grid_value(y, i, j) if _is_grid(y) else _at(y, i) if y is not None else i,
                "z": z,
                "text": _grid_value(arrays.get("text"), i, j),
                "customdata": _grid_value(arrays.get("customdata"), i, j),
            }


def _point_rows(arrays: dict) -> Iterator[dict]:
    lengths = [len(v) for v in arrays.values() if isinstance(v, list)]
    for k in range(max(lengths, default=0)):
        yield {key: _at(value, k) for key, value in arrays.items()}


def trace_rows(trace: Mapping) -> tuple[list[str], list[dict]]:
    """The fields a trace has and its rows (``{field: value}``)."""
    arrays = {key: _array(trace[key]) for key in FIELDS if trace.get(key) is not None}
    if _is_grid(arrays.get("z")):
        return ["x", "y", "z", *(k for k in ("text", "customdata") if k in arrays)], list(_grid_rows(arrays))
    return list(arrays), list(_point_rows(arrays))


def _subplot(trace: Mapping) -> str:
    if trace.get("scene"):
        return str(trace["scene"])
    return f"{trace.get('xaxis') or 'x'}{trace.get('yaxis') or 'y'}"


def figure_csv(figure: Mapping | Any) -> str:
    """A long CSV of every trace of ``figure`` (a figure dict or a ``go.Figure``): the columns ``trace``
    (its name), ``subplot`` (only when the traces sit on several), then those of x, y, z, text and
    customdata that some trace has. Malformed traces are skipped."""
    if hasattr(figure, "to_plotly_json"):
        figure = figure.to_plotly_json()
    traces = figure.get("data") if isinstance(figure, Mapping) else None
    traces = [t for t in traces if isinstance(t, Mapping)] if isinstance(traces, list) else []
    found, present = [], set()
    for index, trace in enumerate(traces):
        try:
            fields, rows = trace_rows(trace)
        except (ValueError, TypeError):
            continue
        present.update(fields)
        found.append((str(trace.get("name") or f"trace {index}"), _subplot(trace), rows))
    several = len({subplot for _, subplot, _ in found}) > 1
    header = ["trace", *(["subplot"] if several else []), *(f for f in FIELDS if f in present)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for name, subplot, rows in found:
        for row in rows:
            values = {"trace": name, "subplot": subplot, **row}
            writer.writerow([cell(values.get(column)) for column in header])
    return out.getvalue()


# ------------------------------------------------------------------------------------------ endpoint


def safe_name(name: object) -> str:
    """A figure name fit for a file name: letters, digits, ``-`` and ``_`` only."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", name if isinstance(name, str) else "")[:80].strip("-")
    return text or "figure"


def _csv_response() -> flask.Response:
    if (flask.request.content_length or 0) > MAX_BODY_BYTES:
        return flask.Response("figure too large", status=413, mimetype="text/plain")
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("figure"), dict):
        message = 'expected JSON {"figure": {"data": [...]}, "name": "..."}'
        return flask.Response(message, status=400, mimetype="text/plain")
    filename = f"prunescope-{safe_name(body.get('name'))}.csv"
    return flask.Response(
        figure_csv(body["figure"]),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def register_download_callbacks(app: Dash) -> None:
    """Add the CSV endpoint of the figures' download buttons to ``app`` (once per app and prefix)."""
    rule = app.config.routes_pathname_prefix + ROUTE
    endpoint = "prunescope_figure_csv:" + rule
    if endpoint not in app.server.view_functions:
        app.server.add_url_rule(rule, endpoint=endpoint, view_func=_csv_response, methods=["POST"])
