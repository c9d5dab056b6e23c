"""URL state: parse query-string values leniently and build the URLs that carry a page's state.

Every value comes from the address bar, so parsers ignore junk instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

MAX_IDS = 200
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


def format_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def compare_search(ids: Iterable[int], dataset_id: int | None = None, tab: str | None = None) -> str:
    """The query string of the compare page, e.g. ``?ids=1,2&dataset=3&tab=evaluate``."""
    query: dict[str, str] = {}
    ids = parse_ids(format_ids(i for i in ids if isinstance(i, int)))
    if ids:
        query["ids"] = format_ids(ids)
    if dataset_id is not None:
        query["dataset"] = str(dataset_id)
    if tab:
        query["tab"] = parse_tab(tab)
    return "?" + urlencode(query, safe=",") if query else ""
