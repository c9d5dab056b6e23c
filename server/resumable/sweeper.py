"""The background task that removes expired uploads: once at startup, then every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from anyio import to_thread

from server.config import Settings
from server.resumable.service import sweep

logger = logging.getLogger(__name__)


async def _sweep_logged(settings: Settings) -> None:
    try:
        await to_thread.run_sync(sweep, settings)
    except Exception:  # a sweep that fails (a full disk, a permission) must not stop the next one
        logger.exception("sweeping expired uploads failed")


async def _sweep_forever(settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.upload_sweep_interval_seconds)
        await _sweep_logged(settings)


@contextlib.asynccontextmanager
async def upload_sweeper(settings: Settings) -> AsyncIterator[asyncio.Task]:
    """Sweep now, then keep sweeping in the server's event loop until the context exits."""
    await _sweep_logged(settings)
    task = asyncio.create_task(_sweep_forever(settings), name="upload-sweeper")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
