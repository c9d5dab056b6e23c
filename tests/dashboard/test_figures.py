"""Figure functions and URL-state parsing, without a browser."""

from __future__ import annotations

import pytest

from dashboard.figures.common import PALETTE, CheckpointSummary, checkpoint_colors, plain
from dashboard.figures.evaluate import accuracy_bars, confusion_grid, per_class_accuracy
from dashboard.state import compare_search, parse_id, parse_ids, parse_tab


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
