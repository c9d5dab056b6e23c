"""Where each checkpoint is sparse: per-layer sparsity of a selection as one heatmap."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard.figures.common import TEMPLATE, checkpoint_label, empty_figure, plain


def weight_layers(checkpoints: Sequence[dict]) -> list[str]:
    """Names of the weight tensors (``*.weight`` with more than one value), in first-seen order."""
    seen: dict[str, None] = {}
    for ckpt in checkpoints:
        for name, entry in (ckpt.get("layer_sparsity") or {}).items():
            if name.endswith("weight") and entry.get("numel", 0) > 1 and name not in seen:
                seen[name] = None
    return list(seen)


def layer_sparsity_heatmap(checkpoints: Sequence[dict]) -> go.Figure:
    """Rows are weight tensors, columns checkpoints; color is the fraction of exact zeros (0..1).

    A layer a checkpoint lacks is blank; hover shows zeros / values, so a channel-pruned layer
    (fewer values, few zeros) reads differently from a masked one (same values, many zeros).
    """
    layers = weight_layers(checkpoints)
    if not checkpoints or not layers:
        return empty_figure("no per-layer sparsity to show")
    z, text = [], []
    for layer in layers:
        row, row_text = [], []
        for ckpt in checkpoints:
            entry = (ckpt.get("layer_sparsity") or {}).get(layer)
            row.append(None if entry is None else entry["sparsity"])
            row_text.append("absent" if entry is None else f"{entry['zeros']:,} of {entry['numel']:,} zero")
        z.append(row)
        text.append(row_text)
    labels = [checkpoint_label(c["id"], c["name"]) for c in checkpoints]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=[plain(layer) for layer in layers],
            text=text,
            zmin=0.0,
            zmax=1.0,
            colorscale="Viridis",
            colorbar={"title": {"text": "sparsity"}, "tickformat": ".0%"},
            hovertemplate="%{y}<br>%{x}<br>%{z:.1%} (%{text})<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(automargin=True, tickangle=-30)
    fig.update_layout(
        title="Per-layer sparsity (exact zeros)",
        template=TEMPLATE,
        height=max(260, 22 * len(layers) + 160),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig
