"""Settings, read once from ``PRUNESCOPE_*`` environment variables.

Every URL defaults to something under the data directory, so the embedded
default (``make run``) needs no external service.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRUNESCOPE_", extra="ignore")

    data_dir: Path = Path(".prunescope")
    database_url: str | None = None  # default: sqlite file in data_dir
    queue_url: str | None = None  # default: sqlite:// huey file in data_dir; or redis://...
    storage_url: str | None = None  # default: data_dir/blobs; or any fsspec URL
    device: str | None = None  # force "cpu" / "cuda" / "cuda:1"
    max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    api_token: str | None = None
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    reaper_interval_seconds: float = Field(5.0, gt=0)
    test_analyses: bool = False  # registers the `_sleep` / `_crash` analyses used by reliability tests

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'prunescope.db').resolve()}"

    @property
    def resolved_queue_url(self) -> str:
        return self.queue_url or f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.data_dir / "blobs").resolve())

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"


@lru_cache
def get_settings() -> Settings:
    return Settings()
