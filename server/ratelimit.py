"""Per-client request budgets for the endpoints that create work: uploads, jobs and share links (429).

A sliding log per (group, client): at most ``limit`` requests in any ``window`` seconds. The budget is held in
this process's memory, so with ``serve --http-workers N`` each process keeps its own (a client gets at most N
times the limit); clients are told apart by the connecting address, so behind a reverse proxy the proxy
should limit instead (``X-Forwarded-For`` is not trusted, since any client can send it).

``PRUNESCOPE_RATE_LIMIT_PER_MINUTE`` sets the limit (default 120 a minute per group; 0 turns it off).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import Depends, Request

from server.config import Settings
from server.errors import RateLimited

__all__ = ["GROUPS", "RateLimiter", "check", "make_limiter", "rate_limited"]

GROUPS = {"upload": "uploads", "jobs": "job submissions", "share": "share links", "login": "sign-in attempts"}
MAX_KEYS = 100_000  # clients remembered at once; the stalest are forgotten beyond this


class RateLimiter:
    """At most ``limit`` calls of :meth:`hit` per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._log: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record a request; ``None`` if it is allowed, else the seconds until one would be."""
        if self.limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            log = self._log.get(key)
            if log is None:
                if len(self._log) >= MAX_KEYS:
                    self._forget(now)
                log = self._log[key] = deque()
            while log and log[0] <= now - self.window:
                log.popleft()
            if len(log) >= self.limit:
                return max(log[0] + self.window - now, 0.001)
            log.append(now)
            return None

    def _forget(self, now: float) -> None:
        stale = [k for k, log in self._log.items() if not log or log[-1] <= now - self.window]
        for key in stale or list(self._log)[: len(self._log) // 2]:
            del self._log[key]


def make_limiter(settings: Settings) -> RateLimiter:
    """One per application (``app.state.limiter``), shared with its dashboard."""
    return RateLimiter(settings.rate_limit_per_minute, 60.0)


def check(limiter: RateLimiter, group: str, client: str) -> None:
    """Raise :class:`RateLimited` when ``client`` has used up its budget for ``group``."""
    wait = limiter.hit(f"{group}:{client}")
    if wait is not None:
        raise RateLimited(
            f"too many {GROUPS[group]}: at most {limiter.limit} a minute; retry in {math.ceil(wait)} s",
            retry_after=math.ceil(wait),
        )


def rate_limited(group: str):
    """A route dependency charging one request of ``group`` to the connecting client."""
    if group not in GROUPS:
        raise ValueError(f"unknown rate-limit group {group!r}")

    async def dependency(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        check(request.app.state.limiter, group, client)

    return Depends(dependency)
