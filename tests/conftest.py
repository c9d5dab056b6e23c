"""Shared fixtures: real SQLite files, a real PostgreSQL schema per test, real Redis, real processes.

A test that needs PostgreSQL, Redis or Chromium skips when the service is absent on a laptop, and
fails when ``PRUNESCOPE_REQUIRE_SERVICES=1`` (CI) says every service must be there.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
from pathlib import Path

import psycopg
import pytest
import redis
import torch

from server.config import Settings
from server.db import dispose_engines
from server.migrate import upgrade

PG_DSN = os.environ.get("PRUNESCOPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PRUNESCOPE_TEST_REDIS", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("PRUNESCOPE_TEST_CHROMIUM", "/usr/bin/chromium")


def services_required() -> bool:
    return os.environ.get("PRUNESCOPE_REQUIRE_SERVICES") == "1"


def missing_service(what: str) -> None:
    if services_required():
        pytest.fail(f"{what} is required (PRUNESCOPE_REQUIRE_SERVICES=1) but not reachable")
    pytest.skip(f"{what} not reachable")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PRUNESCOPE_") and not key.startswith(("PRUNESCOPE_TEST_", "PRUNESCOPE_REQUIRE")):
            monkeypatch.delenv(key)
    yield
    dispose_engines()


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL schema, migrated to head, dropped afterwards."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        missing_service("PostgreSQL at " + PG_DSN)
    schema = "t_" + secrets.token_hex(6)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_DSN}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def redis_url():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError:
        missing_service("Redis at " + REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'prunescope.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request):
    """Runs the test once on a SQLite file and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def settings(tmp_path, sqlite_url) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=sqlite_url, lease_seconds=3, reaper_interval_seconds=0.5
    )


@pytest.fixture
def make_settings(tmp_path):
    def make(database_url: str, queue_url: str | None = None, **kw) -> Settings:
        return Settings(data_dir=tmp_path / "data", database_url=database_url, queue_url=queue_url, **kw)

    return make


@pytest.fixture
def chromium() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing_service("Chromium at " + CHROMIUM)
    return CHROMIUM


# --- factories ------------------------------------------------------------------------------------


def state_dict_bytes(
    architecture: str = "small_cnn",
    *,
    num_classes: int = 10,
    input_shape=(1, 8, 8),
    seed: int = 0,
    zero_fraction: float = 0.0,
) -> bytes:
    """A freshly initialised checkpoint, optionally with a fraction of each weight zeroed."""
    from workers.architectures import build

    torch.manual_seed(seed)
    model = build(architecture, num_classes=num_classes, input_shape=tuple(input_shape))
    if zero_fraction:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and p.dim() > 1:
                    flat = p.view(-1)
                    flat[: int(zero_fraction * flat.numel())] = 0
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()
