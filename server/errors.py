"""One exception hierarchy for the whole server, mapped to HTTP in :func:`install_handlers`.

PruneScopeError
├── InvalidInput        422  a value the client sent cannot be used
│   └── BadUpload       422  an uploaded file is not what it claims to be
├── NotFound            404
├── Conflict            409  the request clashes with the current state
├── PayloadTooLarge     413
├── Unauthorized        401
├── RateLimited         429
└── BlobCorrupt         500  a stored blob no longer matches its sha256 (server-side fault)

An overloaded database (connection pool exhausted, SQLite lock wait timed out) answers 503 with
``Retry-After``, so clients back off instead of seeing a 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class PruneScopeError(Exception):
    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(PruneScopeError):
    status_code = 422


class BadUpload(InvalidInput):
    pass


class NotFound(PruneScopeError):
    status_code = 404


class Conflict(PruneScopeError):
    status_code = 409


class PayloadTooLarge(PruneScopeError):
    status_code = 413


class Unauthorized(PruneScopeError):
    status_code = 401


class RateLimited(PruneScopeError):
    status_code = 429

    def __init__(self, detail: str, *, retry_after: int = 60):
        super().__init__(detail)
        self.retry_after = retry_after


class BlobCorrupt(PruneScopeError):
    status_code = 500


def _format_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _busy() -> JSONResponse:
    body = {"detail": "the database is busy or unavailable; retry shortly"}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(PruneScopeError)
    async def _domain(_request: Request, exc: PruneScopeError):
        if exc.status_code >= 500:
            logger.error("server fault: %s", exc.detail)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _format_validation(exc)}, status_code=422)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(_request: Request, exc: PoolTimeout):
        logger.warning("database connection pool exhausted: %s", exc)
        return _busy()

    @app.exception_handler(OperationalError)
    async def _operational(_request: Request, exc: OperationalError):
        logger.error("database unavailable: %s", exc)
        return _busy()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
