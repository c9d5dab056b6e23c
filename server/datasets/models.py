from __future__ import annotations

import hashlib
import json
from datetime import datetime

from sqlalchemy import BigInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow


class Dataset(Base):
    """Evaluation data: a built-in set materialised as ``.npz``, an upload, or a file on the server.

    ``kind`` is ``builtin`` | ``uploaded`` | ``path``. Built-ins and uploads keep their bytes in the blob
    store under ``blob_key`` (the sha256 of the bytes); a ``path`` data set keeps them where they are,
    at ``source_path`` (fully resolved, under a configured root), and ``blob_key`` is empty.
    ``format`` and ``meta`` say how a worker reads the bytes (``workers.datasets.read_dataset``).
    """

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # builtin | uploaded | path
    builtin_name: Mapped[str | None] = mapped_column(String(64), unique=True)
    sample_count: Mapped[int]
    input_shape: Mapped[list]
    num_classes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32), default="npz", server_default="npz")
    meta: Mapped[dict] = mapped_column(default=dict, server_default=text("'{}'"))
    source_path: Mapped[str | None] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def view_key(self) -> str:
        """What a job's result depends on: the bytes, and how they are read (split, size, normalisation).

        Equals ``sha256`` for an ``.npz`` read as stored, so existing cache keys stay valid.
        """
        if self.format == "npz" and not self.meta:
            return self.sha256
        view = json.dumps({"format": self.format, "meta": self.meta}, sort_keys=True)
        return hashlib.sha256(f"{self.sha256}:{view}".encode()).hexdigest()
