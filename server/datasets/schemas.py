from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    builtin_name: str | None
    sample_count: int
    input_shape: list[int]
    num_classes: int
    sha256: str
    size_bytes: int
    created_at: datetime


class DatasetBuiltinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builtin: Literal["digits", "synthetic"] = Field(description="a data set that ships with PruneScope")
