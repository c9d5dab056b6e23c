from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CheckpointPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    family: str | None
    parent_id: int | None
    format: str
    architecture: str
    num_classes: int
    input_shape: list[int]
    parameter_count: int
    sparsity: float = Field(description="fraction of exactly-zero values among all parameters")
    layer_sparsity: dict
    pruning_method: str | None
    sparsity_target: float | None
    metadata: dict = Field(validation_alias="meta")
    sha256: str
    size_bytes: int
    created_at: datetime


class CheckpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    family: str | None = Field(None, max_length=200)
    parent_id: int | None = Field(None, ge=1, le=2**31 - 1)
