from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.deps import MAX_ID

MAX_VIEW_IDS = 200
MAX_SETTINGS_BYTES = 4096


class ViewState(BaseModel):
    """What a shared view shows: the compare page's selection, dataset, tab and display settings."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(min_length=1, max_length=MAX_VIEW_IDS, description="checkpoint ids, in order")
    dataset: int | None = Field(None, ge=1, le=MAX_ID)
    tab: str = Field("evaluate", pattern=r"^[a-z_]{1,32}$")
    settings: dict = Field(default_factory=dict, description="display settings (JSON, at most 4 KB)")

    @field_validator("ids")
    @classmethod
    def _ids(cls, ids: list[int]) -> list[int]:
        if any(not 1 <= i <= MAX_ID for i in ids):
            raise ValueError(f"checkpoint ids must be between 1 and {MAX_ID}")
        return list(dict.fromkeys(ids))

    @field_validator("settings")
    @classmethod
    def _small(cls, settings: dict) -> dict:
        if len(json.dumps(settings, default=str)) > MAX_SETTINGS_BYTES:
            raise ValueError(f"settings must be at most {MAX_SETTINGS_BYTES} bytes of JSON")
        return settings


class ViewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: ViewState
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="none: until revoked")


class ViewPublic(BaseModel):
    """A view as its owner lists it: never its token (only the token's sha256 is stored)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    state: dict
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class ViewCreated(ViewPublic):
    token: str = Field(description="shown once: the link's secret")
    url: str = Field(description="the read-only link, relative to the server")


class SharedResult(BaseModel):
    checkpoint_id: int
    analysis: str
    job_id: int
    summary: dict


class SharedViewPublic(BaseModel):
    """What a share token reads: its view's state and the checkpoints and datasets it names."""

    state: dict
    checkpoints: list[dict]
    datasets: list[dict]
