"""Dependency injection: every route gets its settings, session, store and queue from here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from server.access import READ_METHODS, is_owner
from server.config import Settings
from server.db import session_scope
from server.errors import Unauthorized
from server.queue import JobQueue
from server.storage import BlobStore


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    write = request.method not in READ_METHODS
    with session_scope(request.app.state.settings.resolved_database_url, write=write) as session:
        yield session


async def get_store(request: Request) -> BlobStore:
    return request.app.state.store


async def get_job_queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def require_write_token(request: Request) -> None:
    """Write endpoints need the owner (``Authorization: Bearer <PRUNESCOPE_API_TOKEN>`` or the browser's
    session cookie) when a token is configured; a share token never writes (:mod:`server.access`)."""
    if not is_owner(request, request.app.state.settings):
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <API token>'")


MAX_ID = 2**31 - 1  # INTEGER primary keys on PostgreSQL
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]

SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]  # commit before responding
StoreDep = Annotated[BlobStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_job_queue)]
WriteGuard = Depends(require_write_token)
