"""What every figure shares: one color per checkpoint, plain-text labels, an empty placeholder, and the
trace metadata that links a checkpoint's traces across figures (``assets/highlight.js``)."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
import plotly.io as pio
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


# plotly_white's layout without its per-trace defaults (every figure here sets its own colors and scales):
# plotly.py copies a figure's template into it, and plotly_white's 7 KB took 10 ms a figure to build and
# was sent with every figure; this one takes 2.8 KB. It is also the default, which plotly.py otherwise
# copies into every new figure before the figure sets its own.
TEMPLATE = "prunescope"
pio.templates[TEMPLATE] = go.layout.Template(layout=pio.templates["plotly_white"].layout)
pio.templates.default = TEMPLATE

# the figures' shared layout (templates, margins for a title, a legend titled by what its entries are)
LAYOUT = dict(template=TEMPLATE, margin=dict(l=60, r=20, t=60, b=50), legend_title_text="checkpoint")


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
    fig.update_layout(height=240, template=TEMPLATE)
    return fig


def panel_grid(
    fig: go.Figure,
    titles: Sequence[str],
    *,
    columns: int,
    h_gap: float = 0.04,
    v_gap: float | None = None,
    shared: bool = True,
    x_title: str | None = None,
    y_title: str | None = None,
    **axes: object,
) -> list[dict[str, str]]:
    """Lay out ``len(titles)`` small multiples in rows of ``columns`` on one x axis per column and one y
    axis per row, each panel titled; returns the ``xaxis``/``yaxis`` references of each panel, in order.

    ``make_subplots`` gives every panel a pair of axes of its own, and Plotly's drawing time grows with
    the axes: 20 contour panels took 720 ms to draw cold in Chromium here, 350 ms on 5 + 4 axes. Tick
    labels then show once per column and row, as with shared axes. ``shared`` also gives every column
    the first one's x range and every row the first one's y range. ``axes`` apply to every axis."""
    count = len(titles)
    cols = max(1, min(columns, count))
    rows = panel_rows(count, columns)
    v_gap = min(0.1, 0.3 / rows) if v_gap is None else v_gap
    layout: dict[str, dict] = {}
    for c in range(cols):
        bottom = (count - 1 - c) // cols  # the last row with a panel in this column
        layout[_axis_key("x", c)] = dict(
            domain=[c / cols + h_gap / 2, (c + 1) / cols - h_gap / 2],
            anchor=_axis_ref("y", bottom),
            title_text=x_title,
            **({"matches": "x"} if shared and c else {}),
            **axes,
        )
    for r in range(rows):
        layout[_axis_key("y", r)] = dict(
            domain=[1 - (r + 1) / rows + v_gap / 2, 1 - r / rows - v_gap / 2],
            anchor="x",
            title_text=y_title,
            **({"matches": "y"} if shared and r else {}),
            **axes,
        )
    refs = [{"xaxis": _axis_ref("x", i % cols), "yaxis": _axis_ref("y", i // cols)} for i in range(count)]
    labels = [
        dict(
            text=title,
            xref=f"{ref['xaxis']} domain",
            yref=f"{ref['yaxis']} domain",
            x=0.5,
            y=1.0,
            xanchor="center",
            yanchor="bottom",
            showarrow=False,
            font_size=12,
        )
        for title, ref in zip(titles, refs, strict=True)
    ]
    # one assignment: plotly.py's add_annotation copies every annotation so far (7 ms each for 20 panels)
    fig.update_layout(annotations=[*fig.layout.annotations, *labels], **layout)
    return refs


def panel_rows(count: int, columns: int) -> int:
    """The rows :func:`panel_grid` lays ``count`` panels out in (at least one), for a figure's height."""
    return max(1, math.ceil(count / max(1, min(columns, count))))


def _axis_ref(letter: str, index: int) -> str:
    return f"{letter}{index + 1}" if index else letter


def _axis_key(letter: str, index: int) -> str:
    return f"{letter}axis{index + 1}" if index else f"{letter}axis"
