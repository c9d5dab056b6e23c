"""Which plotly.js the compare page loads: the dashboard's own build (``make plotlyjs``), once, drawing every
trace type the figures use, the 3D ones fetched on demand; plotly.py's full bundle, once, when the build is
absent or fails to load."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs_version

from dashboard import plotly_bundle
from dashboard.figures.robustness import SVG_POINTS, scatter_kind
from tests.browser.conftest import served
from tests.browser.test_hessian_view import wait_for
from tests.browser.test_journeys import post_checkpoint, save_checkpoint
from tests.conftest import missing_service
from tests.dashboard.test_plotly_bundle import dashboard_trace_types

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FULL_BUNDLE = "plotly.min.js"
PLANE = {"mode": "2d", "steps": 5, "max_samples": 128}
SURFACE = "#fig-landscape-surface .js-plotly-plot"
CONTOURS = "#fig-landscape-contours .js-plotly-plot"


def own_build() -> plotly_bundle.PlotlyBundle:
    """The build the test server serves (it reads the same folder), or a skip (a failure in CI)."""
    bundle = plotly_bundle.find_bundle()
    if bundle is None:
        missing_service("the dashboard's plotly.js build (make plotlyjs)")
    return bundle


def record_plotly_requests(page) -> list[str]:
    """The file names of the plotly.js requests ``page`` makes from now on (the build's, plotly.min.js)."""
    seen: list[str] = []

    def on_request(request) -> None:
        path = request.url.split("?")[0]
        if "/" + plotly_bundle.ROUTE in path or path.endswith("/" + FULL_BUNDLE):
            seen.append(path.rsplit("/", 1)[-1])

    page.on("request", on_request)
    return seen


def assert_plotly_loaded_once(requests: list[str], *, later: int = 0) -> None:
    """Either the build's first files, each once (and ``later`` on-demand ones), or plotly.min.js once."""
    bundle = plotly_bundle.find_bundle()
    if bundle is None:
        assert requests == [FULL_BUNDLE], requests
        return
    counts = Counter(requests)
    assert FULL_BUNDLE not in counts, requests
    assert all(counts[name] == 1 for name in bundle.first), requests
    assert set(counts) <= set(bundle.files) and len(counts) == len(bundle.first) + later, requests
    assert max(counts.values()) == 1, requests


def landscape_pair(base: str, tmp: Path) -> tuple[list[int], int]:
    """A dense checkpoint and a pruned child on digits, each with a 2D landscape (contours, 3D surface)."""
    ds = httpx.post(f"{base}/api/datasets", json={"builtin": "digits"}, timeout=60)
    assert ds.status_code == 201, ds.text
    ids = []
    for i, zeros in enumerate((0.0, 0.6)):
        path = save_checkpoint(tmp / f"{i}.pt", seed=5, zero_fraction=zeros)
        resp = post_checkpoint(base, path, name=f"n{i}")
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    body = {"analysis": "landscape", "checkpoint_ids": ids, "dataset_id": ds.json()["id"], "params": PLANE}
    made = httpx.post(f"{base}/api/jobs", json=body, timeout=30)
    assert made.status_code == 202, made.text
    for job in made.json():
        assert wait_for(base, job["id"])["status"] == "succeeded"
    return ids, ds.json()["id"]


@pytest.fixture(scope="module")
def pair(server, tmp_path_factory):
    return landscape_pair(server, tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="module")
def server_without_build(tmp_path_factory):
    """A server whose plotly.js folder holds no build, with a pair of its own."""
    data_dir = tmp_path_factory.mktemp("without")
    with served(data_dir, PRUNESCOPE_PLOTLYJS_DIR=str(data_dir / "no-build")) as base:
        yield base, landscape_pair(base, tmp_path_factory.mktemp("pair-without"))


def surface_url(base: str, ids: list[int], dataset: int) -> str:
    return f"{base}/compare?ids={ids[0]},{ids[1]}&dataset={dataset}&tab=landscape&surface={ids[1]}"


def wait_drawn(page, selector: str, trace: str) -> None:
    """Until the graph at ``selector`` has drawn a visible trace of type ``trace``."""
    script = "([s, t]) => { const gd = document.querySelector(s); return !!(gd && gd._fullData && "
    script += "gd._fullData.some(d => d.type === t && d.visible === true)); }"
    page.wait_for_function(script, arg=[selector, trace], timeout=30_000)


def one_figure_per_trace_type() -> dict[str, dict]:
    """A small figure of each trace type the dashboard draws, as plotly.py sends it (numbers as bdata)."""
    z = np.arange(12.0).reshape(3, 4)
    many = np.linspace(0.0, 1.0, SVG_POINTS + 1)
    figures = {
        "scatter": go.Scatter(x=[1, 2, 3], y=[2, 1, 3], error_y=dict(type="data", array=[0.1, 0.2, 0.1])),
        "scattergl": scatter_kind(len(many))(x=many, y=many**2, mode="markers"),
        "bar": go.Bar(x=["a", "b"], y=[1, 2], marker_pattern_shape=["", "/"]),
        "heatmap": go.Heatmap(z=z),
        "contour": go.Contour(z=z),
        "surface": go.Surface(z=z),
        "scatter3d": go.Scatter3d(x=[0.0], y=[0.0], z=[1.0], mode="markers"),
    }
    assert set(figures) == dashboard_trace_types(), "a trace type the dashboard draws is not tried here"
    return {name: json.loads(go.Figure(trace).to_json()) for name, trace in figures.items()}


DRAW_EACH = """async (figures) => {
  const drawn = {};
  for (const [name, fig] of Object.entries(figures)) {
    const gd = document.createElement('div');
    gd.style.cssText = 'width: 400px; height: 300px';
    document.body.appendChild(gd);
    await window.Plotly.newPlot(gd, fig.data, fig.layout);
    drawn[name] = gd._fullData.map(t => [t.type, t.visible]);
    window.Plotly.purge(gd);
    gd.remove();
  }
  return drawn;
}"""


def test_the_compare_page_loads_the_build_once_and_it_draws_every_trace_type(server, page, pair):
    own_build()
    ids, dataset = pair
    requests = record_plotly_requests(page)
    # Given the landscape tab with a 3D surface chosen
    page.goto(surface_url(server, ids, dataset))
    # Then the contours and the surface (a trace of the build's on-demand part) are drawn
    wait_drawn(page, CONTOURS, "contour")
    wait_drawn(page, SURFACE, "surface")
    wait_drawn(page, SURFACE, "scatter3d")  # the centre
    # from the build: its first files once each and its 3D part once, plotly.min.js never
    assert page.evaluate("window.Plotly.version") == get_plotlyjs_version()
    assert_plotly_loaded_once(requests, later=1)
    # And the page's plotly.js draws every trace type the dashboard uses, WebGL scatter included
    drawn = page.evaluate(DRAW_EACH, one_figure_per_trace_type())
    assert drawn == {name: [[name, True]] for name in drawn}, drawn
    assert_plotly_loaded_once(requests, later=1)  # nothing more was fetched


def test_the_3d_part_of_the_build_is_fetched_only_for_a_3d_figure(server, page, pair):
    bundle = own_build()
    ids, dataset = pair
    requests = record_plotly_requests(page)
    page.goto(f"{server}/compare?ids={ids[0]},{ids[1]}&dataset={dataset}&tab=landscape")
    wait_drawn(page, CONTOURS, "contour")
    page.wait_for_function("window.psDeferred && window.psDeferred() === 0", timeout=30_000)
    assert Counter(requests) == Counter(bundle.first), requests
    # When a checkpoint is picked for the 3D surface, then its part loads and draws it
    page.click("#landscape-surface")
    page.get_by_role("option", name=f"n1 (#{ids[1]})", exact=True).click()
    wait_drawn(page, SURFACE, "surface")
    assert_plotly_loaded_once(requests, later=1)


def test_a_build_that_fails_to_load_falls_back_to_plotly_min_js(server, page, pair):
    own_build()
    ids, dataset = pair
    requests = record_plotly_requests(page)
    warnings: list[str] = []
    page.on("console", lambda msg: warnings.append(msg.text) if msg.type == "warning" else None)
    page.route("**/" + plotly_bundle.ROUTE + "*", lambda route: route.abort())
    page.goto(surface_url(server, ids, dataset))
    wait_drawn(page, CONTOURS, "contour")
    wait_drawn(page, SURFACE, "surface")
    assert requests.count(FULL_BUNDLE) == 1, requests
    assert any("did not load; loading plotly.min.js" in w for w in warnings), warnings


def test_without_a_build_the_page_loads_plotly_min_js_once(server_without_build, browser):
    base, (ids, dataset) = server_without_build
    assert "prunescope-plotlyjs" not in httpx.get(f"{base}/compare", timeout=30).text
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        requests = record_plotly_requests(page)
        page.goto(surface_url(base, ids, dataset))
        wait_drawn(page, CONTOURS, "contour")
        wait_drawn(page, SURFACE, "surface")
        assert requests == [FULL_BUNDLE], requests
        assert page.evaluate("document.querySelectorAll('script[src*=\"plotly.min.js\"]').length") == 1
    finally:
        context.close()
