from __future__ import annotations

from pydantic import BaseModel, Field


class UploadState(BaseModel):
    """What the JSON sidecar ``<id>.json`` holds. ``offset`` counts bytes fsynced to ``<id>.part``."""

    id: str
    length: int = Field(ge=0)
    offset: int = Field(ge=0)
    created_at: float  # Unix seconds
    expires_at: float  # Unix seconds; pushed back by each PATCH
    metadata: dict[str, str] = {}

    @property
    def complete(self) -> bool:
        return self.offset == self.length


class UploadPublic(BaseModel):
    """The body of ``POST /api/uploads`` (tus clients read ``Location`` instead)."""

    id: str
    location: str
    length: int
    offset: int
    expires_at: float
