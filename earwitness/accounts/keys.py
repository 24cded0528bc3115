"""Per-user API keys: the secret is returned once at creation; only its hash is kept."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.accounts.credentials import new_token, token_hash
from earwitness.errors import BadInput, NotFound
from earwitness.models import ApiKey, User, utcnow

KEY_PREFIX = "ew_"


def create_key(session: Session, user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``; returns the row and the secret (never retrievable again)."""
    if not name or len(name) > 80:
        raise BadInput("a key name is 1-80 characters")
    if not user.active:
        raise BadInput(f"user {user.username} is disabled")
    secret = new_token(KEY_PREFIX)
    row = add_key(session, user, name, secret)
    return row, secret


def add_key(session: Session, user: User, name: str, secret: str) -> ApiKey:
    """Store a key whose secret the caller chose (the bootstrap key of automation)."""
    row = ApiKey(user=user, name=name, prefix=secret[:8], key_hash=token_hash(secret))
    session.add(row)
    session.flush()
    return row


def list_keys(session: Session, user: User | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if user is not None:
        query = query.where(ApiKey.user_id == user.id)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def find_key(session: Session, secret: str) -> ApiKey | None:
    """The live key with this secret, or None (unknown, revoked or its user disabled)."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == token_hash(secret)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    return row


def key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "user": row.user.username,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "revoked_at": row.revoked_at,
    }
