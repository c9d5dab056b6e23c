"""Component trees built from plain dicts: text stays text, rows and buttons match the data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dash import html
from dash.development.base_component import Component

from dashboard.components.checkpoints import checkpoint_table
from dashboard.components.compare import evaluate_view
from dashboard.components.jobs import CANCEL_TYPE, job_table
from dashboard.tree import family_order

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
HOSTILE = '<img src=x onerror="alert(1)">'
NOW = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def walk(node):
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from walk(child)
    elif isinstance(node, Component):
        yield node
        yield from walk(getattr(node, "children", None))


def texts(node) -> list[str]:
    out = []
    for comp in walk(node):
        children = getattr(comp, "children", None)
        items = children if isinstance(children, list) else [children]
        out += [c for c in items if isinstance(c, str)]
    return out


def ckpt(id, name="c", parent_id=None, family=None):
    return {
        "id": id,
        "name": name,
        "parent_id": parent_id,
        "family": family,
        "architecture": "small_cnn",
        "parameter_count": 24058,
        "sparsity": 0.5,
        "pruning_method": None,
        "created_at": NOW,
    }


def job(id, status, error=None):
    return {
        "id": id,
        "analysis": "evaluate",
        "checkpoint_id": 1,
        "checkpoint_name": HOSTILE,
        "dataset_id": 1,
        "dataset_name": "digits",
        "status": status,
        "progress": 0.4,
        "message": "running",
        "error": error,
        "attempts": 1,
        "max_attempts": 3,
        "worker_id": "w",
        "created_at": NOW,
    }


def test_family_order_puts_children_under_their_parent():
    rows = [
        ckpt(1),
        ckpt(2, parent_id=1),
        ckpt(3),
        ckpt(4, parent_id=2),
        ckpt(5, parent_id=1),
        ckpt(6, parent_id=99),
    ]
    order = [(r["id"], depth) for r, depth in family_order(rows)]
    assert order == [(1, 0), (2, 1), (4, 2), (5, 1), (3, 0), (6, 0)]


def test_family_order_shows_each_row_of_a_cycle_once():
    rows = [ckpt(1, parent_id=2), ckpt(2, parent_id=1)]
    assert sorted(r["id"] for r, _ in family_order(rows)) == [1, 2]


def test_checkpoint_table_renders_names_as_text_and_ticks_the_selection():
    rows = [ckpt(1, HOSTILE, family=HOSTILE), ckpt(2, "child", parent_id=1)]
    tree = checkpoint_table(rows, selected={2})
    assert HOSTILE in texts(tree)
    assert "child" in texts(tree)
    boxes = {c.id["index"]: c.value for c in walk(tree) if isinstance(getattr(c, "id", None), dict)}
    assert boxes == {1: [], 2: [2]}


def test_job_table_offers_cancel_only_for_unfinished_jobs():
    tree = job_table(
        [job(1, "queued"), job(2, "running"), job(3, "failed", error=HOSTILE), job(4, "succeeded")]
    )
    buttons = [
        c.id["index"]
        for c in walk(tree)
        if isinstance(getattr(c, "id", None), dict) and c.id["type"] == CANCEL_TYPE
    ]
    assert buttons == [1, 2]
    assert HOSTILE in texts(tree)
    progress = [c for c in walk(tree) if isinstance(c, html.Progress)]
    assert [p.value for p in progress] == ["40", "40", "40", "100"]


def test_evaluate_view_lists_missing_results_and_ignores_unknown_ids():
    summary = {
        "loss": 1.0,
        "accuracy": 0.9,
        "n_samples": 10,
        "num_classes": 2,
        "per_class_accuracy": [1.0, 0.8],
        "confusion": [[5, 0], [1, 4]],
        "ece": 0.05,
    }
    checkpoints = {1: ckpt(1, "dense"), 2: ckpt(2, "pruned")}
    view = evaluate_view([1, 2, 42], checkpoints, {1: summary}, {2: job(7, "running")})
    words = " ".join(texts(view))
    assert "Unknown checkpoint ids ignored: 42" in words
    assert "Missing evaluate results" in words
    ids = {getattr(c, "id", None) for c in walk(view)}
    assert {"fig-accuracy", "fig-per-class", "fig-confusion", "compare-queue", "compare-summary"} <= ids


def test_evaluate_view_without_results_shows_no_figures():
    view = evaluate_view([1], {1: ckpt(1)}, {}, {})
    ids = {getattr(c, "id", None) for c in walk(view)}
    assert "fig-confusion" not in ids and "compare-queue" in ids


def test_dashboard_never_renders_raw_html():
    source = "\n".join(p.read_text() for p in DASHBOARD.rglob("*.py"))
    assert "dangerously_allow_html" not in source
    assert "dcc.Markdown" not in source
    script = (DASHBOARD / "assets" / "upload.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
