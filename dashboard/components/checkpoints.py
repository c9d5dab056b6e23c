"""The checkpoint table: a family tree with one selection checkbox per row."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dash import dcc, html

from dashboard.components.format import count, percent, when
from dashboard.components.table import Column, table
from dashboard.tree import family_order

SELECT_TYPE = "ckpt-select"
COLUMNS = (
    Column("select", ""),
    Column("id", "id", numeric=True),
    Column("name", "name"),
    Column("architecture", "architecture"),
    Column("family", "family"),
    Column("parent", "parent"),
    Column("parameters", "parameters", numeric=True),
    Column("sparsity", "sparsity", numeric=True),
    Column("method", "pruning method"),
    Column("created", "created"),
)


def _checkbox(checkpoint_id: int, selected: bool) -> dcc.Checklist:
    return dcc.Checklist(
        options=[{"label": "", "value": checkpoint_id}],
        value=[checkpoint_id] if selected else [],
        id={"type": SELECT_TYPE, "index": checkpoint_id},
        className="ps-select",
    )


def _name(row: dict, depth: int) -> html.Span:
    prefix = "\u00a0\u00a0\u00a0" * (depth - 1) + "└ " if depth else ""
    return html.Span([html.Span(prefix, className="ps-tree"), row["name"]], title=row["name"])


def checkpoint_table(rows: Sequence[dict], selected: Collection[int] = ()) -> html.Table | html.P:
    names = {r["id"]: r["name"] for r in rows}
    cells = [
        {
            "select": _checkbox(r["id"], r["id"] in selected),
            "id": r["id"],
            "name": _name(r, depth),
            "architecture": r["architecture"],
            "family": r["family"],
            "parent": f"{names.get(r['parent_id'], '?')} (#{r['parent_id']})" if r["parent_id"] else "",
            "parameters": count(r["parameter_count"]),
            "sparsity": percent(r["sparsity"]),
            "method": r["pruning_method"],
            "created": when(r["created_at"]),
            "_class": f"ps-depth-{min(depth, 5)}",
        }
        for r, depth in family_order(rows)
    ]
    return table(COLUMNS, cells, empty="No checkpoints yet: drop a file above.", id="ckpt-table-el")


def parent_options(rows: Sequence[dict]) -> list[html.Option]:
    return [html.Option("(no parent)", value="")] + [
        html.Option(f"{r['name']} (#{r['id']})", value=str(r["id"])) for r in rows
    ]


# --- the prune dialog: a checkpoint becomes a family of pruned children (jobs) ----------------------

PRUNE_METHODS = (
    ("global_magnitude", "global magnitude"),
    ("layerwise_magnitude", "layer-wise magnitude (L1)"),
    ("random", "random"),
    ("channel_l1", "channels, L1 (structured)"),
)
PRUNE_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
PRUNE_FOLLOWUPS = ("evaluate", "robustness", "hessian", "landscape")


def parse_sparsities(presets: Sequence[float] | None, extra: str | None) -> list[float]:
    """The checked presets plus comma-separated extra values (``0.6, 75%``), unique and sorted.

    Raises ValueError with a message fit to show for a value that is not a number in [0, 1).
    """
    values = [float(v) for v in presets or []]
    for part in (extra or "").replace(";", ",").split(","):
        text = part.strip()
        if not text:
            continue
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a sparsity (write 0.6 or 60%)") from None
        if not 0.0 <= value < 1.0:
            raise ValueError(f"sparsity {text} is outside [0, 1)")
        values.append(value)
    return sorted(set(values))


def prune_params(methods, presets, extra, epochs, then, seed=0, rewind=()) -> dict:
    """The prune job's parameters from the dialog's controls; ValueError with a reason fit to show."""
    return {
        "methods": list(methods or []),
        "sparsities": parse_sparsities(presets, extra),
        "finetune_epochs": int(epochs or 0),
        "seed": int(seed or 0),
        "rewind": "rewind" in (rewind or []),
        "then": list(then or []),
    }


def prune_estimate(
    methods: Sequence[str], sparsities: Sequence[float], epochs: int, followups: Sequence[str]
) -> tuple[int, str]:
    """``(jobs, text)``: what a submission creates: one prune job making methods x sparsities children,
    each fine-tuned for ``epochs`` epochs, then one job per follow-up analysis and child."""
    children = len(methods) * len(sparsities)
    later = children * len(followups)
    grid = f"{_n(len(methods), 'method')} x {_n(len(sparsities), 'sparsity', 'sparsities')}"
    parts = [f"1 prune job making {_n(children, 'child', 'children')} ({grid})"]
    if epochs:
        parts.append(f"{_n(children * epochs, 'fine-tuning epoch')} in all")
    if later:
        parts.append(f"then {_n(later, 'analysis job')} ({len(followups)} per child)")
    return 1 + later, "; ".join(parts) + f": {_n(1 + later, 'job')}."


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def prune_dialog(datasets: Sequence[dict]) -> html.Details:
    """The "Prune" dialog: checkpoint, methods x sparsities x fine-tune epochs, data set, follow-ups."""
    dataset_options = [{"label": f"{d['name']} (#{d['id']})", "value": d["id"]} for d in datasets]
    return html.Details(
        [
            html.Summary("Prune a checkpoint into a family…"),
            html.Div(
                [
                    html.Label(
                        ["checkpoint", dcc.Dropdown(id="prune-checkpoint", placeholder="dense parent")]
                    ),
                    html.Label(
                        [
                            "fine-tune epochs",
                            dcc.Input(id="prune-epochs", type="number", min=0, max=200, step=1, value=0),
                        ]
                    ),
                    html.Label(
                        [
                            "dataset (fine-tuning, follow-ups)",
                            dcc.Dropdown(id="prune-dataset", options=dataset_options, placeholder="none"),
                        ]
                    ),
                    html.Label(["seed", dcc.Input(id="prune-seed", type="number", min=0, step=1, value=0)]),
                ],
                className="ps-fields",
            ),
            html.Fieldset(
                [
                    html.Legend("methods"),
                    dcc.Checklist(
                        id="prune-methods",
                        options=[{"label": label, "value": value} for value, label in PRUNE_METHODS],
                        value=["global_magnitude", "random"],
                        inline=True,
                    ),
                ]
            ),
            html.Fieldset(
                [
                    html.Legend("sparsities"),
                    dcc.Checklist(
                        id="prune-sparsities",
                        options=[{"label": f"{s:.0%}", "value": s} for s in PRUNE_SPARSITIES],
                        value=[0.5, 0.8],
                        inline=True,
                    ),
                    dcc.Input(id="prune-extra", placeholder="more, e.g. 0.6, 75%", debounce=True),
                ]
            ),
            html.Fieldset(
                [
                    html.Legend("then, on each child"),
                    dcc.Checklist(
                        id="prune-then",
                        options=[{"label": a, "value": a} for a in PRUNE_FOLLOWUPS],
                        value=[],
                        inline=True,
                    ),
                    dcc.Checklist(
                        id="prune-rewind",
                        options=[{"label": "learning-rate rewinding", "value": "rewind"}],
                        value=[],
                        inline=True,
                    ),
                ]
            ),
            html.P(id="prune-estimate", className="ps-note", role="status"),
            html.Button("Prune", id="prune-run", n_clicks=0, className="ps-button"),
            html.Div(id="prune-result", className="ps-result"),
        ],
        id="prune-dialog",
        className="ps-panel",
    )


def checkpoint_options(rows: Sequence[dict]) -> list[dict]:
    return [{"label": f"{r['name']} (#{r['id']})", "value": r["id"]} for r in rows]
