"""What every figure shares: one color per checkpoint, plain-text labels, an empty placeholder, and the
trace metadata that links a checkpoint's traces across figures (``assets/highlight.js``)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.colors import qualitative

# 10 + 24 + 24 distinct colors before falling back to evenly spread hues (designed for 20-50 checkpoints).
PALETTE: tuple[str, ...] = tuple(qualitative.Plotly + qualitative.Dark24 + qualitative.Light24)
_GOLDEN = 0.618033988749895


@dataclass(frozen=True)
class CheckpointSummary:
    """One checkpoint's result summary, with what figures need to label it."""

    checkpoint_id: int
    name: str
    summary: dict

    @property
    def label(self) -> str:
        return checkpoint_label(self.checkpoint_id, self.name)


# the figures' shared layout (templates, margins for a title, a legend titled by what its entries are)
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), legend_title_text="checkpoint")


def plain(text: object) -> str:
    """Escape Plotly's pseudo-HTML (``<b>``, ``<a href>``, entities) so user text shows as typed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def checkpoint_label(checkpoint_id: int, name: str) -> str:
    """A unique, escaped label: two checkpoints may share a name, never an id."""
    return plain(f"{name} (#{checkpoint_id})")


def _extra_color(i: int) -> str:
    r, g, b = colorsys.hls_to_rgb((i * _GOLDEN) % 1.0, 0.45, 0.65)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def checkpoint_colors(ids: Iterable[int]) -> dict[int, str]:
    """One color per checkpoint id, by rank among the ids: the same selection always gets the same colors."""
    unique = sorted(set(ids))
    return {cid: PALETTE[i] if i < len(PALETTE) else _extra_color(i) for i, cid in enumerate(unique)}


def entry_colors(entries: Sequence[CheckpointSummary], colors: Mapping[int, str] | None) -> Mapping[int, str]:
    """``colors`` when the page gave them, else :func:`checkpoint_colors` of the entries' ids."""
    return colors if colors is not None else checkpoint_colors(e.checkpoint_id for e in entries)


def checkpoint_meta(checkpoint_id: int) -> dict:
    """Trace metadata for a trace that draws one checkpoint: hovering it highlights that checkpoint's
    traces in every figure of the page and dims the others (``assets/highlight.js``)."""
    return {"checkpoint": int(checkpoint_id)}


def points_meta(checkpoint_ids: Iterable[int]) -> dict:
    """Trace metadata for a trace whose points are each one checkpoint (a line per pruning method)."""
    return {"checkpoints": [int(cid) for cid in checkpoint_ids]}


def finite(value: object) -> float | None:
    """A finite number from a JSON summary as ``float``; anything else (None, NaN, bool, text): ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=plain(message), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=240, template="plotly_white")
    return fig
