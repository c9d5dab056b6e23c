"""Building blocks of the compare page: the summary table, missing results, the evaluate view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dash_ag_grid as dag
from dash import html

from dashboard.components.format import count, number, percent
from dashboard.components.graph import graph
from dashboard.components.progress import status_badge
from dashboard.components.table import Column, grid
from dashboard.figures import evaluate as fig_evaluate
from dashboard.figures.common import CheckpointSummary, checkpoint_colors

SUMMARY_COLUMNS = (
    Column("name", "checkpoint"),
    Column("sparsity", "sparsity", numeric=True),
    Column("accuracy", "accuracy", numeric=True),
    Column("loss", "loss", numeric=True),
    Column("ece", "ECE", numeric=True),
    Column("samples", "samples", numeric=True),
)


def swatch(color: str) -> html.Span:
    return html.Span(className="ps-swatch", style={"backgroundColor": color})


def grid_name(checkpoint_id: int, name: str, color: str) -> dict:
    """A summary grid row's checkpoint cell (:func:`dashboard.components.table.grid`): its name, shown as
    text, and its color (the same color as in every figure)."""
    return {"name": f"{name} (#{checkpoint_id})", "_color": color}


def name_cell(checkpoint_id: int, name: str, color: str) -> html.Span:
    """A table cell naming a checkpoint, with its color swatch (the same color as in every figure)."""
    return html.Span([swatch(color), f"{name} (#{checkpoint_id})"])


def unknown_note(ids: Sequence[int], checkpoints: Mapping[int, dict]) -> list[html.P]:
    """A note on the selected ids that name no checkpoint (none when all are known)."""
    unknown = [cid for cid in ids if cid not in checkpoints]
    if not unknown:
        return []
    return [html.P("Unknown checkpoint ids ignored: " + ", ".join(map(str, unknown)), className="ps-note")]


def summary_table(
    ids: Sequence[int], checkpoints: dict[int, dict], summaries: dict[int, dict], colors: dict[int, str]
) -> dag.AgGrid | html.P:
    rows = []
    for cid in ids:
        if cid not in summaries:
            continue
        s, c = summaries[cid], checkpoints[cid]
        rows.append(
            {
                **grid_name(cid, c["name"], colors[cid]),
                "sparsity": percent(c["sparsity"]),
                "accuracy": percent(s.get("accuracy"), 2),
                "loss": number(s.get("loss")),
                "ece": number(s.get("ece"), 3),
                "samples": count(s.get("n_samples")),
            }
        )
    return grid(SUMMARY_COLUMNS, rows, empty="No results yet.", id="compare-summary")


def missing_results(
    missing: Sequence[int], checkpoints: dict[int, dict], jobs: dict[int, dict], analysis: str
) -> html.Section | None:
    if not missing:
        return None
    items = []
    for cid in missing:
        job = jobs.get(cid)
        state = [" ", status_badge(job["status"]), f" job #{job['id']}"] if job else [" no job yet"]
        if job and job.get("error"):
            state += [": ", html.Span(job["error"], className="ps-error")]
        items.append(html.Li([f"{checkpoints[cid]['name']} (#{cid}):", *state]))
    return html.Section(
        [
            html.H3(f"Missing {analysis} results"),
            html.Ul(items),
            html.Button(
                f"Queue {analysis} for the missing ones",
                id="compare-queue",
                n_clicks=0,
                className="ps-button",
            ),
        ],
        className="ps-panel ps-missing",
    )


def evaluate_view(
    ids: Sequence[int],
    checkpoints: dict[int, dict],
    summaries: dict[int, dict],
    jobs: dict[int, dict],
    *,
    settings: Mapping | None = None,  # the compare page's URL settings: this tab has none
    dataset_id: int | None = None,  # read by the robustness tab only
) -> list:
    """Everything the evaluate tab shows for the checkpoints ``ids`` (unknown ids are skipped)."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    entries = [
        CheckpointSummary(cid, checkpoints[cid]["name"], summaries[cid]) for cid in known if cid in summaries
    ]
    missing = [cid for cid in known if cid not in summaries]
    out: list = unknown_note(ids, checkpoints)
    out.append(missing_results(missing, checkpoints, jobs, "evaluate"))
    if entries:
        out += [
            summary_table(known, checkpoints, summaries, colors),
            html.Div(
                [
                    graph(fig_evaluate.accuracy_bars(entries, colors), name="accuracy", id="fig-accuracy"),
                    graph(
                        fig_evaluate.per_class_accuracy(entries, colors), name="per-class", id="fig-per-class"
                    ),
                ],
                className="ps-grid2",
            ),
            graph(fig_evaluate.confusion_grid(entries), name="confusion", id="fig-confusion"),
        ]
    return [o for o in out if o is not None]
