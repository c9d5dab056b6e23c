"""Figure data as CSV: every trace kind the dashboard draws, numbers that round-trip, text that stays text."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from dashboard.app import create_dash
from dashboard.components.graph import graph
from dashboard.downloads import cell, figure_csv, register_download_callbacks, safe_name


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def as_browser_sends(fig: go.Figure) -> dict:
    """The figure as JSON, the way it reaches the server (numpy arrays as base64 typed arrays)."""
    return json.loads(fig.to_json())


def test_scatter_and_bar_give_one_row_per_point_with_their_text_and_customdata():
    fig = go.Figure(
        [
            go.Scatter(x=[1, 2, 3], y=[0.5, 0.25, 0.125], name="dense", text=["a", "b", "c"]),
            go.Bar(x=["cat", "dog"], y=[3, 4], name="pruned", customdata=[[7, "x"], [8, "y"]]),
        ]
    )
    rows = rows_of(figure_csv(as_browser_sends(fig)))
    assert list(rows[0]) == ["trace", "x", "y", "text", "customdata"]
    assert [(r["trace"], r["x"], r["y"], r["text"]) for r in rows[:3]] == [
        ("dense", "1", "0.5", "a"),
        ("dense", "2", "0.25", "b"),
        ("dense", "3", "0.125", "c"),
    ]
    assert [(r["x"], r["y"], json.loads(r["customdata"])) for r in rows[3:]] == [
        ("cat", "3", [7, "x"]),
        ("dog", "4", [8, "y"]),
    ]


def test_numpy_arrays_round_trip_at_full_precision():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(50), rng.standard_normal(50) * 1e-12
    sent = as_browser_sends(go.Figure(go.Scatter(x=x, y=y.astype(np.float32), mode="markers")))
    assert "bdata" in json.dumps(sent)  # plotly sends arrays base64-encoded; the CSV decodes them
    rows = rows_of(figure_csv(sent))
    assert [float(r["x"]) for r in rows] == x.tolist()
    assert [float(r["y"]) for r in rows] == y.astype(np.float32).astype(np.float64).tolist()
    assert all(r["trace"] == "trace 0" for r in rows)


def test_heatmap_gives_one_row_per_cell_with_its_axis_labels():
    z = np.arange(6, dtype=float).reshape(2, 3) / 7
    fig = go.Figure(go.Heatmap(z=z, x=["a", "b", "c"], y=["dense", "pruned"], name="accuracy"))
    rows = rows_of(figure_csv(as_browser_sends(fig)))
    assert list(rows[0]) == ["trace", "x", "y", "z"]
    assert len(rows) == 6
    cells = {(r["y"], r["x"]): float(r["z"]) for r in rows}
    assert cells[("pruned", "b")] == z[1, 1] and cells[("dense", "c")] == z[0, 2]


def test_surface_with_coordinate_grids_labels_each_cell_with_its_own_x_and_y():
    xs, ys = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(0, 2, 4))
    z = xs**2 + ys
    fig = go.Figure(go.Surface(x=xs, y=ys, z=z, name="loss"))
    rows = rows_of(figure_csv(as_browser_sends(fig)))
    assert len(rows) == 12
    for r in rows:
        assert float(r["z"]) == pytest.approx(float(r["x"]) ** 2 + float(r["y"]))


def test_small_multiples_name_their_subplot():
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Scatter(x=[1], y=[2], name="a"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1], y=[3], name="a"), row=1, col=2)
    rows = rows_of(figure_csv(as_browser_sends(fig)))
    assert [(r["trace"], r["subplot"], r["y"]) for r in rows] == [("a", "xy", "2"), ("a", "x2y2", "3")]


@pytest.mark.parametrize("text", ["=1+2", "+SUM(A1)", "-2+3", "@cmd", '=HYPERLINK("http://x")', "\t=1"])
def test_formula_like_text_gets_a_leading_apostrophe(text):
    fig = {"data": [{"type": "bar", "name": text, "x": [text], "y": [1]}]}
    row = rows_of(figure_csv(fig))[0]
    assert row["trace"] == row["x"] == "'" + text


@pytest.mark.parametrize("value", ["-1.5", "+2", "-3e-07", "0.25"])
def test_plain_numbers_are_not_guarded(value):
    assert cell(value) == value
    assert cell(float(value)) == repr(float(value))


def test_names_with_commas_quotes_and_escaped_markup_come_out_as_typed():
    hostile = 'x, "y"\n<script>alert(1)</script>'
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as figures hold it
    text = figure_csv({"data": [{"type": "scatter", "name": escaped, "x": [1], "y": [2]}]})
    assert rows_of(text)[0]["trace"] == hostile


def test_malformed_traces_are_skipped_not_raised():
    fig = {"data": [{"x": {"dtype": "f8", "bdata": "!!"}}, "junk", {"y": [1, None, float("nan")]}]}
    rows = rows_of(figure_csv(fig))
    assert [r["y"] for r in rows] == ["1", "", ""]
    assert figure_csv({}) == "trace\r\n" and figure_csv({"data": "x"}) == "trace\r\n"


def test_figure_objects_are_accepted_as_well_as_dicts():
    fig = go.Figure(go.Scatter(x=[1.0], y=[2.0], name="n"))
    assert figure_csv(fig) == figure_csv(as_browser_sends(fig))


def test_safe_name_keeps_file_names_plain():
    assert safe_name("robustness-heatmap") == "robustness-heatmap"
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name(None) == safe_name("") == "figure"


def test_graph_keeps_its_id_on_the_dcc_graph_and_adds_three_buttons():
    box = graph(go.Figure(), name="accuracy", id="fig-accuracy")
    plot, buttons = box.children
    assert plot.id == "fig-accuracy"
    assert [(b.children, getattr(b, "data-ps-download")) for b in buttons.children] == [
        ("PNG", "png"),
        ("SVG", "svg"),
        ("CSV", "csv"),
    ]


@pytest.fixture
def csv_client(settings):
    app = create_dash(settings)
    register_download_callbacks(app)  # a second call (compare registers it too) changes nothing
    return app.server.test_client()


def test_the_csv_endpoint_answers_an_attachment(csv_client):
    fig = as_browser_sends(go.Figure(go.Bar(x=["a"], y=[0.1], name="=cmd")))
    resp = csv_client.post("/_prunescope/figure.csv", json={"name": "acc/../x", "figure": fig})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="prunescope-acc-x.csv"'
    assert resp.get_data(as_text=True) == "trace,x,y\r\n'=cmd,a,0.1\r\n"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"figure": 3}', b"{}"])
def test_the_csv_endpoint_refuses_bad_bodies_with_a_400(csv_client, body):
    resp = csv_client.post("/_prunescope/figure.csv", data=body, content_type="application/json")
    assert resp.status_code == 400
