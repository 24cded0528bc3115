"""Browser sessions and one-time login tokens, kept server-side so they can be ended.

The cookie holds a random token; the database holds its hash, the user and the end
of the session. Logging out, disabling the user or the session expiring ends it for
every process sharing the database on its next request, with no cache to go stale.

The CSRF token of a session is derived from the session token (a hash of it under
its own label): it is unguessable without the HttpOnly cookie, needs no storage and
changes with every new session.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.accounts.credentials import new_token, token_hash
from earwitness.models import LoginToken, User, UserSession, utcnow

_SEEN_EVERY = timedelta(minutes=1)  # last_seen_at is a hint, not worth a write per request


def open_session(session: Session, user: User, hours: float) -> str:
    """A new session for ``user``; returns the cookie value."""
    token = new_token()
    session.add(
        UserSession(
            user=user,
            token_hash=token_hash(token),
            expires_at=utcnow() + timedelta(hours=hours),
            last_seen_at=utcnow(),
        )
    )
    session.flush()
    return token


def live_session(session: Session, token: str) -> UserSession | None:
    """The session behind a cookie, or None when forged, expired, ended or its user disabled."""
    row = session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if not row.user.active:
        return None
    if row.last_seen_at is None or now - row.last_seen_at > _SEEN_EVERY:
        row.last_seen_at = now
    return row


def close_session(session: Session, token: str) -> None:
    row = session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()


def csrf_token(session_token: str) -> str:
    return hashlib.sha256(b"earwitness-csrf:" + session_token.encode()).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


def issue_login_token(session: Session, user: User, minutes: float) -> str:
    """A single-use login link token for ``user`` (the first-start URL, or an admin's)."""
    token = new_token()
    session.add(
        LoginToken(
            user=user,
            token_hash=token_hash(token),
            expires_at=utcnow() + timedelta(minutes=minutes),
        )
    )
    session.flush()
    return token


def redeem_login_token(session: Session, token: str) -> User | None:
    """The token's user, once: the token is spent by this call whether or not it is used."""
    row = session.scalar(select(LoginToken).where(LoginToken.token_hash == token_hash(token)))
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    session.flush()
    return row.user if row.user.active else None
