"""Authentication and the authorisation gate every route passes through.

:func:`authorize` is installed as an app-wide dependency. For the matched route it
looks up the rule in :mod:`earwitness.api.permissions` (no entry: refused for
everyone), authenticates the caller when the route is not public, enforces CSRF on
cookie-authenticated unsafe requests and refuses roles the rule does not name —
all before the view runs. Views receive the resulting :class:`Principal`.

Credentials, in order: ``X-API-Key`` or ``Authorization: Bearer`` (automation), then
the ``ew_session`` cookie (browsers). Outcomes are deliberately distinct:

- no credentials → 401; an unknown or revoked key → 401;
- a session cookie that is forged, expired, logged out or of a disabled user → 403
  (the browser holds a credential that is no longer any good; logging in again helps);
- the right credentials but the wrong role → 403.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from earwitness.accounts.keys import find_key
from earwitness.accounts.principal import Principal
from earwitness.accounts.sessions import live_session
from earwitness.api import csrf
from earwitness.api.permissions import rule_for
from earwitness.errors import AuthError, Forbidden
from earwitness.models import utcnow
from earwitness.runtime import Runtime

SESSION_COOKIE = "ew_session"


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return key or None


#: ``last_used_at`` is written at most this often per key: a write per request made every
#: API call a database transaction (measured: half of ``GET /api/calls``' time under load).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _key_principal(runtime: Runtime, key: str) -> Principal:
    with runtime.db.session() as session:
        row = find_key(session, key)
        if row is None:
            raise AuthError("unknown or revoked API key")
        now = utcnow()
        last = row.last_used_at
        if last is not None and last.tzinfo is None:  # SQLite hands back naive UTC
            last = last.replace(tzinfo=UTC)
        if last is None or now - last >= LAST_USED_RESOLUTION:
            row.last_used_at = now
        return Principal.of(row.user, via="key")


def _session_principal(runtime: Runtime, token: str) -> Principal:
    with runtime.db.session() as session:
        live = live_session(session, token)
        if live is None:
            raise Forbidden("this session has expired or ended; log in again")
        return Principal.of(live.user, via="session")


async def authenticate(request: Request, runtime: Runtime) -> Principal | None:
    """The caller, or None when they sent no credentials; bad credentials raise.

    The look-ups are blocking database work, so they run in the threadpool: on the event
    loop they stalled every other request (and the SSE streams) behind the database."""
    key = _presented_key(request)
    if key is not None:
        return await run_in_threadpool(_key_principal, runtime, key)
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        return None
    principal = await run_in_threadpool(_session_principal, runtime, token)
    await csrf.check_session_request(request, token)
    return principal


def route_path(request: Request) -> str:
    """The matched route's declared path (``/api/cases/{case_id}``), from the table
    :func:`earwitness.api.app.create_app` builds of every endpoint it includes."""
    table: dict[tuple[object, str], str] = getattr(request.app.state, "route_paths", {})
    method = "GET" if request.method == "HEAD" else request.method
    return table.get((request.scope.get("endpoint"), method), request.url.path)


async def authorize(request: Request) -> Principal | None:
    """App-wide gate: the permission matrix decides before any view runs."""
    path = route_path(request)
    rule = rule_for(request.method, path)
    if rule is None:
        raise Forbidden(f"{request.method} {path} has no entry in the permission matrix")
    runtime: Runtime = request.app.state.runtime
    if rule.public:  # a stale cookie must not lock anyone out of the login form
        try:
            principal = await authenticate(request, runtime)
        except AuthError:
            principal = None
        request.state.principal = principal
        return principal
    principal = await authenticate(request, runtime)
    request.state.principal = principal
    if principal is None:
        raise AuthError("log in, or send an API key (X-API-Key or Authorization: Bearer)")
    if not rule.permits(principal.role):
        raise Forbidden(f"role {principal.role!r} may not {request.method} {path}")
    return principal


async def current_principal(request: Request) -> Principal:
    """The principal :func:`authorize` admitted (only on routes that need a login). Async
    so that FastAPI does not send this lookup through its threadpool (see get_runtime)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # a public route asking for a user: a wiring mistake
        raise AuthError("this route needs a logged-in user")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
