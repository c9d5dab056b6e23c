"""Share links: create, list, revoke and resolve views. Only a token's sha256 is stored.

A token is ``secrets.token_urlsafe(32)`` (256 random bits), shown once at creation. Resolving hashes the
presented token, looks the hash up, and compares it in constant time; an unknown, malformed, expired or
revoked token raises the same :class:`~server.errors.NotFound` with the same message, so a response
tells nothing about which tokens exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import utcnow
from server.errors import NotFound
from server.views.models import SharedView
from server.views.schemas import ViewState

NOT_FOUND = "not found"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32): 32 bytes in unpadded base64url


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored one is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def is_active(view: SharedView, now: datetime | None = None) -> bool:
    now = now or utcnow()
    expires = aware(view.expires_at)
    return view.revoked_at is None and (expires is None or expires > now)


def create(
    *, session: Session, state: ViewState, expires_in_days: float | None = None
) -> tuple[SharedView, str]:
    """A new view of ``state``; returns it with its token (the only time the token exists)."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    view = SharedView(token_sha256=token_hash(token), state=state.model_dump(), expires_at=expires)
    session.add(view)
    session.commit()
    return view, token


def list_all(*, session: Session, limit: int = 500, offset: int = 0) -> list[SharedView]:
    return list(
        session.scalars(select(SharedView).order_by(SharedView.id.desc()).limit(limit).offset(offset))
    )


def resolve(*, session: Session, token: str) -> SharedView:
    """The active view behind ``token``, or :class:`NotFound` (the same for every kind of failure)."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise NotFound(NOT_FOUND)
    digest = token_hash(token)
    view = session.scalar(select(SharedView).where(SharedView.token_sha256 == digest))
    if view is None or not hmac.compare_digest(view.token_sha256, digest) or not is_active(view):
        raise NotFound(NOT_FOUND)
    return view


def revoke(*, session: Session, view: SharedView) -> SharedView:
    if view.revoked_at is None:
        view.revoked_at = utcnow()
        session.commit()
    return view


def revoke_token(*, session: Session, token: str) -> None:
    """Revoke the view of ``token``; revoking an already revoked or expired one is a no-op 404."""
    revoke(session=session, view=resolve(session=session, token=token))


def revoke_id(*, session: Session, view_id: int) -> SharedView:
    view = session.get(SharedView, view_id)
    if view is None:
        raise NotFound(f"shared view {view_id} not found")
    return revoke(session=session, view=view)


def public(view: SharedView) -> dict:
    return {
        "id": view.id,
        "state": view.state,
        "created_at": view.created_at,
        "expires_at": view.expires_at,
        "revoked_at": view.revoked_at,
        "active": is_active(view),
    }
