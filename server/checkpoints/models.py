from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class Checkpoint(Base):
    """An uploaded (or derived) set of weights for a trusted architecture."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str | None] = mapped_column(String(200), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="SET NULL"), index=True
    )
    format: Mapped[str] = mapped_column(String(32))
    architecture: Mapped[str] = mapped_column(String(100))
    num_classes: Mapped[int]
    input_shape: Mapped[list]
    parameter_count: Mapped[int] = mapped_column(BigInteger)
    sparsity: Mapped[float]
    layer_sparsity: Mapped[dict]
    pruning_method: Mapped[str | None] = mapped_column(String(64))
    sparsity_target: Mapped[float | None]
    meta: Mapped[dict] = mapped_column("metadata", default=dict)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
