"""FastAPI dependencies: the runtime, a database session per request, the caller's identity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import AuthError, Forbidden
from earwitness.models import ApiKey, utcnow
from earwitness.runtime import Runtime, hash_api_key


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    username: str
    role: str


ANONYMOUS = Principal("anonymous", "admin")


def get_principal(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    """Resolve the API key; with ``require_auth`` off (embedded default) everyone is admin."""
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if key is None:
        if runtime.settings.require_auth:
            raise AuthError("an API key is required (X-API-Key or Authorization: Bearer)")
        return ANONYMOUS
    with runtime.db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
        if row is None or row.revoked_at is not None or not row.user.active:
            raise AuthError("unknown or revoked API key")
        row.last_used_at = utcnow()
        return Principal(row.user.username, row.user.role)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: str) -> object:
    def check(principal: PrincipalDep) -> Principal:
        if principal.role != "admin" and principal.role not in roles:
            raise Forbidden(f"role {principal.role!r} may not do this; needs one of {roles}")
        return principal

    return Depends(check)
