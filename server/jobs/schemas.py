from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analysis: str = Field(max_length=64, examples=["evaluate"])
    checkpoint_ids: list[Id] = Field(min_length=1, max_length=200)
    dataset_id: Id | None = None
    params: dict = Field(default_factory=dict)


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    analysis: str
    analysis_version: str
    checkpoint_id: int
    dataset_id: int | None
    params: dict
    status: str
    progress: float
    message: str
    error: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reused: bool = Field(False, description="true when identical work already existed and was reused")


class Artifact(BaseModel):
    name: str
    key: str
    size: int
    media_type: str
    url: str


class ResultPublic(BaseModel):
    job_id: int
    summary: dict
    artifacts: list[Artifact]


class AnalysisPublic(BaseModel):
    name: str
    version: str
    title: str
    description: str
    params_schema: dict
    defaults: dict
