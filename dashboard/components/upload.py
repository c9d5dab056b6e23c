"""Upload panels whose files stream straight to the REST API from ``assets/upload.js``.

No Dash callback ever sees the bytes: the script posts ``multipart/form-data`` to ``endpoint``
with the values of the form controls named in ``fields`` (form field -> element id), shows a
progress bar per file, the server's ``detail`` on failure, and clicks ``refresh_id`` on success.
"""

from __future__ import annotations

from collections.abc import Sequence

from dash import html


def drop_zone(
    *, id: str, endpoint: str, accept: str, fields: dict[str, str], refresh_id: str, label: str
) -> html.Div:
    return html.Div(
        [
            html.Div(
                [html.Span(label, className="ps-drop-label")],
                id=id,
                className="ps-dropzone",
                **{
                    "data-endpoint": endpoint,
                    "data-accept": accept,
                    "data-fields": ",".join(f"{name}:{elem}" for name, elem in fields.items()),
                    "data-refresh": refresh_id,
                    "data-status": f"{id}-status",
                },
            ),
            html.Div(id=f"{id}-status", className="ps-upload-status", role="status"),
            html.Button(id=refresh_id, n_clicks=0, hidden=True, className="ps-refresh"),
        ],
        className="ps-upload",
    )


def select(id: str, options: Sequence[tuple[str, str]], **props) -> html.Select:
    """A plain ``<select>`` whose value ``upload.js`` reads (the first option is the default)."""
    return html.Select([html.Option(label, value=value) for value, label in options], id=id, **props)
