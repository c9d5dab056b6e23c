"""Settings, read once from ``PRUNESCOPE_*`` environment variables.

Every URL defaults to something under the data directory, so the embedded
default (``make run``) needs no external service.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
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
    rate_limit_per_minute: int = Field(120, ge=0)  # uploads, jobs, share links per client each (0: off)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    reaper_interval_seconds: float = Field(5.0, gt=0)
    test_analyses: bool = False  # registers the `_sleep` / `_crash` analyses used by reliability tests
    # Checkpoint loading sandbox (DESIGN §5): caps on the child process that deserialises an upload.
    checkpoint_load_memory_mb: int = Field(4096, ge=256)  # address space, ~700 MiB of it Python + torch
    checkpoint_load_cpu_seconds: int = Field(120, ge=1)
    checkpoint_load_timeout_seconds: float = Field(180.0, gt=0)
    max_checkpoint_elements: int = Field(2_000_000_000, ge=1)
    # datasets: server-side roots (colon-separated absolute dirs; empty = registering paths is off)
    dataset_roots: str = ""
    dataset_max_image_pixels: int = Field(4096 * 4096, ge=1)  # one image, checked before decoding
    dataset_max_total_pixels: int = Field(500_000_000, ge=1)  # all images of an ImageFolder zip
    dataset_max_members: int = Field(200_000, ge=1)  # entries in an uploaded zip or tar
    dataset_max_unpacked_bytes: int = Field(16 * 1024**3, ge=1)  # declared uncompressed size of one
    # resumable uploads (tus 1.0 at /api/uploads, server/resumable/): an upload untouched this long is swept
    upload_expiry_seconds: float = Field(24 * 3600.0, gt=0)
    upload_sweep_interval_seconds: float = Field(600.0, gt=0)
    # the dashboard's plotly.js build (dashboard/plotly_bundle.py); None: dashboard/plotlyjs/dist. A folder
    # without one: pages load plotly.py's full plotly.min.js
    plotlyjs_dir: Path | None = None

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Absolute, so child processes with another working directory find the same files."""
        return value.expanduser().resolve()

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
