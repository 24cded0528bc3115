"""The first start: with no users, an admin and a one-time login link (Jupyter's way).

Two ways in on an empty user table:

- ``EARWITNESS_BOOTSTRAP_API_KEY`` (automation): an ``admin`` user holding that key.
- otherwise ``serve`` creates ``admin`` without a password and prints a login URL with
  a single-use, expiring token; after following it the admin sets a password.

While no user has a password, ``serve`` prints a fresh link on every start (the old
one may be lost with the console) and refuses to listen beyond loopback.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from earwitness.accounts.keys import add_key
from earwitness.accounts.sessions import issue_login_token
from earwitness.models import User

BOOTSTRAP_ADMIN = "admin"


def user_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)) or 0


def any_password_user(session: Session) -> bool:
    query = select(User.id).where(User.password_hash.is_not(None), User.active.is_(True))
    return session.scalar(query.limit(1)) is not None


def bootstrap_key_admin(session: Session, secret: str) -> bool:
    """On an empty user table, create the admin holding ``secret``; True when created."""
    if user_count(session):
        return False
    admin = User(username=BOOTSTRAP_ADMIN, display_name="Administrator", role="admin")
    session.add(admin)
    add_key(session, admin, "bootstrap", secret)
    return True


def first_start_login_token(session: Session, minutes: float) -> tuple[str, str] | None:
    """(username, token) for a one-time login while no user has a password, else None.

    Creates the admin on an empty table; with users but no password, picks the first
    active admin (so a lost link is replaced by restarting).
    """
    if any_password_user(session):
        return None
    if not user_count(session):
        session.add(User(username=BOOTSTRAP_ADMIN, display_name="Administrator", role="admin"))
        session.flush()
    admin = session.scalar(
        select(User).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    )
    if admin is None:
        return None
    return admin.username, issue_login_token(session, admin, minutes)


def is_loopback(host: str) -> bool:
    """``localhost`` and 127.0.0.0/8, ::1; anything else (0.0.0.0 included) is not."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
