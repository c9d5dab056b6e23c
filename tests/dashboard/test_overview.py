"""The overview tab: headline metrics per checkpoint from every analysis, and each against sparsity."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dashboard import data
from dashboard.components.overview import (
    DIFF_SUFFIX,
    QUEUE_BUTTON,
    column_defs,
    grid_rows,
    missing_by_analysis,
    overview_view,
    queue_missing,
)
from dashboard.figures import evaluate as fig_evaluate
from dashboard.figures.common import CheckpointSummary, checkpoint_colors
from dashboard.figures.overview import METRICS, difference_rows, metrics_vs_sparsity, overview_rows
from server.app import create_app
from tests.conftest import state_dict_bytes

CHECKPOINTS = {
    1: {"id": 1, "name": "dense", "sparsity": 0.0, "pruning_method": None, "parent_id": None},
    2: {"id": 2, "name": "mag50", "sparsity": 0.5, "pruning_method": "global_magnitude", "parent_id": 1},
    3: {"id": 3, "name": "mag80", "sparsity": 0.8, "pruning_method": "global_magnitude", "parent_id": 1},
    4: {"id": 4, "name": "rand50", "sparsity": 0.5, "pruning_method": "random", "parent_id": 1},
}
RESULTS = {
    1: {
        "evaluate": {"accuracy": 0.99},
        "robustness": {"mean_corruption_accuracy": 0.9, "neural_collapse": {"nc1": 0.2}},
        "hessian": {"top_eigenvalues": [80.0, 60.0], "trace": 400.0},
        "landscape": {"2d": {"curvature": [8.0, 12.0]}},
    },
    2: {
        "evaluate": {"accuracy": 0.98},
        "landscape": {"interpolation": {"barrier": 0.01}, "1d": {"curvature": 5.0}},
    },
    3: {"robustness": {"clean": {"accuracy": 0.95}, "mean_corruption_accuracy": None}},
    4: {},
}


def test_rows_read_each_metric_from_its_analysis_and_list_the_missing_ones():
    rows = {r["id"]: r for r in overview_rows([1, 2, 3, 4, 99], CHECKPOINTS, RESULTS)}
    assert set(rows) == {1, 2, 3, 4}
    assert rows[1]["top_eigenvalue"] == 80.0 and rows[1]["trace"] == 400.0 and rows[1]["nc1"] == 0.2
    assert rows[1]["sharpness"] == pytest.approx(10.0)  # the mean of the 2D slice's two axes
    assert rows[2]["sharpness"] == 5.0 and rows[2]["barrier"] == 0.01  # the 1D slice wins
    assert rows[3]["clean_accuracy"] == 0.95  # from robustness when evaluate has not run
    assert rows[3]["corrupted_accuracy"] is None
    assert rows[1]["method"] == "dense" and rows[4]["missing"] == [
        "evaluate",
        "robustness",
        "hessian",
        "landscape",
    ]
    assert rows[2]["missing"] == ["robustness", "hessian"]


def test_metrics_against_sparsity_draw_one_line_per_method_and_the_dense_reference():
    fig = metrics_vs_sparsity(overview_rows([1, 2, 3, 4], CHECKPOINTS, RESULTS))
    titles = [a.text for a in fig.layout.annotations]
    assert "clean accuracy" in titles and "Hessian trace" in titles
    lines = [t for t in fig.data if t.mode == "lines+markers" and t.name == "global_magnitude"]
    first = lines[0]  # clean accuracy: mag50 then mag80, by sparsity
    assert list(first.x) == [50.0, 80.0] and list(first.y) == [0.98, 0.95]
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert stars and all(t.x[0] == 0.0 for t in stars)
    assert sum(t.showlegend is True for t in fig.data) == 2  # one legend entry per method and the dense


def _find(tree, component_id):
    """The component with ``component_id`` in a built Dash tree, else None."""
    nodes = list(tree) if isinstance(tree, list) else [tree]
    while nodes:
        node = nodes.pop()
        if getattr(node, "id", None) == component_id:
            return node
        children = getattr(node, "children", None)
        nodes.extend(children if isinstance(children, list) else [children] if children is not None else [])
    return None


def test_view_renders_the_grid_the_figure_and_both_modes():
    out = overview_view([1, 2, 7], CHECKPOINTS, RESULTS, {})
    assert "Unknown checkpoint ids ignored: 7" in str(out)
    grid = _find(out, "overview-grid")
    assert [r["clean_accuracy"] for r in grid.rowData] == [0.99, 0.98]  # numbers: the grid sorts numerically
    assert _find(out, "fig-overview-sparsity") is not None
    stores = _find(out, "overview-figures").data
    assert set(stores) == {"absolute", "difference"}
    assert set(_find(out, "overview-columns").data) == {"absolute", "difference"}


@pytest.mark.parametrize(("settings", "mode"), [(None, "absolute"), ({"mode": "difference"}, "difference")])
def test_view_opens_in_the_mode_its_settings_name(settings, mode):
    out = overview_view([1, 2], CHECKPOINTS, RESULTS, {}, settings=settings)
    assert _find(out, "overview-mode").value == mode
    groups = _find(out, "overview-grid").columnDefs
    headers = [c.get("headerName") for g in groups for c in g.get("children", [])]
    assert any(h.startswith("Δ ") for h in headers) == (mode == "difference")
    title = _find(out, "fig-overview-sparsity").figure.layout.title.text or ""
    assert ("Difference to the parent" in title) == (mode == "difference")


def test_difference_rows_subtract_the_parent_and_leave_orphans_empty():
    rows = overview_rows([1, 2, 3, 4], CHECKPOINTS, RESULTS)
    diffs = {r["id"]: r for r in difference_rows(rows)}
    assert diffs[2]["clean_accuracy"] == pytest.approx(0.98 - 0.99)
    assert diffs[3]["clean_accuracy"] == pytest.approx(0.95 - 0.99)  # read from robustness, as the row
    assert diffs[2]["top_eigenvalue"] is None  # the child has no hessian result
    assert diffs[1]["top_eigenvalue"] == 0.0 and diffs[1]["barrier"] is None  # the dense: its own reference
    assert diffs[2]["sparsity"] == 0.5  # sparsity stays the x axis
    # a child whose parent is not in the selection has no difference
    orphan = {r["id"]: r for r in difference_rows(overview_rows([2, 3], CHECKPOINTS, RESULTS))}
    assert orphan[2]["clean_accuracy"] is None and orphan[2]["has_parent"] is False


def test_difference_figure_draws_the_children_relative_to_the_parent():
    fig = metrics_vs_sparsity(
        difference_rows(overview_rows([1, 2, 3], CHECKPOINTS, RESULTS)), difference=True
    )
    assert "Δ clean accuracy" in [a.text for a in fig.layout.annotations]
    line = next(t for t in fig.data if t.name == "global_magnitude")
    assert list(line.x) == [50.0, 80.0] and list(line.y) == pytest.approx([-0.01, -0.04])
    star = next(t for t in fig.data if t.marker.symbol == "star")
    assert list(star.y) == [0.0]


def test_grid_rows_keep_numbers_names_as_text_and_differences_beside_them():
    checkpoints = {**CHECKPOINTS, 2: {**CHECKPOINTS[2], "name": "<img src=x onerror=alert(1)>"}}
    rows = overview_rows([1, 2], checkpoints, RESULTS)
    cells = {c["id"]: c for c in grid_rows(rows, checkpoint_colors([1, 2]))}
    assert cells[2]["name"] == "<img src=x onerror=alert(1)> (#2)"  # a string; the grid renders text
    assert cells[2]["clean_accuracy"] == 0.98
    assert cells[2]["clean_accuracy" + DIFF_SUFFIX] == pytest.approx(-0.01)
    assert cells[2]["missing"] == "robustness, hessian"
    assert cells[1]["color"] != cells[2]["color"]


def test_columns_are_grouped_per_analysis_and_keep_their_id_across_modes():
    absolute, difference = column_defs(False), column_defs(True)
    groups = [g["headerName"] for g in absolute]
    assert groups == ["checkpoint", "pruning", "evaluate", "robustness", "hessian", "landscape", "missing"]
    metric_cols = [c for g in absolute[2:-1] for c in g["children"]]
    assert {c["colId"] for c in metric_cols} == {m.key for m in METRICS}
    assert all(c["filter"] == "agNumberColumnFilter" for c in metric_cols)
    diff_cols = [c for g in difference[2:-1] for c in g["children"]]
    assert [c["colId"] for c in diff_cols] == [c["colId"] for c in metric_cols]
    assert all(c["field"].endswith(DIFF_SUFFIX) and c["headerName"].startswith("Δ") for c in diff_cols)
    assert not any("cellRenderer" in c for g in absolute for c in g.get("children", [g]))  # no HTML renderer


def test_missing_analyses_are_grouped_per_analysis_and_the_button_is_optional():
    rows = overview_rows([1, 2, 4], CHECKPOINTS, RESULTS)
    assert missing_by_analysis(rows) == {
        "robustness": [2, 4],
        "hessian": [2, 4],
        "evaluate": [4],
        "landscape": [4],
    }
    assert _find(overview_view([1, 2, 4], CHECKPOINTS, RESULTS, {}), QUEUE_BUTTON) is not None
    read_only = overview_view([1, 2, 4], CHECKPOINTS, RESULTS, {}, writable=False)
    assert _find(read_only, QUEUE_BUTTON) is None and _find(read_only, "overview-grid") is not None


def test_every_per_checkpoint_trace_names_its_checkpoint_for_linked_highlighting():
    entries = [
        CheckpointSummary(i, f"c{i}", {"accuracy": 0.9, "ece": 0.1, "per_class_accuracy": [0.8]})
        for i in (3, 5)
    ]
    for fig in (fig_evaluate.accuracy_bars(entries), fig_evaluate.per_class_accuracy(entries)):
        assert [t.meta for t in fig.data] == [{"checkpoint": 3}, {"checkpoint": 5}]
    fig = metrics_vs_sparsity(overview_rows([1, 2, 3, 4], CHECKPOINTS, RESULTS))
    line = next(t for t in fig.data if t.name == "global_magnitude")
    assert line.meta == {"checkpoints": [2, 3]}  # one checkpoint per point, in sparsity order
    assert next(t for t in fig.data if t.marker.symbol == "star").meta == {"checkpoint": 1}


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _upload(client, seed: int, **fields) -> int:
    resp = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", **{k: str(v) for k, v in fields.items()}},
        files={"file": ("w.pt", state_dict_bytes(seed=seed))},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def test_queue_missing_submits_each_analysis_without_a_result_with_its_defaults(client):
    # Given a dense checkpoint and its child with no results on digits
    ds = data.add_builtin_dataset("digits")["id"]
    dense = _upload(client, 0, name="dense")
    child = _upload(client, 1, name="child", parent_id=dense)
    # When the missing analyses are queued
    message, refresh = queue_missing([dense, child, 999], ds)
    # Then each of the four analyses has one job per checkpoint, with default parameters
    assert "evaluate: 2" in str(message) and "landscape: 2" in str(message) and isinstance(refresh, float)
    jobs = data.list_jobs()
    assert sorted((j["analysis"], j["checkpoint_id"]) for j in jobs) == sorted(
        (a, c) for a in ("evaluate", "robustness", "hessian", "landscape") for c in (dense, child)
    )
    assert {j["dataset_id"] for j in jobs} == {ds}


def test_queue_missing_shows_the_refusal(client):
    dense = _upload(client, 0, name="dense")
    message, _ = queue_missing([dense], 12345)
    assert message.className == "ps-error" and str(message.children)
