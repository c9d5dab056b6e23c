"""The compare page's Hessian tab: a summary table, eigenvalue and density figures, per-layer spectra."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dash import html
from dash_ag_grid import AgGrid

from dashboard.components.compare import grid_name, missing_results, unknown_note
from dashboard.components.format import count, number, percent
from dashboard.components.graph import graph
from dashboard.components.table import Column, grid
from dashboard.figures import hessian as fig_hessian
from dashboard.figures.common import CheckpointSummary, checkpoint_colors

ACTIVE = ("queued", "running")  # job statuses still to finish, as in dashboard.data
PER_LAYER_BUTTON = "hessian-per-layer"
PER_LAYER_PARAMS = {"per_layer": True}

SUMMARY_COLUMNS = (
    Column("name", "checkpoint"),
    Column("sparsity", "sparsity", numeric=True),
    Column("top", "top eigenvalue (± residual)", numeric=True),
    Column("trace", "trace ± s.e.", numeric=True),
    Column("outliers", "outliers / classes", numeric=True),
    Column("subspace", "subspace"),
    Column("hvps", "HVPs", numeric=True),
    Column("seconds", "seconds", numeric=True),
)


def _first(values: object) -> object:
    return values[0] if isinstance(values, list) and values else None


def _top_cell(s: dict) -> str:
    cell = number(_first(s.get("top_eigenvalues")))
    residual = _first(s.get("residuals"))
    if number(residual, 2) != "—":
        cell += f" ± {number(residual, 2)}"
    if s.get("converged") is False:
        cell += " (not converged)"
    return cell


def _trace_cell(s: dict) -> str:
    trace, stderr = number(s.get("trace")), number(s.get("trace_stderr"), 2)
    return trace if stderr == "—" or trace == "—" else f"{trace} ± {stderr}"


def _outliers_cell(s: dict) -> str:
    outliers = s.get("outliers")
    found = str(len(outliers)) if isinstance(outliers, list) else "—"
    return f"{found} / {count(s.get('num_classes'))}"


def _subspace_cell(s: dict) -> str:
    return f"{s.get('subspace') or '—'} ({count(s.get('n_params'))} params)"


def _seconds(value: object) -> str:
    return "—" if number(value) == "—" else f"{value:.1f}"


def hessian_table(
    ids: Sequence[int], checkpoints: dict[int, dict], summaries: dict[int, dict], colors: dict[int, str]
) -> AgGrid | html.P:
    rows = []
    for cid in ids:
        if cid not in summaries:
            continue
        s, c = summaries[cid], checkpoints[cid]
        rows.append(
            {
                **grid_name(cid, c["name"], colors[cid]),
                "sparsity": percent(c.get("sparsity")),
                "top": _top_cell(s),
                "trace": _trace_cell(s),
                "outliers": _outliers_cell(s),
                "subspace": _subspace_cell(s),
                "hvps": count(s.get("hvp_count")),
                "seconds": _seconds(s.get("seconds")),
            }
        )
    return grid(SUMMARY_COLUMNS, rows, empty="No results yet.", id="compare-summary")


def lacking_per_layer(ids: Sequence[int], summaries: dict[int, dict]) -> list[int]:
    """The checkpoints among ``ids`` whose newest result has no per-layer spectra (or no result)."""
    return [cid for cid in ids if not (summaries.get(cid) or {}).get("per_layer")]


def per_layer_section(
    entries: Sequence[CheckpointSummary], lacking: Sequence[int], running: int
) -> html.Section:
    """The per-layer heatmap when some result has it; a button to queue the rest otherwise."""
    children: list = [html.H3("Per-layer spectra")]
    if any(e.summary.get("per_layer") for e in entries):
        children.append(
            graph(fig_hessian.per_layer_heatmap(entries), name="hessian-layers", id="fig-per-layer")
        )
    if running:
        children.append(
            html.P(
                f"{running} hessian job(s) running; this page updates when they finish.", className="ps-note"
            )
        )
    elif lacking:
        children += [
            html.P(
                "The top eigenvalues of each parameter group's diagonal block "
                "(one more Lanczos run per group).",
                className="ps-note",
            ),
            html.Button(
                f"Compute per-layer spectra for {len(lacking)} checkpoint(s)",
                id=PER_LAYER_BUTTON,
                n_clicks=0,
                className="ps-button",
            ),
        ]
    return html.Section(children, className="ps-panel ps-per-layer")


def hessian_view(
    ids: Sequence[int],
    checkpoints: dict[int, dict],
    summaries: dict[int, dict],
    jobs: dict[int, dict],
    *,
    settings: Mapping | None = None,  # the compare page's URL settings: this tab has none
    dataset_id: int | None = None,  # read by the robustness tab only
) -> list:
    """Everything the hessian tab shows for the checkpoints ``ids`` (unknown ids are skipped)."""
    known = [cid for cid in ids if cid in checkpoints]
    colors = checkpoint_colors(known)
    entries = [
        CheckpointSummary(cid, checkpoints[cid]["name"], summaries[cid]) for cid in known if cid in summaries
    ]
    missing = [cid for cid in known if cid not in summaries]
    running = sum(1 for cid in known if cid in summaries and (jobs.get(cid) or {}).get("status") in ACTIVE)
    out: list = unknown_note(ids, checkpoints)
    out.append(missing_results(missing, checkpoints, jobs, "hessian"))
    if entries:
        sparsity = {cid: checkpoints[cid].get("sparsity") for cid in known}
        out += [
            hessian_table(known, checkpoints, summaries, colors),
            graph(fig_hessian.eigenvalue_bars(entries, colors), name="eigenvalues", id="fig-eigenvalues"),
            graph(
                fig_hessian.sparsity_trends(entries, sparsity, colors),
                name="hessian-sparsity",
                id="fig-hessian-sparsity",
            ),
            graph(fig_hessian.density_overlay(entries, colors), name="density", id="fig-density"),
            graph(fig_hessian.density_multiples(entries, colors), name="densities", id="fig-densities"),
            per_layer_section(entries, lacking_per_layer(known, summaries), running),
        ]
    return [o for o in out if o is not None]
