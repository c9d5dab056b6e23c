"""The overview tab: headline metrics per checkpoint from every analysis, and each against sparsity."""

from __future__ import annotations

import pytest

from dashboard.components.overview import overview_view
from dashboard.figures.overview import metrics_vs_sparsity, overview_rows

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


def test_view_renders_the_table_and_the_figure():
    out = overview_view([1, 2, 7], CHECKPOINTS, RESULTS, {})
    text = str(out)
    assert "Unknown checkpoint ids ignored: 7" in text and "overview-summary" in text
    assert "fig-overview-sparsity" in text and "99.00%" in text
