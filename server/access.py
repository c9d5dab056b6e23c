"""Who may do what: the owner (everything) and share links (their own view, read-only).

Without ``PRUNESCOPE_API_TOKEN`` (the embedded default, bound to 127.0.0.1) every request is the owner's.
With it, a request is the owner's when it carries ``Authorization: Bearer <token>`` (scripts, the CLI) or the
session cookie that ``POST /login`` sets after checking the token (the browser); every other request may
only reach the health check, the login form, static files, and the share-link routes (``/s/<token>`` and
``/api/shared/<token>``), which check their own token and read only their own view. So a share link never
exposes the project around its view, unlike W&B's view-only links.

The session cookie is ``HMAC-SHA256(api token, purpose)``: nothing is stored server-side, and changing the
token signs every browser out. It is HttpOnly and SameSite=Strict, and a write authenticated by it must come
from the server's own origin (``Origin`` checked when the browser sends it).

:class:`AccessGuard` also sets ``Referrer-Policy: no-referrer`` (a share token in a URL never leaks through
a Referer header), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` on every response and
``Cache-Control: no-store`` on share-link responses, and :class:`RedactTokens` keeps tokens out of the
access log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.config import Settings

SESSION_COOKIE = "prunescope_session"
_PURPOSE = b"prunescope dashboard session v1"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/s/", "/api/shared/", "/assets/", "/_dash-component-suites/")
PUBLIC_PATHS = frozenset({"/api/health", "/login", "/logout", "/_favicon.ico", "/favicon.ico", "/s"})
SHARE_PREFIXES = ("/s/", "/api/shared/")
SECURITY_HEADERS = [
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]


def session_value(api_token: str) -> str:
    return hmac.new(api_token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def token_ok(given: str, api_token: str) -> bool:
    """``given`` is the API token (compared in constant time)."""
    return hmac.compare_digest(given.encode(), api_token.encode())


def bearer_ok(authorization: str, api_token: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and token_ok(token.strip(), api_token)


def cookie_ok(cookie: str | None, api_token: str) -> bool:
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(api_token).encode())


def same_origin(conn: HTTPConnection) -> bool:
    """False only when the browser says the request comes from another origin."""
    origin = conn.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == conn.headers.get("host", "").lower()


def is_owner(conn: HTTPConnection, settings: Settings) -> bool:
    """Whether this request acts as the owner (see the module notes)."""
    token = settings.api_token
    if not token:
        return True
    if bearer_ok(conn.headers.get("authorization", ""), token):
        return True
    if not cookie_ok(conn.cookies.get(SESSION_COOKIE), token):
        return False
    return conn.scope.get("method", "GET") in READ_METHODS or same_origin(conn)


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AccessGuard:
    """Pure ASGI middleware (uploads stream through untouched): owner check and security headers."""

    def __init__(self, app: ASGIApp, get_settings: Callable[[], Settings]):
        self.app = app
        self.get_settings = get_settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        extra = list(SECURITY_HEADERS)
        if path.startswith(SHARE_PREFIXES):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        settings = self.get_settings()
        if settings.api_token and not is_public(path) and not is_owner(HTTPConnection(scope), settings):
            await _refuse(scope, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


async def _refuse(scope: Scope, send: Send) -> None:
    """A browser asking for a page goes to the login form; anything else gets 401 JSON."""
    path = scope.get("path", "")
    accept = HTTPConnection(scope).headers.get("accept", "")
    if scope.get("method") == "GET" and not path.startswith("/api/") and "text/html" in accept:
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + ("?" + query if query else "")
        await _respond(send, 303, b"", [(b"location", f"/login?next={quote(target, safe='')}".encode())])
        return
    body = json.dumps({"detail": "sign in first: send 'Authorization: Bearer <API token>'"}).encode()
    await _respond(
        send, 401, body, [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
    )


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_TOKEN_IN_PATH = re.compile(r"(/s/|/api/shared/|/api/views/)[^/?\s\"]{16,}")


def redact(text: str) -> str:
    """``/s/<token>`` and the share API's token paths with the token replaced by ``[token]``."""
    return _TOKEN_IN_PATH.sub(r"\1[token]", text)


class RedactTokens(logging.Filter):
    """Keeps share tokens out of log lines (uvicorn's access log prints every request path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in log.filters):
            log.addFilter(RedactTokens())
