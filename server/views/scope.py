"""What a request may read: everything (the owner) or the checkpoints and datasets of shared views."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    checkpoint_ids: frozenset[int] | None  # None: every checkpoint
    dataset_ids: frozenset[int] | None  # None: every dataset

    @property
    def owner(self) -> bool:
        return self.checkpoint_ids is None and self.dataset_ids is None

    def allows_checkpoint(self, checkpoint_id: object) -> bool:
        return self.checkpoint_ids is None or checkpoint_id in self.checkpoint_ids

    def allows_dataset(self, dataset_id: object) -> bool:
        return self.dataset_ids is None or dataset_id in self.dataset_ids

    def checkpoints(self, ids: Iterable[int]) -> list[int]:
        """``ids`` in order, without those outside the scope."""
        return [i for i in ids if self.allows_checkpoint(i)]

    def union(self, other: Scope) -> Scope:
        if self.owner or other.owner:
            return OWNER
        return Scope(
            (self.checkpoint_ids or frozenset()) | (other.checkpoint_ids or frozenset()),
            (self.dataset_ids or frozenset()) | (other.dataset_ids or frozenset()),
        )


OWNER = Scope(None, None)
NOTHING = Scope(frozenset(), frozenset())


def of_state(state: dict) -> Scope:
    """The scope of a view's state: its checkpoint ids and its dataset (none when it names none)."""
    ids = frozenset(i for i in state.get("ids") or [] if isinstance(i, int) and not isinstance(i, bool))
    dataset = state.get("dataset")
    datasets = (
        frozenset([dataset]) if isinstance(dataset, int) and not isinstance(dataset, bool) else frozenset()
    )
    return Scope(ids, datasets)
