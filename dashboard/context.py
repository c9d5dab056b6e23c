"""The settings the dashboard's callbacks read, set once by :func:`dashboard.app.create_dash`.

Callbacks run inside the Flask server that Dash builds, far from FastAPI's dependency injection;
this accessor is the one place they get the server's :class:`~server.config.Settings` from.
"""

from __future__ import annotations

from server.config import Settings

_settings: Settings | None = None


def set_settings(settings: Settings) -> None:
    global _settings
    _settings = settings


def get_settings() -> Settings:
    if _settings is None:
        raise RuntimeError("dashboard settings are not set; build the app with dashboard.app.create_dash")
    return _settings
