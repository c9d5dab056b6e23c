from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from prunescope import __version__
from server.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health(request: Request):
    """Liveness and the reachability of the database and the queue (503 when either is down)."""
    state = request.app.state
    checks = {}
    try:
        with get_engine(state.settings.resolved_database_url).connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        state.queue.ping()
        checks["queue"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["queue"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if ok else "degraded", "version": __version__, **checks}
    return JSONResponse(body, status_code=200 if ok else 503)
