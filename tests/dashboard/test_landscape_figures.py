"""Landscape figures and the landscape tab, from synthetic summaries with closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dash import dcc
from dash.development.base_component import Component

from dashboard.components.landscape import CONTOURS_ID, LOG_ID, SURFACE_ID, landscape_view, surface_figures
from dashboard.figures.common import CheckpointSummary, checkpoint_colors
from dashboard.figures.landscape import (
    ANNOTATE_MAX,
    contour_grid,
    curves_1d,
    interpolation_curves,
    round_significant,
    sharpness_vs_sparsity,
    surface_3d,
)

HOSTILE = "<b>x</b>"


def bowl(alpha, beta):
    """An asymmetric quadratic bowl, so a missed transpose or a flipped axis shows."""
    return 2.0 + 3.0 * alpha**2 + 0.5 * beta**2 + 0.4 * alpha


def summary_2d(scale=1.0, alpha=None, beta=None):
    alpha = np.linspace(-1, 1, 11) if alpha is None else alpha
    beta = np.linspace(-0.6, 0.6, 7) if beta is None else beta
    a, b = np.meshgrid(alpha, beta, indexing="ij")  # (len(alpha), len(beta))
    loss = scale * bowl(a, b)
    return {
        "mode": "2d",
        "alpha": alpha.tolist(),
        "beta": beta.tolist(),
        "loss": loss.tolist(),
        "accuracy": (1 - loss / 10).tolist(),
        "center_loss": scale * 2.0,
        "center_accuracy": 0.8,
        "direction": "random",
        "normalization": "filter",
        "seed": 0,
        "masked": True,
        "curvature": [scale * 6.0, scale * 1.0],
        "precision": "fp32",
        "points": alpha.size * beta.size,
        "seconds": 1.0,
        "seconds_per_point": 1.0 / (alpha.size * beta.size),
        "n_samples": 512,
    }


def summary_1d(curvature=4.0):
    alpha = np.linspace(-1, 1, 21)
    loss = 1.0 + curvature / 2 * alpha**2
    return {
        "mode": "1d",
        "alpha": alpha.tolist(),
        "loss": loss.tolist(),
        "accuracy": (1 - loss / 10).tolist(),
        "center_loss": 1.0,
        "center_accuracy": 0.9,
        "direction": "random",
        "normalization": "filter",
        "seed": 1,
        "masked": False,
        "curvature": curvature,
        "precision": "bf16",
        "points": 21,
        "seconds_per_point": 0.01,
    }


def path_loss(alpha, height=1.0):
    """From L = 1 at alpha = 0 to L = 2 at alpha = 1 with a bump: the max is at (1 + 1/(4h)) / 2."""
    return 1.0 + alpha + 4 * height * alpha * (1 - alpha)


def summary_interpolation(target=1, height=1.0, barrier=True):
    alpha = np.linspace(0, 1, 9)  # holds 0.625, the argmax for height 1
    loss = path_loss(alpha, height)
    error = 0.1 + 0.3 * np.sin(np.pi * alpha)  # the error barrier peaks at 0.5
    out = {
        "mode": "interpolation",
        "alpha": alpha.tolist(),
        "loss": loss.tolist(),
        "accuracy": (1 - error).tolist(),
        "target_checkpoint_id": target,
        "batchnorm": "interpolate",
        "center_loss": 1.0,
        "center_accuracy": 0.9,
    }
    if barrier:
        out["barrier"] = float(loss.max() - 1.5)
        out["error_barrier"] = 0.3
    return out


def entry(cid, summary, name=None):
    return CheckpointSummary(cid, name or f"c{cid}", summary)


def contours(fig):
    return [t for t in fig.data if t.type == "contour"]


def at(trace, x, y):
    """The z a trace shows at (x, y), read as Plotly does: z[y][x]."""
    return np.asarray(trace.z)[list(trace.y).index(y), list(trace.x).index(x)]


# ----------------------------------------------------------------------------------- contours


def test_contour_panel_shows_loss_with_alpha_across_and_beta_up():
    alpha, beta = np.linspace(-1, 1, 11), np.linspace(-0.6, 0.6, 7)
    trace = contours(contour_grid([entry(1, summary_2d(alpha=alpha, beta=beta))]))[0]
    assert np.asarray(trace.z).shape == (7, 11)  # (len(beta), len(alpha))
    assert at(trace, alpha[8], beta[1]) == pytest.approx(bowl(alpha[8], beta[1]), rel=1e-6)
    assert at(trace, alpha[0], beta[6]) == pytest.approx(bowl(-1.0, 0.6), rel=1e-6)


def test_contour_panels_share_one_color_scale_and_one_set_of_levels():
    scales = {1: 1.0, 2: 3.0, 3: 0.5}
    entries = [entry(i, summary_2d(scale=s)) for i, s in scales.items()]
    grids = [np.array(e.summary["loss"]) for e in entries]
    lo, hi = min(g.min() for g in grids), max(g.max() for g in grids)  # from panels 3 and 2
    fig = contour_grid(entries)
    traces = contours(fig)
    assert len(traces) == 3
    assert {(t.zmin, t.zmax) for t in traces} == {(lo, hi)}
    assert {t.coloraxis for t in traces} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (traces[0].zmin, traces[0].zmax)
    assert len({(t.contours.start, t.contours.end, t.contours.size) for t in traces}) == 1
    assert all(t.autocontour is False for t in traces)
    assert fig.layout.coloraxis.colorbar.title.text == "loss"


def test_contour_log_option_plots_log10_loss_and_labels_the_colorbar():
    s = summary_2d()
    s["loss"][0][0] = 0.0  # a non-positive loss has no log: a gap, not an error
    fig = contour_grid([entry(1, s)], log=True)
    trace = contours(fig)[0]
    alpha, beta = s["alpha"], s["beta"]
    assert at(trace, alpha[3], beta[2]) == pytest.approx(math.log10(bowl(alpha[3], beta[2])), rel=1e-6)
    assert np.isnan(at(trace, alpha[0], beta[0]))
    assert fig.layout.coloraxis.colorbar.title.text == "log₁₀ loss"
    assert trace.zmax == pytest.approx(math.log10(bowl(1.0, 0.6)), rel=1e-6)


def test_contour_grid_marks_each_centre_in_the_checkpoint_color():
    entries = [entry(4, summary_2d()), entry(9, summary_2d(scale=2.0))]
    colors = checkpoint_colors([4, 9])
    fig = contour_grid(entries, colors)
    centres = [t for t in fig.data if t.type == "scatter"]
    assert [(t.x, t.y) for t in centres] == [((0.0,), (0.0,))] * 2
    assert [t.marker.color for t in centres] == [colors[4], colors[9]]
    assert "loss 4" in centres[1].hovertemplate  # 2 x bowl(0, 0)


def test_contour_grid_lays_out_small_multiples_in_rows():
    entries = [entry(i, summary_2d()) for i in range(12)]
    fig = contour_grid(entries, columns=5)  # 12 panels -> 3 rows of 5
    assert len({(t.xaxis, t.yaxis) for t in contours(fig)}) == 12
    assert fig.layout.height > contour_grid(entries[:5], columns=5).layout.height


def test_contour_grid_leaves_none_values_blank_and_skips_unusable_summaries():
    gappy = summary_2d()
    gappy["loss"][2][3] = None
    ragged = summary_2d()
    ragged["loss"][1] = ragged["loss"][1][:-1]
    wrong_shape = summary_2d()
    wrong_shape["beta"] = wrong_shape["beta"][:-1]
    entries = [
        entry(1, gappy),
        entry(2, ragged),
        entry(3, wrong_shape),
        entry(4, {"mode": "2d", "alpha": None, "beta": [], "loss": None}),
        entry(5, summary_1d()),  # another mode: not a panel
    ]
    fig = contour_grid(entries)
    (trace,) = contours(fig)
    assert np.isnan(at(trace, gappy["alpha"][2], gappy["beta"][3]))
    assert trace.name == "c1 (#1)"


@pytest.mark.parametrize("entries", [None, [], [entry(1, {"mode": "2d", "loss": [[None]]})]])
def test_contour_grid_without_a_usable_surface_says_so(entries):
    fig = contour_grid(entries)
    assert not fig.data and "no 2D landscape" in fig.layout.annotations[0].text


def test_thirty_surfaces_of_51_by_51_stay_under_700_kb_of_json():
    grid = np.linspace(-1, 1, 51)
    entries = [entry(i, summary_2d(scale=1 + i / 10, alpha=grid, beta=grid)) for i in range(30)]
    size = len(contour_grid(entries).to_json())
    assert size < 700_000  # measured: 510 kB as float32 typed arrays (lists of 5-digit floats: 600 kB)
    assert len(surface_3d(entries[0]).to_json()) < 30_000


def test_round_significant_keeps_five_digits_and_short_decimals():
    values = np.array([123456.0, 0.000123456789, -3.14159265, 0.0, np.nan, 1e300, 5e-324])
    out = round_significant(values)
    assert out[:4].tolist() == [123460.0, 0.00012346, -3.1416, 0.0]
    assert np.isnan(out[4]) and out[5] == 1e300 and out[6] == 5e-324
    assert repr(float(round_significant(np.array(0.1234567)))) == "0.12346"


# ------------------------------------------------------------------------------------ surface


def test_surface_3d_draws_the_grid_transposed_with_the_centre_marked():
    s = summary_2d()
    fig = surface_3d(entry(1, s), color="#123456")
    surface, centre = fig.data
    assert surface.type == "surface" and centre.type == "scatter3d"
    assert at(surface, s["alpha"][9], s["beta"][0]) == pytest.approx(bowl(s["alpha"][9], s["beta"][0]))
    assert (centre.x, centre.y, centre.z) == ((0.0,), (0.0,), (2.0,))
    assert centre.marker.color == "#123456"
    log = surface_3d(entry(1, s), log=True)
    assert log.data[1].z == (pytest.approx(math.log10(2.0)),)
    assert log.layout.scene.zaxis.title.text == "log₁₀ loss"


@pytest.mark.parametrize("e", [None, entry(1, summary_1d()), entry(1, {"mode": "2d"})])
def test_surface_3d_without_a_2d_grid_says_so(e):
    assert not surface_3d(e).data


# ----------------------------------------------------------------------------------------- 1D


def test_curves_1d_overlays_one_line_per_checkpoint_in_its_color():
    entries = [entry(2, summary_1d(4.0)), entry(5, summary_1d(10.0)), entry(6, summary_2d())]
    colors = checkpoint_colors([2, 5, 6])
    fig = curves_1d(entries, colors)
    assert [t.name for t in fig.data] == ["c2 (#2)", "c5 (#5)"]
    assert [t.line.color for t in fig.data] == [colors[2], colors[5]]
    alpha = np.asarray(fig.data[1].x)
    assert np.asarray(fig.data[1].y) == pytest.approx(1.0 + 5.0 * alpha**2)
    assert "curvature at 0: 10" in fig.data[1].hovertemplate
    assert fig.layout.shapes[0].x0 == 0.0  # the centre line


def test_curves_1d_plots_accuracy_as_percent_and_log_loss():
    entries = [entry(2, summary_1d())]
    assert curves_1d(entries, metric="accuracy").layout.yaxis.tickformat == ".0%"
    assert curves_1d(entries, log=True).layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="metric"):
        curves_1d(entries, metric="ece")


def test_curves_1d_keeps_gaps_and_skips_mismatched_lengths():
    gappy, short = summary_1d(), summary_1d()
    gappy["loss"][3] = None
    short["loss"] = short["loss"][:-1]
    fig = curves_1d([entry(1, gappy), entry(2, short)])
    (trace,) = fig.data
    assert trace.y[3] is None and trace.connectgaps is False
    assert not curves_1d([entry(2, short)]).data


# ------------------------------------------------------------------------------ interpolation


def stars(fig, col=1):
    axis = "x" if col == 1 else "x2"
    return [t for t in fig.data if t.marker.symbol == "star" and t.xaxis == axis]


def test_interpolation_marks_the_barrier_at_the_argmax_and_names_the_endpoints():
    fig = interpolation_curves([entry(2, summary_interpolation(target=1))], names={1: "dense", 2: "c2"})
    barrier = path_loss(0.625) - 1.5  # 1.0625
    (star,) = stars(fig)
    assert star.x == (0.625,) and star.y == (pytest.approx(path_loss(0.625)),)
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["c2 (#2) → dense (#1) · barrier 1.06"]
    notes = [a for a in fig.layout.annotations if a.text.startswith("B = ")]
    assert [(a.x, a.text) for a in notes] == [(0.625, "B = 1.06"), (0.5, "B = 0.3")]
    assert notes[0].y == pytest.approx(barrier + 1.5)
    ends = [t for t in fig.data if t.mode == "markers+text" and t.xaxis == "x"]
    assert [list(t.text) for t in ends] == [["c2 (#2)", "dense (#1)"]]
    assert list(fig.layout.xaxis.ticktext) == ["checkpoint", "0.5", "dense (#1)"]


def test_interpolation_names_a_shared_target_once():
    entries = [entry(2, summary_interpolation(target=1)), entry(3, summary_interpolation(target=1))]
    fig = interpolation_curves(entries, names={1: "dense"})
    ends = [t for t in fig.data if t.mode == "markers+text"]
    assert [list(t.text) for t in ends] == [["c2 (#2)", "dense (#1)"], ["c3 (#3)", ""]]
    assert [list(t.customdata) for t in ends][1] == ["c3 (#3)", "dense (#1)"]  # hover still names both


def test_interpolation_error_panel_marks_its_own_argmax():
    fig = interpolation_curves([entry(2, summary_interpolation())])
    (star,) = stars(fig, col=2)
    assert star.x == (0.5,) and star.y == (pytest.approx(0.4),)
    assert fig.layout.yaxis2.tickformat == ".0%"


def test_interpolation_computes_the_barrier_when_the_summary_lacks_it():
    fig = interpolation_curves([entry(3, summary_interpolation(target=7, barrier=False))])
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["c3 (#3) → #7 · barrier 1.06"]  # an unnamed target shows its id


def test_interpolation_annotates_only_a_few_curves_but_stars_all():
    entries = [entry(i, summary_interpolation(height=1 + i / 10)) for i in range(ANNOTATE_MAX + 1)]
    fig = interpolation_curves(entries)
    assert not [a for a in fig.layout.annotations if a.text.startswith("B = ")]
    assert len(stars(fig)) == ANNOTATE_MAX + 1
    assert all(t.mode == "markers" for t in fig.data if t.name.endswith("endpoints"))


def test_interpolation_escapes_names_and_survives_none_values():
    s = summary_interpolation(target=1)
    s["loss"][4] = None
    s["accuracy"] = None
    fig = interpolation_curves([entry(2, s, name=HOSTILE)], names={1: HOSTILE})
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["&lt;b&gt;x&lt;/b&gt; (#2) → &lt;b&gt;x&lt;/b&gt; (#1) · barrier 1.06"]
    assert not stars(fig, col=2)
    broken = dict(s, loss=[None] * 9)
    assert not interpolation_curves([entry(2, broken)]).data
    assert not interpolation_curves(None).data


# ---------------------------------------------------------------------------------- sharpness


def test_sharpness_plots_curvature_against_sparsity_by_slice():
    checkpoints = {1: {"sparsity": 0.0}, 2: {"sparsity": 0.9}, 3: {"sparsity": 0.5}}
    s2 = summary_2d()
    s2["curvature"] = [6.0, None]
    entries = [entry(2, summary_1d(12.0)), entry(1, summary_1d(4.0)), entry(3, s2)]
    fig = sharpness_vs_sparsity(entries, checkpoints)
    by_name = {t.name: t for t in fig.data if t.showlegend is False}
    assert set(by_name) == {"1D", "2D α"}
    assert [t.name for t in fig.data if t.showlegend is not False] == ["1D", "2D α"]  # gray keys
    assert by_name["1D"].x == (0.0, 0.9) and by_name["1D"].y == (4.0, 12.0)  # sorted by sparsity
    assert by_name["2D α"].x == (0.5,) and by_name["2D α"].y == (6.0,)
    assert fig.layout.xaxis.tickformat == ".0%"


def test_sharpness_without_curvature_says_so():
    no_curvature = dict(summary_1d(), curvature=None)
    fig = sharpness_vs_sparsity([entry(1, no_curvature), entry(9, summary_1d())], {1: {"sparsity": 0.1}})
    assert not fig.data


# ------------------------------------------------------------------------------------- the tab


def walk(node):
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from walk(child)
    elif isinstance(node, Component):
        yield node
        yield from walk(getattr(node, "children", None))


def ids_in(tree) -> set:
    return {getattr(c, "id", None) for c in walk(tree)} - {None}


def words(tree) -> str:
    """The text shown: strings among the components' children, and the cells of grids."""
    parts = []
    for comp in walk(tree):
        parts += [c for c in _children(comp) if isinstance(c, str)]
        parts += [v for row in getattr(comp, "rowData", None) or [] for k, v in row.items() if k[0] != "_"]
    return " ".join(parts)


def _children(comp):
    children = getattr(comp, "children", None)
    return children if isinstance(children, list) else [children]


def ckpts(*ids):
    return {i: {"id": i, "name": f"c{i}", "sparsity": i / 10, "family": "f"} for i in ids}


def test_landscape_view_shows_a_section_per_mode_present():
    summaries = {1: summary_2d(), 2: summary_1d(), 3: summary_interpolation(target=1)}
    view = landscape_view([1, 2, 3, 42], ckpts(1, 2, 3, 4), summaries, {})
    found = ids_in(view)
    assert {CONTOURS_ID, LOG_ID, SURFACE_ID, "fig-landscape-1d"} <= found
    assert "fig-landscape-surface" not in found  # drawn on demand
    assert "Pick a checkpoint above to draw its surface in 3D." in words(view)
    assert {"fig-landscape-1d-accuracy", "fig-landscape-sharpness", "fig-landscape-interpolation"} <= found
    assert {"landscape-summary"} <= found and "compare-queue" not in found
    text = words(view)
    assert "Unknown checkpoint ids ignored: 42" in text
    assert "c1 (#1)" in text and "2D (random, filter-normalized, masked, seed 0)" in text
    assert "6 / 1" in text  # both 2D curvatures
    assert "1.062" in text and "30.00%" in text  # loss and error barriers of #3 -> #1


def test_landscape_view_lists_missing_results_and_draws_only_what_exists():
    view = landscape_view([1, 2], ckpts(1, 2), {2: summary_1d()}, {})
    found = ids_in(view)
    assert "compare-queue" in found and "Missing landscape results" in words(view)
    assert "fig-landscape-1d" in found and CONTOURS_ID not in found
    assert "fig-landscape-interpolation" not in found
    empty = landscape_view([1], ckpts(1), {}, {})
    assert ids_in(empty) == {"compare-queue"}


def test_landscape_view_offers_the_3d_surface_of_each_2d_result():
    view = landscape_view([1, 2, 3], ckpts(1, 2, 3), {1: summary_2d(), 3: summary_2d(2.0)}, {})
    (dropdown,) = [c for c in walk(view) if isinstance(c, dcc.Dropdown)]
    assert [o["value"] for o in dropdown.options] == [1, 3] and dropdown.value is None


def test_landscape_view_sets_the_log_switch_and_3d_checkpoint_from_its_settings():
    summaries = {1: summary_2d(), 3: summary_2d(2.0)}
    view = landscape_view([1, 3], ckpts(1, 3), summaries, {}, settings={"log": True, "surface": 3})
    (dropdown,) = [c for c in walk(view) if isinstance(c, dcc.Dropdown)]
    (switch,) = [c for c in walk(view) if getattr(c, "id", None) == LOG_ID]
    assert dropdown.value == 3 and switch.value == ["log"]
    grid, (surface,) = surface_figures([1, 3], ckpts(1, 3), summaries, log=True, surface_id=3)
    drawn = {getattr(c, "id", None): c for c in walk(view)}
    assert drawn[CONTOURS_ID].figure == grid
    assert drawn["fig-landscape-surface"].figure == graph_of(surface).figure


def test_landscape_view_ignores_a_3d_checkpoint_without_a_2d_result():
    summaries = {1: summary_2d(), 2: summary_1d()}
    view = landscape_view([1, 2], ckpts(1, 2), summaries, {}, settings={"surface": 2, "log": False})
    (dropdown,) = [c for c in walk(view) if isinstance(c, dcc.Dropdown)]
    (switch,) = [c for c in walk(view) if getattr(c, "id", None) == LOG_ID]
    assert dropdown.value is None and switch.value == []


def graph_of(box):
    """The figure's ``dcc.Graph`` inside what :func:`surface_box` returned."""
    (found,) = [c for c in walk(box) if isinstance(c, dcc.Graph)]
    return found


def test_surface_switches_redraw_in_log_scale_for_the_chosen_checkpoint():
    summaries = {1: summary_2d(), 3: summary_2d(2.0)}
    grid, (surface,) = surface_figures([1, 3], ckpts(1, 3), summaries, log=True, surface_id=3)
    assert grid.layout.coloraxis.colorbar.title.text == "log₁₀ loss"
    assert graph_of(surface).figure.data[1].z == (pytest.approx(math.log10(4.0)),)
    _, unknown = surface_figures([1, 3], ckpts(1, 3), summaries, log=False, surface_id=99)
    assert "Pick a checkpoint" in words(unknown)
    assert not [c for c in walk(unknown) if isinstance(c, dcc.Graph)]
    none_grid, none_surface = surface_figures([1], ckpts(1), {}, log=False, surface_id=None)
    assert not none_grid.data and "Pick a checkpoint" in words(none_surface)


def test_per_mode_accepts_one_summary_or_one_per_mode():
    from dashboard.components.landscape import per_mode

    one = {"mode": "2d", "loss": []}
    many = {"2d": one, "interpolation": {"mode": "interpolation"}}
    assert per_mode({1: one, 2: many, 3: None}) == {1: {"2d": one}, 2: many}
