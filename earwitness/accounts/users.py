"""Users: create, list, change role, password and PBX agent link, disable.

Disabling a user revokes their sessions and keys in the same transaction, so "stop
working at once" does not depend on every request re-reading the user row (it does
that too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from earwitness.accounts.credentials import MIN_PASSWORD_CHARS, hash_password
from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.models import ROLES, ApiKey, User, UserSession, utcnow

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,79}$")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadInput(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return password


def get_user(session: Session, ref: str | int) -> User:
    """By id (int or digits) or username."""
    if isinstance(ref, int) or ref.isdigit():
        user = session.get(User, int(ref))
    else:
        user = session.scalar(select(User).where(User.username == ref))
    if user is None:
        raise NotFound(f"user {ref} does not exist")
    return user


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    password: str | None = None,
    display_name: str | None = None,
    pbx_agent: str | None = None,
    queues: Sequence[str] = (),
) -> User:
    if not _NAME.match(username):
        raise BadInput("a username is 1-80 letters, digits or . _ @ - (starting alphanumeric)")
    check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username} already exists")
    user = User(
        username=username,
        role=role,
        display_name=display_name,
        pbx_agent=pbx_agent or None,
        queues=list(queues),
        password_hash=hash_password(check_password(password)) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def set_password(session: Session, user: User, password: str) -> None:
    user.password_hash = hash_password(check_password(password))
    session.flush()


def set_role(session: Session, user: User, role: str) -> None:
    user.role = check_role(role)
    session.flush()


def update_user(session: Session, user: User, changes: dict[str, Any]) -> User:
    """Apply an admin's edit: role, display name, agent link, queues, active."""
    if "role" in changes and changes["role"] is not None:
        set_role(session, user, changes["role"])
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if "pbx_agent" in changes:
        user.pbx_agent = changes["pbx_agent"] or None
    if "queues" in changes and changes["queues"] is not None:
        user.queues = list(changes["queues"])
    if "active" in changes and changes["active"] is not None:
        set_active(session, user, bool(changes["active"]))
    session.flush()
    return user


def set_active(session: Session, user: User, active: bool) -> None:
    """Enable or disable; disabling ends every session and revokes every key now."""
    user.active = active
    if not active:
        now = utcnow()
        session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    session.flush()


def user_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "active": user.active,
        "has_password": user.password_hash is not None,
        "pbx_agent": user.pbx_agent,
        "queues": list(user.queues or []),
        "created_at": user.created_at,
    }
