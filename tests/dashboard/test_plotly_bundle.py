"""The dashboard's own plotly.js build (``dashboard/plotly_bundle.py``): found, named in the pages and served
when it is there and current; otherwise the pages get plotly.py's full bundle as before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
from fastapi.testclient import TestClient
from plotly.basedatatypes import BaseTraceType
from plotly.offline import get_plotlyjs_version

from dashboard import plotly_bundle
from dashboard.shared import create_shared_dash
from server.app import create_app

DASHBOARD = Path(plotly_bundle.__file__).resolve().parent
SOURCES = DASHBOARD / "plotlyjs" / "src"
FULL_BUNDLE = "/_dash-component-suites/plotly/package_data/plotly.min.js"
ENTRY, CHUNK, LATER = "plotly-AAAA1111.js", "chunk-BBBB2222.js", "gl3d-CCCC3333.js"


def fake_build(directory: Path, **manifest) -> Path:
    """A build as ``dashboard/plotlyjs/build.mjs`` leaves it: its files, then its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    fields = {
        "plotly_version": get_plotlyjs_version(),
        "entry": ENTRY,
        "preload": [CHUNK],
        "files": [CHUNK, LATER, ENTRY],
        **manifest,
    }
    for name in (CHUNK, LATER, ENTRY):
        (directory / name).write_text(f"/* {name} */ export default 1;\n")
    (directory / plotly_bundle.MANIFEST).write_text(json.dumps(fields))
    return directory


def meta_content(html: str) -> str | None:
    found = re.search(rf'<meta name="{plotly_bundle.META_NAME}" content="([^"]*)"', html)
    return found.group(1) if found else None


@pytest.fixture
def client_with(settings):
    clients = []

    def make(plotlyjs_dir: Path) -> TestClient:
        app = create_app(settings.model_copy(update={"plotlyjs_dir": plotlyjs_dir}))
        clients.append(TestClient(app, raise_server_exceptions=False).__enter__())
        return clients[-1]

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_a_complete_build_is_found_with_its_entry_first(tmp_path):
    bundle = plotly_bundle.find_bundle(fake_build(tmp_path / "dist"))
    assert bundle is not None
    assert bundle.first == (ENTRY, CHUNK)
    assert set(bundle.files) == {ENTRY, CHUNK, LATER}
    assert plotly_bundle.meta_tags(bundle) == [{"name": "prunescope-plotlyjs", "content": f"{ENTRY} {CHUNK}"}]


@pytest.mark.parametrize(
    "breakage",
    [
        "no build",
        "a build of another plotly.js",
        "a file missing",
        "an entry it does not list",
        "a path for a name",
        "an unreadable manifest",
    ],
)
def test_no_build_or_a_stale_or_broken_one_gives_none(tmp_path, breakage):
    dist = tmp_path / "dist"
    if breakage == "no build":
        dist.mkdir()
    elif breakage == "a build of another plotly.js":
        fake_build(dist, plotly_version="3.0.0")
    elif breakage == "a file missing":
        fake_build(dist)
        (dist / LATER).unlink()
    elif breakage == "an entry it does not list":
        fake_build(dist, files=[CHUNK, LATER])
    elif breakage == "a path for a name":
        fake_build(dist, files=[CHUNK, LATER, ENTRY, "../secret.js"])
    else:
        fake_build(dist)
        (dist / plotly_bundle.MANIFEST).write_text("{not json")
    assert plotly_bundle.find_bundle(dist) is None
    assert plotly_bundle.meta_tags(None) == []


def test_pages_name_the_build_and_the_server_serves_only_its_files(client_with, tmp_path):
    # Given a server with a build beside a file that is not part of it
    dist = fake_build(tmp_path / "dist")
    (dist / "other.js").write_text("no")
    client = client_with(dist)
    # Then the compare page names its files, entry first
    assert meta_content(client.get("/compare").text) == f"{ENTRY} {CHUNK}"
    # And each file is served as JavaScript, by the owner's app and the share links' app, cached for good
    # (its name changes with its content)
    for path in (
        f"/_prunescope/plotly/{ENTRY}",
        f"/s/_prunescope/plotly/{CHUNK}",
        f"/_prunescope/plotly/{LATER}",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["content-type"].startswith("text/javascript")
        assert f"max-age={plotly_bundle.CACHE_SECONDS}" in resp.headers["cache-control"]
        assert resp.text.startswith("/* ")
    # But nothing else of the folder, nor anything outside it
    for name in ("other.js", "manifest.json"):
        assert client.get(f"/_prunescope/plotly/{name}").status_code == 404, name
    for name in ("..%2Fdist%2Fother.js", "%2E%2E/dist/other.js", "%2Fetc%2Fpasswd"):
        resp = client.get(f"/_prunescope/plotly/{name}")  # a 404, or a route of the app's own (its page)
        assert not resp.headers["content-type"].startswith("text/javascript"), name
        assert resp.text != "no" and "root:" not in resp.text, name


def test_a_shared_views_page_names_the_build_too(settings, tmp_path):
    dist = fake_build(tmp_path / "dist")
    shared = create_shared_dash(settings.model_copy(update={"plotlyjs_dir": dist}))
    with shared.server.test_request_context("/s/sometoken"):
        assert meta_content(shared.index()) == f"{ENTRY} {CHUNK}"


def test_a_file_removed_after_start_is_a_404_not_an_error(client_with, tmp_path):
    dist = fake_build(tmp_path / "dist")
    client = client_with(dist)
    (dist / ENTRY).unlink()
    assert client.get(f"/_prunescope/plotly/{ENTRY}").status_code == 404


def test_without_a_build_pages_fall_back_to_the_full_bundle(client_with, tmp_path):
    client = client_with(tmp_path / "empty")
    page = client.get("/compare")
    assert page.status_code == 200
    assert meta_content(page.text) is None  # assets/plotly_setup.js then loads plotly.min.js
    not_served = client.get(f"/_prunescope/plotly/{ENTRY}")  # no such route: Dash's page for unknown paths
    assert not not_served.headers["content-type"].startswith("text/javascript")
    full = client.get(FULL_BUNDLE)
    assert full.status_code == 200
    assert f"plotly.js v{get_plotlyjs_version()}" in full.text[:200]


# --- the build's traces -------------------------------------------------------------------------------

_CLASS_USE = re.compile(r"\bgo\.([A-Z][A-Za-z0-9]*)\b")
_ADD_CALL = re.compile(r"\.add_([a-z0-9]+)\(")


def trace_type(class_name: str) -> str | None:
    """``"scattergl"`` for ``"Scattergl"``; None for what is not a trace class (``Figure``, ``layout``)."""
    cls = getattr(go, class_name, None)
    return cls().type if isinstance(cls, type) and issubclass(cls, BaseTraceType) else None


def dashboard_trace_types() -> set[str]:
    """Every trace type the dashboard's code names: ``go.Heatmap``, ``fig.add_bar(...)``, ..."""
    every = {trace_type(name) for name in go.__all__} - {None}
    found: set[str] = set()
    for path in [*DASHBOARD.glob("*.py"), *DASHBOARD.glob("*/*.py")]:  # not plotlyjs/node_modules
        code = path.read_text()
        found |= {trace_type(name) for name in _CLASS_USE.findall(code)} - {None}
        found |= {name for name in _ADD_CALL.findall(code) if name in every}
    return found


def build_trace_types() -> set[str]:
    """The traces ``dashboard/plotlyjs`` builds in: scatter (in plotly.js's core) and what it imports."""
    code = "".join(p.read_text() for p in SOURCES.glob("*.js"))
    return {"scatter", *re.findall(r'from "plotly\.js/lib/([a-z0-9]+)"', code)} - {"core"}


def test_the_build_has_every_trace_type_the_dashboard_draws():
    used = dashboard_trace_types()
    assert {"scatter", "scattergl", "bar", "heatmap", "contour", "surface", "scatter3d"} <= used  # seen
    missing = used - build_trace_types()
    assert not missing, f"add {sorted(missing)} to dashboard/plotlyjs/src (index.js, or gl3d.js for 3D)"
