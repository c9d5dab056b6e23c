"""Figure functions and URL-state parsing, without a browser."""

from __future__ import annotations

import pytest

from dashboard.figures.common import PALETTE, CheckpointSummary, checkpoint_colors, plain
from dashboard.figures.evaluate import accuracy_bars, confusion_grid, per_class_accuracy
from dashboard.state import (
    SETTINGS,
    compare_search,
    parse_id,
    parse_ids,
    parse_index,
    parse_settings,
    parse_tab,
    pick,
    settings_query,
)


def summary(confusion, per_class=None, accuracy=0.5, ece=0.1):
    return {
        "loss": 1.0,
        "accuracy": accuracy,
        "n_samples": sum(map(sum, confusion)),
        "num_classes": len(confusion),
        "per_class_accuracy": per_class or [0.5] * len(confusion),
        "confusion": confusion,
        "ece": ece,
    }


@pytest.fixture
def entries():
    return [
        CheckpointSummary(3, "dense", summary([[8, 2], [1, 9]])),
        CheckpointSummary(7, "pruned 90%", summary([[40, 0], [0, 60]], per_class=[1.0, None], accuracy=1.0)),
        CheckpointSummary(5, "pruned 50%", summary([[0, 0], [3, 1]], per_class=[None, 0.25])),
    ]


def heatmaps(fig):
    return [t for t in fig.data if t.type == "heatmap"]


@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_grid_shares_one_color_scale_across_subplots(entries, normalize):
    fig = confusion_grid(entries, normalize=normalize)
    maps = heatmaps(fig)
    assert len(maps) == len(entries)
    assert {(t.zmin, t.zmax) for t in maps} == {(0.0, 1.0 if normalize else 60)}
    assert {t.coloraxis for t in maps} == {"coloraxis"}
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (maps[0].zmin, maps[0].zmax)
    assert all(t.showscale is None for t in maps)  # the only colorbar is the shared coloraxis one


def test_confusion_grid_normalizes_rows_and_leaves_empty_rows_blank(entries):
    z = heatmaps(confusion_grid(entries))[2].z
    assert list(z[0]) == [None, None]
    assert list(z[1]) == pytest.approx([0.75, 0.25])


def test_confusion_grid_lays_out_small_multiples_in_rows(entries):
    fig = confusion_grid(entries * 3, columns=4)  # 9 matrices -> 3 rows of 4
    anchors = {(t.xaxis, t.yaxis) for t in heatmaps(fig)}
    assert len(anchors) == 9
    assert fig.layout.height > confusion_grid(entries, columns=4).layout.height


def test_each_checkpoint_keeps_its_color_across_figures(entries):
    colors = checkpoint_colors(e.checkpoint_id for e in entries)
    bars = {t.name: t.marker.color for t in accuracy_bars(entries, colors).data}
    lines = {t.name: t.line.color for t in per_class_accuracy(entries, colors).data}
    assert bars == lines
    assert bars == {e.label: colors[e.checkpoint_id] for e in entries}
    assert len(set(bars.values())) == len(entries)


def test_checkpoint_colors_depend_on_the_ids_not_their_order():
    assert checkpoint_colors([9, 2, 4]) == checkpoint_colors([4, 9, 2, 2])
    assert checkpoint_colors([2, 4, 9])[2] == PALETTE[0]


def test_checkpoint_colors_stay_distinct_beyond_the_palette():
    colors = checkpoint_colors(range(1, 201))
    assert len(set(colors.values())) == 200
    assert all(c.startswith("#") and len(c) == 7 for c in colors.values())


def test_absent_classes_become_gaps_not_zeros(entries):
    line = per_class_accuracy(entries).data[1]
    assert list(line.y) == [1.0, None]
    assert line.connectgaps is False


def test_missing_or_non_finite_metrics_do_not_break_figures():
    odd = CheckpointSummary(
        1, "odd", {"accuracy": None, "ece": float("nan"), "confusion": [], "per_class_accuracy": None}
    )
    assert list(accuracy_bars([odd]).data[0].y) == [None, None]
    assert list(per_class_accuracy([odd]).data[0].y) == []
    assert len(heatmaps(confusion_grid([odd]))) == 1


def test_no_results_give_a_placeholder_figure():
    for make in (accuracy_bars, per_class_accuracy, confusion_grid):
        fig = make([])
        assert not fig.data
        assert "no evaluate results" in fig.layout.annotations[0].text


def test_names_are_escaped_for_plotly_text():
    entry = CheckpointSummary(1, '<a href="javascript:alert(1)">x</a> & <b>', summary([[1]]))
    fig = confusion_grid([entry])
    title = fig.layout.annotations[0].text
    assert "<" not in title and ">" not in title
    assert title == plain(entry.name + " (#1)")
    assert "<a" not in accuracy_bars([entry]).data[0].name
    assert "<a" not in accuracy_bars([entry]).data[0].hovertemplate


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,2,3", [1, 2, 3]),
        ("1,2,x", [1, 2]),
        (" 3 , 1,,3,0,-4,2.5,1e3,٣", [3, 1]),
        ("", []),
        (None, []),
        (["1,2", "2,4"], [1, 2, 4]),
        ("9" * 40, []),
    ],
)
def test_parse_ids_keeps_positive_integers_and_drops_junk(raw, expected):
    assert parse_ids(raw) == expected


def test_parse_ids_caps_the_selection():
    assert len(parse_ids(",".join(map(str, range(1, 1000))))) == 200


@pytest.mark.parametrize(
    ("raw", "expected"), [("4", 4), ("0", None), ("x", None), (None, None), (True, None), (7, 7)]
)
def test_parse_id(raw, expected):
    assert parse_id(raw) == expected


def test_parse_tab_falls_back_to_the_default():
    assert parse_tab("evaluate") == "evaluate"
    assert parse_tab("<script>") == "evaluate"
    assert parse_tab(None) == "evaluate"


def test_compare_search_round_trips_through_the_parsers():
    search = compare_search([3, 1, 3], 2, "evaluate")
    assert search == "?ids=3,1&dataset=2&tab=evaluate"
    assert compare_search([]) == ""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"severity": "3"}, {"severity": 3}),
        ({"severity": "mean"}, {"severity": "mean"}),
        ({"severity": "6"}, {}),
        ({"severity": "0"}, {}),
        ({"severity": "3.0"}, {}),
        ({"condition": "gaussian_noise/3"}, {"condition": "gaussian_noise/3"}),
        ({"condition": "clean"}, {"condition": "clean"}),
        ({"condition": "gaussian_noise/9"}, {}),
        ({"condition": "<script>/3"}, {}),
        ({"condition": "gaussian_noise"}, {}),
        ({"quantity": "angle"}, {"quantity": "angle"}),
        ({"quantity": "weights"}, {}),
        ({"a": "2", "b": "5", "surface": "4"}, {"a": 2, "b": 5, "surface": 4}),
        ({"a": "0", "b": "-5", "surface": "x"}, {}),
        ({"sample": "0"}, {"sample": 0}),
        ({"sample": "17"}, {"sample": 17}),
        ({"sample": "-1"}, {}),
        ({"sample": "1e3"}, {}),
        ({"sample": "9" * 30}, {}),
        ({"log": "1"}, {"log": True}),
        ({"log": "true"}, {"log": True}),
        ({"log": "0"}, {"log": False}),
        ({"log": "maybe"}, {}),
        ({"mode": "difference"}, {"mode": "difference"}),
        ({"mode": "absolute"}, {"mode": "absolute"}),
        ({"mode": "sideways"}, {}),
        ({"severity": ["2", "4"]}, {"severity": 2}),  # repeated: the first
        ({"severity": []}, {}),
        ({"ids": "1,2", "tab": "hessian", "junk": "x"}, {}),  # not settings
    ],
)
def test_parse_settings_keeps_values_of_each_controls_kind_and_drops_junk(query, expected):
    assert parse_settings(query) == expected


@pytest.mark.parametrize("query", [None, "severity=3", ["severity"], {"severity": None}, {"log": 3.5}])
def test_parse_settings_never_raises_on_odd_input(query):
    assert parse_settings(query) == {}


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("17", 17), (5, 5), (-1, None), (True, None)])
def test_parse_index(raw, expected):
    assert parse_index(raw) == expected


def test_pick_falls_back_when_the_setting_is_not_among_the_controls_options():
    assert pick({"a": 2}, "a", [1, 2, 3], 1) == 2
    assert pick({"a": 9}, "a", [1, 2, 3], 1) == 1
    assert pick({}, "a", [1, 2, 3], 1) == 1
    assert pick(None, "condition", ["clean"], "clean") == "clean"


def test_the_settings_round_trip_through_the_url_in_a_readable_order():
    settings = {
        "mode": "difference",
        "log": True,
        "sample": 17,
        "b": 5,
        "a": 2,
        "condition": "gaussian_noise/3",
        "severity": 3,
        "quantity": "angle",
        "surface": 2,
    }
    search = compare_search([2, 5], 1, "robustness", settings)
    assert search == (
        "?ids=2,5&dataset=1&tab=robustness&severity=3&condition=gaussian_noise/3&quantity=angle"
        "&a=2&b=5&sample=17&log=1&surface=2&mode=difference"
    )
    query = dict(part.split("=", 1) for part in search[1:].split("&"))
    assert parse_settings(query) == settings
    assert list(settings_query(settings)) == list(SETTINGS)


def test_compare_search_drops_settings_that_no_longer_apply():
    # checkpoints A, B and the 3D one outside the new selection are left out; the rest stay
    settings = {"a": 2, "b": 5, "surface": 9, "severity": 3, "log": False, "junk": 1, "sample": "x"}
    search = compare_search([5, 7], 1, "landscape", settings)
    assert search == "?ids=5,7&dataset=1&tab=landscape&severity=3&b=5"
    assert compare_search([], None, None, {"log": True}) == "?log=1"


def test_panel_grid_shares_one_axis_per_column_and_one_per_row():
    import plotly.graph_objects as go

    from dashboard.figures.common import panel_grid

    fig = go.Figure()
    refs = panel_grid(fig, ["a", "b", "c", "d", "e"], columns=3, x_title="α")
    assert [(r["xaxis"], r["yaxis"]) for r in refs] == [
        ("x", "y"), ("x2", "y"), ("x3", "y"), ("x", "y2"), ("x2", "y2")
    ]  # fmt: skip
    # each column's x axis (and its title) sits under its lowest panel: the third has none in row 2
    layout = fig.layout
    assert (layout.xaxis.anchor, layout.xaxis2.anchor, layout.xaxis3.anchor) == ("y2", "y2", "y")
    assert layout.xaxis3.title.text == "α" and layout.yaxis2.anchor == "x"
    assert (layout.xaxis2.matches, layout.yaxis2.matches, layout.xaxis.matches) == ("x", "y", None)
    columns = [layout[f"xaxis{i}" if i > 1 else "xaxis"].domain for i in (1, 2, 3)]
    assert all(a[1] < b[0] for a, b in zip(columns, columns[1:], strict=False))  # side by side
    assert layout.yaxis.domain[0] > layout.yaxis2.domain[1]  # row 1 above row 2
    titles = [(a.text, a.xref, a.yref) for a in layout.annotations]
    assert titles[1] == ("b", "x2 domain", "y domain") and titles[4] == ("e", "x2 domain", "y2 domain")


def test_summary_grid_keeps_cells_as_text_and_sorts_numbers_by_value():
    from dashboard.components.table import GRID_ROWS, Column, grid

    columns = (Column("name", "checkpoint"), Column("acc", "accuracy", numeric=True))
    hostile = "<img src=x onerror=alert(1)>"
    rows = [{"name": hostile, "_color": "#123456", "acc": "12.50%"}, {"name": "b", "acc": None}]
    g = grid(columns, rows, id="t")
    assert g.rowData == [
        {"name": hostile, "acc": "12.50%", "_color": "#123456"},
        {"name": "b", "acc": "", "_color": None},
    ]
    defs = {d["field"]: d for d in g.columnDefs}
    assert "comparator" in defs["acc"] and "comparator" not in defs["name"]
    assert "cellRenderer" not in defs["name"]  # AG Grid shows the value as text
    assert g.dashGridOptions["domLayout"] == "autoHeight"
    tall = grid(columns, rows * GRID_ROWS, id="t")
    assert tall.dashGridOptions["domLayout"] == "normal" and "height" in tall.style
    assert grid(columns, [], id="t", empty="none yet").children == "none yet"
