"""URL state: parse query-string values leniently and build the URLs that carry a page's state.

Every value comes from the address bar, so parsers ignore junk instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

MAX_IDS = 200
MAX_INDEX = 10**9
# The compare page's tabs: the analysis each one shows -> its label. The first is the default; each also
# needs its view in ``dashboard.pages.compare.VIEWS``.
COMPARE_TABS: dict[str, str] = {
    "evaluate": "Evaluate",
    "hessian": "Hessian",
    "landscape": "Landscape",
    "robustness": "Robustness",
    "overview": "Overview",
}
DEFAULT_TAB = next(iter(COMPARE_TABS))

# The tabs' own settings that the compare page's URL carries, by query name, in URL order: the robustness
# heatmap's severity, the per-sample checkpoints A and B, condition, embedding quantity and opened sample;
# the landscape's log switch and 3D checkpoint; the overview's mode. Absent: the control's default.
SETTINGS = ("severity", "condition", "quantity", "a", "b", "sample", "log", "surface", "mode")
CHECKPOINT_SETTINGS = ("a", "b", "surface")  # they name a checkpoint: kept only while it is selected
MEAN_SEVERITY = "mean"
SEVERITY_LEVELS = range(1, 6)
CLEAN = "clean"
QUANTITIES = ("correct", "angle", "margin")  # dashboard.figures.robustness.QUANTITIES
OVERVIEW_MODES = ("absolute", "difference")  # the first is the default
_CONDITION = re.compile(r"[a-z][a-z0-9_]{0,47}/[1-5]")
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def _parts(raw: str | Iterable[str] | None) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    return [p.strip() for item in raw if isinstance(item, str) for p in item.split(",")]


def parse_id(raw: object) -> int | None:
    """A positive integer id, or ``None`` for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw > 0 else None
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    value = int(text)
    return value if value > 0 else None


def parse_ids(raw: str | Iterable[str] | None) -> list[int]:
    """``"1,2,x,2"`` -> ``[1, 2]``: positive integers in first-seen order, junk and repeats dropped."""
    out: list[int] = []
    for part in _parts(raw):
        value = parse_id(part)
        if value is not None and value not in out:
            out.append(value)
            if len(out) == MAX_IDS:
                break
    return out


def parse_tab(raw: object) -> str:
    return raw if isinstance(raw, str) and raw in COMPARE_TABS else DEFAULT_TAB


def parse_index(raw: object) -> int | None:
    """A sample index (an integer from 0), or ``None`` for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= MAX_INDEX else None
    if not isinstance(raw, str) or not raw.strip().isascii() or not raw.strip().isdigit():
        return None
    text = raw.strip()
    return int(text) if len(text) <= 10 and int(text) <= MAX_INDEX else None


def _one(raw: object) -> object:
    """A query value given once (``"x"``) or repeated (``["x", "y"]``): the first."""
    if isinstance(raw, list | tuple):
        return raw[0] if raw else None
    return raw


def _severity(raw: object) -> int | str | None:
    if raw == MEAN_SEVERITY:
        return MEAN_SEVERITY
    level = parse_id(raw)
    return level if level in SEVERITY_LEVELS else None


def _condition(raw: object) -> str | None:
    if raw == CLEAN or (isinstance(raw, str) and _CONDITION.fullmatch(raw)):
        return raw
    return None


def _flag(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else None
    return True if text in _TRUE else False if text in _FALSE else None


def _choice(choices: tuple[str, ...]):
    return lambda raw: raw if isinstance(raw, str) and raw in choices else None


_PARSERS = {
    "severity": _severity,
    "condition": _condition,
    "quantity": _choice(QUANTITIES),
    "a": parse_id,
    "b": parse_id,
    "sample": parse_index,
    "log": _flag,
    "surface": parse_id,
    "mode": _choice(OVERVIEW_MODES),
}


def parse_settings(query: Mapping[str, object] | None) -> dict[str, object]:
    """The tab settings of a query (``{"severity": "3", "log": "1", "x": "?"}`` -> ``{"severity": 3,
    "log": True}``): each name of :data:`SETTINGS` whose value is of the control's kind; the rest dropped.
    Whether a value is among a control's options (a corruption, a selected checkpoint) depends on the
    results shown, so each view checks that with :func:`pick`."""
    if not isinstance(query, Mapping):
        return {}
    out: dict[str, object] = {}
    for name in SETTINGS:
        value = _PARSERS[name](_one(query.get(name)))
        if value is not None:
            out[name] = value
    return out


def pick(settings: Mapping[str, object] | None, name: str, allowed: Iterable, default):
    """The setting ``name`` if it is one of the control's ``allowed`` values, else ``default``."""
    value = (settings or {}).get(name)
    return value if value is not None and value in list(allowed) else default


def settings_query(settings: Mapping[str, object] | None, ids: Iterable[int] | None = None) -> dict[str, str]:
    """The query values of ``settings`` (checked again), in :data:`SETTINGS` order; with ``ids``, those
    naming a checkpoint outside ``ids`` are left out. A log switch that is off is the default: left out."""
    kept = parse_settings({k: v for k, v in (settings or {}).items() if k in SETTINGS})
    selected = None if ids is None else set(ids)
    out: dict[str, str] = {}
    for name, value in kept.items():
        if name in CHECKPOINT_SETTINGS and selected is not None and value not in selected:
            continue
        if name == "log":
            if value:
                out[name] = "1"
            continue
        out[name] = str(value)
    return out


def format_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def compare_search(
    ids: Iterable[int],
    dataset_id: int | None = None,
    tab: str | None = None,
    settings: Mapping[str, object] | None = None,
) -> str:
    """The query string of the compare page, e.g. ``?ids=1,2&dataset=3&tab=robustness&severity=3``: the
    selection, the tab and the tabs' settings (those naming an unselected checkpoint left out)."""
    query: dict[str, str] = {}
    ids = parse_ids(format_ids(i for i in ids if isinstance(i, int)))
    if ids:
        query["ids"] = format_ids(ids)
    if dataset_id is not None:
        query["dataset"] = str(dataset_id)
    if tab:
        query["tab"] = parse_tab(tab)
    query.update(settings_query(settings, ids))
    return "?" + urlencode(query, safe=",/") if query else ""
