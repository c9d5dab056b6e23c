from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: str
    builtin_name: str | None
    format: str
    meta: dict
    sample_count: int
    input_shape: list[int]
    num_classes: int
    sha256: str
    size_bytes: int
    created_at: datetime


class DatasetBuiltinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builtin: Literal["digits", "synthetic"] = Field(description="a data set that ships with PruneScope")


def _numbers(value):
    """``"0.5,0.5,0.5"`` or ``"32x32"`` (form fields) as a list; lists and numbers pass through."""
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").split(",") if p.strip()]
        return parts or None
    if isinstance(value, int | float):
        return [value]
    return value


class DatasetOptions(BaseModel):
    """Choices for formats that need them; a choice that does not apply to the detected format is a 422."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "test", "all"] | None = Field(
        None,
        description="CIFAR-10 batch archives: the training batches, the test batch or all (default test)",
    )
    image_size: list[int] | None = Field(
        None,
        min_length=1,
        max_length=2,
        description="ImageFolder: resize to H,W (one number: square); default the most common size",
    )
    mean: list[float] | None = Field(None, min_length=1, max_length=3, description="per-channel mean")
    std: list[float] | None = Field(None, min_length=1, max_length=3, description="per-channel std")

    @field_validator("image_size", "mean", "std", mode="before")
    @classmethod
    def _split_text(cls, value):
        return _numbers(value)

    @field_validator("image_size")
    @classmethod
    def _square(cls, value):
        if value is None:
            return None
        value = value * 2 if len(value) == 1 else value
        if any(d < 1 or d > 4096 for d in value):
            raise ValueError("image_size must be 1 to 4096 pixels per side")
        return value


class DatasetPathCreate(DatasetOptions):
    path: str = Field(
        min_length=1, max_length=4096, description="absolute path under PRUNESCOPE_DATASET_ROOTS"
    )
    name: str | None = Field(None, min_length=1, max_length=200)
