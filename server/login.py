"""The browser's sign-in when ``PRUNESCOPE_API_TOKEN`` is set: a form that checks the token once and sets
the session cookie (:mod:`server.access`). Without a token configured, there is nothing to sign in to."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from server.access import SESSION_COOKIE, session_value, token_ok
from server.deps import SettingsDep
from server.ratelimit import rate_limited

router = APIRouter(include_in_schema=False)
COOKIE_MAX_AGE = 30 * 24 * 3600

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PruneScope · Sign in</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="ps-login"><main class="ps-main">
<h1>PruneScope</h1>
<p>This server asks for its API token (<code>PRUNESCOPE_API_TOKEN</code>) before showing anything.</p>
{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>API token <input type="password" name="token" id="login-token" autocomplete="current-password"
 required autofocus></label>
<button type="submit" id="login-submit">Sign in</button>
</form></main></body></html>"""


def safe_next(target: str | None) -> str:
    """A path on this server to return to after signing in: never another host (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _page(next_url: str, message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="ps-error" role="alert">{escape(message)}</p>' if message else ""
    return HTMLResponse(_PAGE.format(message=note, next=escape(safe_next(next_url))), status_code=status)


@router.get("/login")
def login_form(settings: SettingsDep, next: Annotated[str | None, Query(max_length=2000)] = None):
    if not settings.api_token:
        return RedirectResponse(safe_next(next), status_code=303)
    return _page(next or "/")


@router.post("/login", dependencies=[rate_limited("login")])
def login(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/",
):
    expected = settings.api_token
    if not expected:
        return RedirectResponse(safe_next(next), status_code=303)
    if not token_ok(token, expected):
        return _page(next, "That is not this server's API token.", status=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(expected),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout():
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
