"""The static HTML report of a comparison, built from real results in a temporary SQLite database."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from fastapi.testclient import TestClient
from plotly.offline import get_plotlyjs

from dashboard import data
from dashboard.downloads import figure_csv
from dashboard.report import blocks, build_report, grid_html, static_html
from server.app import create_app
from tests.conftest import state_dict_bytes
from workers.runner import Worker

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def upload(client, seed: int, name: str) -> dict:
    resp = client.post(
        "/api/checkpoints",
        data={"architecture": "small_cnn", "name": name, "family": "cnn"},
        files={"file": ("w.pt", state_dict_bytes(seed=seed, zero_fraction=0.5 if seed else 0.0))},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def plotted_figures(document: str) -> list[dict]:
    """The traces of every ``Plotly.newPlot`` call of the report's body, as figure dicts."""
    body = document.split("</head>", 1)[1]
    decoder = json.JSONDecoder()
    calls = re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', body)
    return [{"data": decoder.raw_decode(body, call.end())[0]} for call in calls]


@pytest.fixture
def evaluated(client, settings):
    """Two checkpoints (one with a hostile name) with evaluate results on digits."""
    ds = data.add_builtin_dataset("digits")
    ids = [upload(client, 0, "dense")["id"], upload(client, 1, HOSTILE)["id"]]
    worker = Worker(settings)
    for job in data.submit_jobs("evaluate", ids, ds["id"]):
        assert worker.run_one(job["id"]) == "succeeded"
    return ids, ds["id"]


def test_report_is_a_self_contained_download_with_the_results_and_escaped_names(client, evaluated):
    # Given evaluated checkpoints, when the report is downloaded
    ids, dataset_id = evaluated
    resp = client.get(f"/compare/report.html?ids={ids[0]},{ids[1]}&dataset={dataset_id}")

    # Then it is an HTML attachment
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["content-disposition"].startswith("attachment;")
    document = resp.text
    # with plotly.js inlined once and nothing fetched from the network
    assert document.count(get_plotlyjs()) == 1
    assert "<script src" not in document and "<link" not in document
    # with the hostile name as text only
    assert HOSTILE not in document and ESCAPED in document
    # and the figures drawn from the stored results: each checkpoint's accuracy bar
    results = data.results("evaluate", ids, dataset_id)
    rows = [r for fig in plotted_figures(document) for r in csv.DictReader(io.StringIO(figure_csv(fig)))]
    bars = {(r["trace"], r["x"]): r["y"] for r in rows if "x" in r}
    assert float(bars[(f"{HOSTILE} (#{ids[1]})", "accuracy")]) == results[ids[1]]["accuracy"]
    assert float(bars[(f"dense (#{ids[0]})", "accuracy")]) == results[ids[0]]["accuracy"]
    # and one section per tab, the overview's summary table first
    assert document.index("<h2>Overview</h2>") < document.index("<h2>Evaluate</h2>")
    overview = document[document.index("<h2>Overview</h2>") : document.index("<h2>Evaluate</h2>")]
    assert "<table" in overview and f"dense (#{ids[0]})" in overview
    assert f"{results[ids[0]]['accuracy']:.2%}" in overview


def test_report_of_results_not_yet_run_says_so(client):
    ckpt = upload(client, 0, "lonely")
    document = build_report([ckpt["id"]], None)
    assert "No hessian results for this selection yet." in document
    assert len(plotted_figures(document)) == 1  # the layer sparsity, always known


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("?ids=x,0", 400),
        ("?ids=1&dataset=zz", 400),
        ("?ids=999", 404),
        ("?ids=999&dataset=1", 404),
    ],
)
def test_report_refuses_bad_or_unknown_ids_with_a_plain_message(client, query, status):
    resp = client.get("/compare/report.html" + query)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("text/plain") and resp.text.strip()


def test_static_html_escapes_text_and_attributes_and_leaves_controls_out():
    from dash import dcc, html

    tree = html.Div(
        [
            html.Span(HOSTILE, className='a" onclick="x', style={"backgroundColor": "red"}),
            html.Button("Queue"),
            dcc.Dropdown(options=["a"]),
        ]
    )
    out = static_html(tree)
    span = '<span class="a&quot; onclick=&quot;x" style="background-color: red">'
    assert out == f"<div>{span}{ESCAPED}</span></div>"
    assert [kind for kind, _ in blocks([html.H3("empty"), tree])] == ["heading"]


def test_grid_html_writes_groups_formatted_values_and_escaped_text():
    import dash_ag_grid as dag

    grid = dag.AgGrid(
        columnDefs=[
            {"headerName": "checkpoint", "children": [{"field": "name", "headerName": "checkpoint"}]},
            {
                "headerName": "evaluate",
                "children": [
                    {"field": "acc", "valueFormatter": {"function": "d3.format('.2%')(params.value)"}},
                    {"field": "loss"},
                ],
            },
        ],
        rowData=[{"name": HOSTILE, "acc": 0.98765, "loss": None}],
    )
    out = grid_html(grid)
    assert '<th colspan="1">checkpoint</th><th colspan="2">evaluate</th>' in out
    assert f"<td>{ESCAPED}</td><td>98.77%</td><td>—</td>" in out
