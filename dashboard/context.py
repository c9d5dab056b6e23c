"""The settings the dashboard's callbacks read, set once by :func:`dashboard.app.create_dash`.

Callbacks run inside the Flask server that Dash builds, far from FastAPI's dependency injection;
this accessor is the one place they get the server's :class:`~server.config.Settings` from.
"""

from __future__ import annotations

from server.config import Settings
from server.ratelimit import RateLimiter, make_limiter

_settings: Settings | None = None
_limiter: RateLimiter | None = None


def set_settings(settings: Settings, limiter: RateLimiter | None = None) -> None:
    global _settings, _limiter
    _settings = settings
    _limiter = limiter if limiter is not None else make_limiter(settings)


def get_limiter() -> RateLimiter:
    """The request budgets shared with the API (the dashboard's job submissions count against them)."""
    if _limiter is None:
        raise RuntimeError("dashboard settings are not set; build the app with dashboard.app.create_dash")
    return _limiter


def get_settings() -> Settings:
    if _settings is None:
        raise RuntimeError("dashboard settings are not set; build the app with dashboard.app.create_dash")
    return _settings
