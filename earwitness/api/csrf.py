"""CSRF defence for browser sessions (Datasette's ``csrf.py`` is the model).

A session cookie is an ambient credential: a page on another site can make the
browser send it. So every unsafe request (POST, PUT, PATCH, DELETE) authenticated by
the session cookie must also carry the session's CSRF token, in the ``X-CSRF-Token``
header (scripts) or a ``csrf_token`` form field (server-rendered forms). The token is
derived from the session token (:func:`earwitness.accounts.sessions.csrf_token`), which
another site cannot read. Requests authenticated by an API key are exempt: a browser
never adds a key on its own.

The login form has no session yet: it uses a double-submit cookie instead (a random
value set with the form, echoed back in a field), which another site can neither
read nor set for this origin's path.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request

from earwitness.accounts.sessions import csrf_matches
from earwitness.errors import Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HEADER = "x-csrf-token"
FIELD = "csrf_token"
LOGIN_COOKIE = "ew_login_csrf"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def presented_token(request: Request) -> str | None:
    """The token the request carries: the header, else the form field."""
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get(FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_session_request(request: Request, session_token: str) -> None:
    if request.method in SAFE_METHODS:
        return
    if not csrf_matches(session_token, await presented_token(request)):
        raise Forbidden(
            "missing or wrong CSRF token: send the session's token as X-CSRF-Token "
            "or the csrf_token form field (GET /api/me returns it)"
        )


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


async def check_login_request(request: Request) -> None:
    cookie = request.cookies.get(LOGIN_COOKIE)
    presented = await presented_token(request)
    if not cookie or not presented or not hmac.compare_digest(cookie, presented):
        raise Forbidden("missing or wrong CSRF token: reload the login form and try again")
