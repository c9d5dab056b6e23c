"""The ASGI application: API routes first, then the Dash dashboard mounted at ``/``."""

from __future__ import annotations

import contextlib
import logging

from fastapi import FastAPI

from prunescope import __version__
from server import storage
from server.access import AccessGuard, install_log_redaction
from server.checkpoints.router import router as checkpoints_router
from server.config import Settings, get_settings
from server.datasets.router import router as datasets_router
from server.errors import install_handlers
from server.health import router as health_router
from server.jobs.router import router as jobs_router
from server.login import router as login_router
from server.queue import get_queue
from server.ratelimit import make_limiter
from server.resumable.router import TusResponseHeaders
from server.resumable.router import router as uploads_router
from server.resumable.sweeper import upload_sweeper
from server.uploads import BodySizeLimit
from server.views.router import router as views_router

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    async with upload_sweeper(app.state.settings):  # expired resumable uploads, now and periodically
        yield


def create_app(settings: Settings | None = None, *, with_dashboard: bool = True) -> FastAPI:
    settings = settings or get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(
        title="PruneScope",
        version=__version__,
        description='Compare a dense network and its pruned variants. Errors are `{"detail": "..."}`.',
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.store = storage.make_store(settings.resolved_storage_url, settings.tmp_dir)
    app.state.queue = get_queue(settings.resolved_queue_url)
    app.state.limiter = make_limiter(settings)
    install_handlers(app)
    routers = (health_router, checkpoints_router, datasets_router, jobs_router, uploads_router, views_router)
    for router in (*routers, login_router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, get_limit=lambda: settings.max_upload_bytes)
    app.add_middleware(TusResponseHeaders)
    app.add_middleware(AccessGuard, get_settings=lambda: app.state.settings)  # outermost: first to see
    install_log_redaction()
    if with_dashboard:
        from a2wsgi import WSGIMiddleware

        from dashboard.app import create_dash
        from dashboard.shared import create_shared_dash

        shared = create_shared_dash(settings, limiter=app.state.limiter)
        dash_app = create_dash(settings, limiter=app.state.limiter)  # last: the app get_relative_path serves
        app.mount("/s", WSGIMiddleware(shared.server))  # share links: their own read-only app
        app.mount("/", WSGIMiddleware(dash_app.server))
    return app
