"""The dashboard's own plotly.js build, served in place of plotly.py's full bundle when it is there.

``make plotlyjs`` (run by ``make install`` when npm is there) builds ``dashboard/plotlyjs/dist``: plotly.js
with only the traces the figures draw, the 3D ones loaded on demand (``dashboard/plotlyjs/build.mjs``).
What a compare page evaluates before its first figure is then 1.3 MB instead of plotly.min.js's 4.8 MB:
0.15-0.2 s of the main thread in headless Chromium on this 2-core machine instead of about 0.9 s.

When the build is there, and is of the plotly.js version that plotly.py writes figures for, each Dash app
(:func:`dashboard.app.create_dash`, :func:`dashboard.shared.create_shared_dash`):

- names its files in a ``<meta name="prunescope-plotlyjs">`` tag of every page (:func:`meta_tags`): the
  module to import, then the files it imports at once; ``assets/plotly_setup.js`` imports it rather than
  plotly.min.js (and loads plotly.min.js should the import fail);
- serves them at ``<prefix>_prunescope/plotly/<file>`` (:func:`register_bundle_route`): only the files
  the manifest names, looked up by name (never a path made from the request), cached for a year since
  each name carries a hash of its content.

Otherwise pages get no tag, and load plotly.min.js exactly as Dash serves it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import flask
from dash import Dash
from plotly.offline import get_plotlyjs_version
from pydantic import BaseModel, ValidationError, field_validator

logger = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent / "plotlyjs" / "dist"
MANIFEST = "manifest.json"
ROUTE = "_prunescope/plotly/"
META_NAME = "prunescope-plotlyjs"
CACHE_SECONDS = 365 * 24 * 3600
_FILE_NAME = re.compile(r"[A-Za-z0-9_-]+\.js")


class Manifest(BaseModel):
    """``dist/manifest.json``, as ``dashboard/plotlyjs/build.mjs`` writes it."""

    plotly_version: str
    entry: str  # the module a page imports
    preload: list[str]  # the files it imports at once
    files: list[str]  # every file of the build, the on-demand ones included

    @field_validator("files")
    @classmethod
    def _plain_names(cls, files: list[str]) -> list[str]:
        bad = [f for f in files if not _FILE_NAME.fullmatch(f)]
        if bad:
            raise ValueError(f"not a plain .js file name: {bad}")
        return files


@dataclass(frozen=True)
class PlotlyBundle:
    """A build found on disk: its files by name, and the ones a page loads first (entry first)."""

    files: dict[str, Path]
    first: tuple[str, ...]


def find_bundle(directory: Path | None = None) -> PlotlyBundle | None:
    """The build in ``directory`` (default :data:`DEFAULT_DIR`), or ``None`` when there is none, it is
    incomplete, or it is of another plotly.js version than plotly.py's (a stale build)."""
    directory = directory or DEFAULT_DIR
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        logger.warning("plotly.js build in %s unreadable, serving the full bundle: %s", directory, exc)
        return None
    expected = get_plotlyjs_version()
    if manifest.plotly_version != expected:
        logger.warning(
            "plotly.js build in %s is v%s, plotly.py's is v%s: serving the full bundle (run `make plotlyjs`)",
            directory,
            manifest.plotly_version,
            expected,
        )
        return None
    first = (manifest.entry, *manifest.preload)
    files = {name: directory / name for name in manifest.files}
    missing = [name for name in {*first, *files} if name not in files or not files[name].is_file()]
    if missing:
        logger.warning("plotly.js build in %s lacks %s, serving the full bundle", directory, sorted(missing))
        return None
    return PlotlyBundle(files=files, first=first)


def meta_tags(bundle: PlotlyBundle | None) -> list[dict[str, str]]:
    """The page's ``<meta>`` naming the build's files for ``assets/plotly_setup.js`` (none without one)."""
    return [{"name": META_NAME, "content": " ".join(bundle.first)}] if bundle else []


def register_bundle_route(app: Dash, bundle: PlotlyBundle | None) -> None:
    """Serve ``bundle``'s files from ``app``'s server (nothing without a build: those URLs are 404s)."""
    endpoint = "prunescope_plotlyjs"
    if bundle is None or endpoint in app.server.view_functions:
        return

    def serve(name: str) -> flask.Response:
        path = bundle.files.get(name)
        if path is None or not path.is_file():  # removed since: the page then loads the full bundle
            return flask.Response("not found\n", status=404, mimetype="text/plain")
        return flask.send_file(path, mimetype="text/javascript", max_age=CACHE_SECONDS)

    rule = app.config.routes_pathname_prefix + ROUTE + "<name>"
    app.server.add_url_rule(rule, endpoint=endpoint, view_func=serve, methods=["GET"])
