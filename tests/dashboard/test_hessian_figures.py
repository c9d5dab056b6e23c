"""Hessian figures and the hessian tab's component tree, from synthetic result summaries."""

from __future__ import annotations

import math

import pytest
from dash import html

from dashboard.app import create_dash
from dashboard.components.hessian import PER_LAYER_BUTTON, hessian_view, lacking_per_layer
from dashboard.figures.common import CheckpointSummary, checkpoint_colors
from dashboard.figures.hessian import (
    DENSITY_FLOOR,
    density_multiples,
    density_overlay,
    eigenvalue_bars,
    outlier_note,
    per_layer_heatmap,
    sparsity_trends,
)
from dashboard.state import COMPARE_TABS, parse_tab
from tests.dashboard.test_components import ckpt, job, texts, walk


def density(centers: list[float], grid: int = 200) -> dict:
    """A bulk at 0 and a small bump at each outlier; far tails underflow to exactly 0."""
    lo, hi = -1.0, max(centers, default=1.0) + 1.0
    xs = [lo + (hi - lo) * i / (grid - 1) for i in range(grid)]

    def bump(x, c, mass):
        return mass * math.exp(-0.5 * ((x - c) / 0.05) ** 2) / 0.125

    ys = [bump(x, 0.0, 1.0) + sum(bump(x, c, 1e-4) for c in centers) for x in xs]
    ys = [y if y > 1e-300 else 0.0 for y in ys]
    return {"x": xs, "y": ys}


def spectrum(
    top=(30.0, 20.0, 12.0, 1.0, 0.8),
    n_outliers=3,
    negative=(-0.5, -0.1),
    *,
    trace=100.0,
    stderr=2.5,
    with_density=True,
    per_layer=None,
    subspace="all",
    n_params=24_058,
    converged=True,
    num_classes=10,
) -> dict:
    top = list(top)
    return {
        "top_eigenvalues": top,
        "residuals": [1e-3] * len(top),
        "negative_eigenvalues": list(negative),
        "negative_residuals": [2e-3] * len(negative),
        "converged": converged,
        "lanczos_iterations": 40,
        "trace": trace,
        "trace_stderr": stderr,
        "trace_method": "hutchinson",
        "density": density(top[:n_outliers]) if with_density else {"x": [], "y": []},
        "density_sigma": 0.05,
        "outliers": top[:n_outliers],
        "bulk_edge": top[n_outliers] if n_outliers < len(top) else None,
        "subspace": subspace,
        "n_params": n_params,
        "n_samples": 256,
        "num_classes": num_classes,
        "hvp_count": 123,
        "hvp_method": "double_backward",
        "hvp_seconds": 1.5,
        "seconds": 2.25,
        "dtype": "float32",
        "per_layer": per_layer,
    }


def layer(top: float | None, n_params=100, converged=True) -> dict:
    return {
        "parameters": ["w", "b"],
        "n_params": n_params,
        "top_eigenvalues": [] if top is None else [top],
        "residuals": [] if top is None else [1e-4],
        "converged": converged,
        "hvp_count": 10,
    }


@pytest.fixture
def entries():
    return [
        CheckpointSummary(1, "dense", spectrum()),
        CheckpointSummary(
            4, "pruned 90%", spectrum((50.0, 2.0, 1.5), n_outliers=1, subspace="unpruned", n_params=2_400)
        ),
        CheckpointSummary(2, "pruned 50%", spectrum(trace=None, stderr=None, with_density=False)),
    ]


def by_type(fig, kind):
    return [t for t in fig.data if t.type == kind]


def ticks(fig):
    return [t for t in fig.data if t.mode == "markers" and t.marker.symbol == "line-ns-open"]


# -- eigenvalue bars ----------------------------------------------------------------------------------


def test_eigenvalue_bars_grouped_shows_top_then_negative_with_outliers_solid(entries):
    fig = eigenvalue_bars(entries)
    bars = by_type(fig, "bar")
    assert [b.name for b in bars] == [e.label for e in entries]
    dense = bars[0]
    assert list(dense.x) == ["λ1", "λ2", "λ3", "λ4", "λ5", "λmin", "λmin+1"]
    assert list(dense.y) == [30.0, 20.0, 12.0, 1.0, 0.8, -0.5, -0.1]
    assert list(dense.marker.opacity[:5]) == [1.0, 1.0, 1.0, 0.4, 0.4]  # three outliers, then the bulk
    assert list(dense.marker.pattern.shape) == [""] * 5 + ["/"] * 2
    assert list(dense.error_y.array) == [1e-3] * 5 + [2e-3] * 2
    assert list(bars[1].marker.opacity) == [1.0, 0.4, 0.4, 0.8, 0.8]
    assert fig.layout.barmode == "group"
    assert list(fig.layout.xaxis.categoryarray)[-2:] == ["λmin", "λmin+1"]


def test_eigenvalue_bars_become_small_multiples_for_many_checkpoints(entries):
    many = [CheckpointSummary(i, f"c{i}", spectrum()) for i in range(1, 24)]
    fig = eigenvalue_bars(many, columns=5)
    bars = by_type(fig, "bar")
    assert len({(b.xaxis, b.yaxis) for b in bars}) == 23
    assert not any(b.showlegend for b in bars)
    assert len(fig.layout.shapes) == 23  # one bulk edge per panel
    assert fig.layout.height > eigenvalue_bars(many[:10], columns=5, grouped=False).layout.height


def test_eigenvalue_bars_tolerate_missing_values():
    s = spectrum()
    s.update(
        top_eigenvalues=[None, 5.0], residuals=[], negative_eigenvalues=[], outliers=None, bulk_edge=None
    )
    fig = eigenvalue_bars([CheckpointSummary(1, "odd", s), CheckpointSummary(2, "empty", {})])
    (bar,) = by_type(fig, "bar")
    assert list(bar.y) == [None, 5.0]
    assert list(bar.error_y.array) == [None, None]
    assert eigenvalue_bars([]).layout.annotations[0].text == "no eigenvalues to show"


# -- against sparsity ---------------------------------------------------------------------------------


def test_sparsity_trends_sort_by_sparsity_and_skip_missing_values(entries):
    sparsity = {1: 0.0, 4: 0.9, 2: 0.5}
    fig = sparsity_trends(entries, sparsity)
    top, trace, outliers = by_type(fig, "scatter")
    assert list(top.x) == [0.0, 50.0, 90.0]
    assert list(top.y) == [30.0, 30.0, 50.0]
    assert list(trace.x) == [0.0, 90.0]  # the 50% checkpoint has no trace
    assert list(trace.error_y.array) == [2.5, 2.5]
    assert list(outliers.y) == [3.0, 3.0, 1.0]
    assert list(top.marker.color) == [checkpoint_colors([1, 2, 4])[i] for i in (1, 2, 4)]
    assert [s.y0 for s in fig.layout.shapes] == [10]  # C = 10 drawn on the outlier panel
    assert fig.layout.xaxis3.title.text == "sparsity (%)"


def test_sparsity_trends_mark_unconverged_and_need_a_sparsity():
    entries = [CheckpointSummary(1, "a", spectrum(converged=False)), CheckpointSummary(2, "b", spectrum())]
    fig = sparsity_trends(entries, {1: 0.2, 2: None})
    assert list(by_type(fig, "scatter")[0].marker.symbol) == ["x"]
    assert "sparsity" in sparsity_trends(entries, {}).layout.annotations[0].text


# -- densities ----------------------------------------------------------------------------------------


def test_density_overlay_is_log_scaled_clipped_and_marks_outliers(entries):
    fig = density_overlay(entries)
    assert fig.layout.yaxis.type == "log"
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == [entries[0].label, entries[1].label]  # the third has no density
    peak = max(max(t.y) for t in lines)
    floor = peak * DENSITY_FLOOR
    assert min(min(t.y) for t in lines) == pytest.approx(floor)
    assert fig.layout.yaxis.range[0] < math.log10(floor) < math.log10(peak) < fig.layout.yaxis.range[1]
    marks = ticks(fig)
    assert [list(t.x) for t in marks] == [[30.0, 20.0, 12.0], [50.0]]
    assert all(10 ** fig.layout.yaxis.range[0] < y < floor for t in marks for y in t.y)  # under the lines
    note = fig.layout.annotations[0].text
    assert "C = 10 classes; 1–3 outliers found" in note and "no density for pruned 50% (#2)" in note


def test_density_overlay_without_any_density_says_so():
    fig = density_overlay(
        [CheckpointSummary(1, "a", spectrum(with_density=False)), CheckpointSummary(2, "b", {})]
    )
    assert not fig.data and "no spectral densities" in fig.layout.annotations[0].text


def test_density_multiples_one_panel_per_checkpoint_on_shared_log_axes(entries):
    fig = density_multiples(entries, columns=2)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len({(t.xaxis, t.yaxis) for t in lines}) == 2
    axes = [fig.layout[k] for k in fig.layout if k.startswith("yaxis")]
    assert len(axes) == 2 and {a.type for a in axes} == {"log"}  # one per row of panels
    assert len({tuple(a.range) for a in axes}) == 1
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:3] == [
        "dense (#1)<br>3 outliers, C = 10",
        "pruned 90% (#4)<br>1 outliers, C = 10",
        "pruned 50% (#2)<br>3 outliers, C = 10",
    ]
    assert "no density" in titles
    assert [t.x[0] for t in ticks(fig)] == [30.0, 50.0]
    assert sorted(s.x0 for s in fig.layout.shapes) == [1.0, 2.0]  # the bulk edges


def test_density_figures_survive_nones_in_the_grid():
    s = spectrum()
    s["density"] = {"x": [0.0, 1.0, None, 3.0], "y": [1.0, None, 2.0, -1e-20]}
    s["num_classes"] = None
    fig = density_overlay([CheckpointSummary(1, "a", s)])
    (line,) = [t for t in fig.data if t.mode == "lines"]
    assert list(line.x) == [0.0, 3.0] and line.y[1] == pytest.approx(1e-9)  # floor = 1e-9 of the peak 1
    assert "C unknown" in fig.layout.annotations[0].text
    assert density_multiples([CheckpointSummary(1, "a", s)]).data


def test_outlier_note_for_one_checkpoint():
    assert outlier_note([CheckpointSummary(1, "a", spectrum())]) == "C = 10 classes; 3 outliers found"


# -- per layer ----------------------------------------------------------------------------------------


def test_per_layer_heatmap_rows_are_groups_columns_checkpoints():
    a = spectrum(per_layer={"conv1": layer(100.0), "fc": layer(0.01, converged=False)})
    b = spectrum(per_layer={"conv1": layer(10.0), "conv2": layer(-1.0)})
    fig = per_layer_heatmap(
        [CheckpointSummary(1, "a", a), CheckpointSummary(2, "none", spectrum()), CheckpointSummary(3, "b", b)]
    )
    (hm,) = by_type(fig, "heatmap")
    assert list(hm.y) == ["conv1", "fc", "conv2"]
    assert list(hm.x) == ["a (#1)", "b (#3)"]
    assert [list(r) for r in hm.z] == [[2.0, 1.0], [-2.0, None], [None, None]]
    assert "not converged" in hm.text[1][0] and hm.text[1][1] == "absent"
    assert list(hm.colorbar.tickvals) == [-2, -1, 0, 1, 2]


def test_per_layer_heatmap_without_per_layer_results(entries):
    assert "no per-layer" in per_layer_heatmap(entries).layout.annotations[0].text


# -- the hessian tab ----------------------------------------------------------------------------------


def ids_in(tree) -> set:
    return {getattr(c, "id", None) for c in walk(tree)}


def test_hessian_view_summarises_each_checkpoint():
    checkpoints = {1: ckpt(1, "dense"), 2: ckpt(2, "pruned"), 3: ckpt(3, "waiting")}
    summaries = {
        1: spectrum(),
        2: spectrum(trace=None, stderr=None, converged=False, subspace="unpruned", n_params=2_400),
    }
    view = hessian_view([1, 2, 3, 99], checkpoints, summaries, {3: job(8, "queued")})
    words = " ".join(texts(view))
    assert "Unknown checkpoint ids ignored: 99" in words
    assert "Missing hessian results" in words
    table = next(c for c in walk(view) if getattr(c, "id", None) == "compare-summary")
    columns = [c["field"] for c in table.columnDefs]
    rows = [[row[field] for field in columns] for row in table.rowData]
    assert rows[0][0] == "dense (#1)" and table.rowData[0]["_color"].startswith("#")
    assert rows[0][2:] == ["30 ± 0.001", "100 ± 2.5", "3 / 10", "all (24,058 params)", "123", "2.2"]
    assert rows[1][2:5] == ["30 ± 0.001 (not converged)", "—", "3 / 10"]
    assert rows[1][5] == "unpruned (2,400 params)"
    assert {"fig-eigenvalues", "fig-hessian-sparsity", "fig-density", "fig-densities"} <= ids_in(view)
    assert PER_LAYER_BUTTON in ids_in(view) and "fig-per-layer" not in ids_in(view)


def test_hessian_view_shows_per_layer_spectra_when_present():
    summaries = {1: spectrum(per_layer={"fc": layer(3.0)}), 2: spectrum(per_layer={"fc": layer(4.0)})}
    view = hessian_view([1, 2], {1: ckpt(1), 2: ckpt(2)}, summaries, {})
    assert "fig-per-layer" in ids_in(view) and PER_LAYER_BUTTON not in ids_in(view)


def test_hessian_view_says_per_layer_jobs_are_running_instead_of_offering_the_button():
    view = hessian_view([1], {1: ckpt(1)}, {1: spectrum()}, {1: job(9, "running")})
    assert PER_LAYER_BUTTON not in ids_in(view)
    assert "1 hessian job(s) running; this page updates when they finish." in texts(view)


def test_hessian_view_without_results_offers_only_the_queue_button():
    view = hessian_view([1], {1: ckpt(1)}, {}, {})
    assert "compare-queue" in ids_in(view) and "fig-density" not in ids_in(view)
    assert not any(isinstance(c, html.Table) for c in walk(view))


def test_lacking_per_layer_lists_checkpoints_without_it():
    assert lacking_per_layer([1, 2, 3], {1: spectrum(per_layer={"fc": layer(1.0)}), 2: spectrum()}) == [2, 3]


def test_every_compare_tab_has_a_view_and_parses(settings):
    create_dash(settings)  # pages register themselves with an app
    from dashboard.pages.compare import VIEWS

    assert VIEWS.keys() == COMPARE_TABS.keys()
    assert VIEWS["hessian"] is hessian_view
    assert parse_tab("hessian") == "hessian"


def test_thinning_a_density_keeps_its_ends_and_its_narrow_peaks():
    from dashboard.figures.hessian import thin

    x = [i / 999 for i in range(1000)]
    y = [1e-6] * 1000
    y[501] = 5.0  # a one-point spike, as an outlier's broadened peak on a fine grid
    y[998] = 2.0
    tx, ty = thin(x, y, points=100)
    assert len(tx) <= 102 and tx[0] == x[0] and tx[-1] == x[-1]
    assert (x[501], 5.0) in zip(tx, ty, strict=True) and (x[998], 2.0) in zip(tx, ty, strict=True)
    assert tx == sorted(tx)
    assert thin(x[:50], y[:50], points=100) == (x[:50], y[:50])


def test_bulk_edges_of_the_small_multiples_are_one_line_per_panel():
    from dashboard.figures.hessian import density_multiples

    panels = [CheckpointSummary(i, f"c{i}", spectrum()) for i in range(1, 5)]
    fig = density_multiples(panels)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.x0 for s in lines] == [1.0] * 4  # each panel's bulk edge, the fourth eigenvalue
    assert {s.xref for s in lines} == {"x", "x2", "x3", "x4"} and all(
        s.yref.endswith("domain") for s in lines
    )
