"""Upload panels whose files stream straight to the REST API from ``assets/upload.js``.

No Dash callback ever sees the bytes. Where ``endpoint`` accepts a completed resumable upload
(:data:`RESUMABLE_ENDPOINTS`), the script sends each file through the tus protocol at
``/api/uploads`` in chunks that resume after a dropped connection, then posts its ``upload_id``
to ``endpoint``; elsewhere it posts the file as ``multipart/form-data``. Either way the values of
the form controls named in ``fields`` (form field -> element id) go along, each file gets a
progress bar, the server's ``detail`` is shown on failure, and ``refresh_id`` is clicked on success.
"""

from __future__ import annotations

from collections.abc import Sequence

from dash import html

UPLOADS_ENDPOINT = "/api/uploads"  # tus 1.0.0 (server/resumable/)
# Routes whose form takes ``upload_id`` (a completed upload) in place of ``file``.
RESUMABLE_ENDPOINTS = frozenset({"/api/checkpoints", "/api/datasets"})
CHUNK_BYTES = 8 * 1024 * 1024


def drop_zone(
    *,
    id: str,
    endpoint: str,
    accept: str,
    fields: dict[str, str],
    refresh_id: str,
    label: str,
    resumable: bool | None = None,
) -> html.Div:
    """``resumable``: send through tus first (default: when ``endpoint`` accepts an ``upload_id``)."""
    if resumable is None:
        resumable = endpoint in RESUMABLE_ENDPOINTS
    tus = (
        {
            "data-resumable": UPLOADS_ENDPOINT,
            "data-kind": endpoint.rstrip("/").rsplit("/", 1)[-1].removesuffix("s"),
            "data-chunk-size": str(CHUNK_BYTES),
        }
        if resumable
        else {}
    )
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
                    **tus,
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
