"""Order checkpoints as a family tree: each dense parent followed by its pruned children, indented."""

from __future__ import annotations

from collections.abc import Sequence


def family_order(rows: Sequence[dict]) -> list[tuple[dict, int]]:
    """``(row, depth)`` in depth-first order by ``parent_id``, siblings by id.

    Roots are rows without a parent or whose parent is not among ``rows``; a row on a cycle
    (which the server refuses, but data may be edited by hand) is shown once, as a root.
    """
    by_id = {r["id"]: r for r in rows}
    children: dict[int | None, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        parent = r.get("parent_id")
        children.setdefault(parent if parent in by_id else None, []).append(r)
    out: list[tuple[dict, int]] = []
    seen: set[int] = set()

    def visit(root: dict) -> None:
        stack = [(root, 0)]
        while stack:
            row, depth = stack.pop()
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            out.append((row, depth))
            stack.extend((child, depth + 1) for child in reversed(children.get(row["id"], [])))

    for root in children.get(None, []):
        visit(root)
    for r in sorted(rows, key=lambda r: r["id"]):  # rows only reachable through a cycle
        visit(r)
    return out
