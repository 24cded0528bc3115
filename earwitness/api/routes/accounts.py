"""Users and API keys (admin), and the caller's own account (``/api/me``).

The same service functions as ``earwitness users ...`` and ``earwitness keys ...``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from earwitness.accounts import keys as key_service
from earwitness.accounts import users as user_service
from earwitness.accounts.credentials import verify_password
from earwitness.accounts.sessions import csrf_token, issue_login_token
from earwitness.api.auth import SESSION_COOKIE
from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.errors import AuthError
from earwitness.models import ROLES

router = APIRouter(tags=["accounts"])
ROLE_PATTERN = "^(" + "|".join(ROLES) + ")$"


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    role: str
    active: bool
    has_password: bool
    pbx_agent: str | None
    queues: list[str]
    created_at: datetime


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    role: str = Field(pattern=ROLE_PATTERN)
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    display_name: str | None = Field(default=None, max_length=120)
    pbx_agent: str | None = Field(default=None, max_length=120)
    queues: list[str] = []


class UserPatch(BaseModel):
    role: str | None = Field(default=None, pattern=ROLE_PATTERN)
    display_name: str | None = Field(default=None, max_length=120)
    pbx_agent: str | None = Field(default=None, max_length=120)
    queues: list[str] | None = None
    active: bool | None = None


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=1024)


class OwnPasswordIn(PasswordIn):
    current_password: str | None = Field(
        default=None, description="required when the account already has a password"
    )


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=80)
    user: str = Field(min_length=1, description="username or id of the key's owner")


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    user: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret: shown this once, stored only as a hash")


@router.get("/api/me")
def me(request: Request, who: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """Who you are; for a browser session also the CSRF token unsafe requests must send."""
    user = user_service.get_user(session, who.user_id)
    out = user_service.user_dict(user) | {"via": who.via}
    token = request.cookies.get(SESSION_COOKIE)
    if who.via == "session" and token:
        out["csrf_token"] = csrf_token(token)
    return out


@router.post("/api/me/password", status_code=204)
def set_own_password(body: OwnPasswordIn, who: PrincipalDep, session: SessionDep) -> None:
    """Set your password; a first password (after the login link) needs no current one."""
    user = user_service.get_user(session, who.user_id)
    if user.password_hash is not None and not verify_password(
        user.password_hash, body.current_password or ""
    ):
        raise AuthError("the current password is wrong")
    user_service.set_password(session, user, body.password)


@router.get("/api/users", response_model=list[UserOut])
def list_users(session: SessionDep) -> list[dict[str, Any]]:
    return [user_service.user_dict(u) for u in user_service.list_users(session)]


@router.post("/api/users", response_model=UserOut, status_code=201)
def add_user(body: UserIn, session: SessionDep) -> dict[str, Any]:
    user = user_service.create_user(session, **body.model_dump())
    return user_service.user_dict(user)


@router.patch("/api/users/{user_id}", response_model=UserOut)
def patch_user(user_id: DbInt, body: UserPatch, session: SessionDep) -> dict[str, Any]:
    """Change role, display name, PBX agent link, queues; ``active=false`` disables the
    user and ends their sessions and keys at once."""
    user = user_service.get_user(session, user_id)
    user_service.update_user(session, user, body.model_dump(exclude_unset=True))
    return user_service.user_dict(user)


@router.post("/api/users/{user_id}/password", status_code=204)
def set_user_password(user_id: DbInt, body: PasswordIn, session: SessionDep) -> None:
    user_service.set_password(session, user_service.get_user(session, user_id), body.password)


@router.post("/api/users/{user_id}/login-link", status_code=201)
def login_link(
    user_id: DbInt, request: Request, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """A single-use login URL for a user (e.g. to set a forgotten password)."""
    user = user_service.get_user(session, user_id)
    minutes = runtime.settings.login_token_minutes
    token = issue_login_token(session, user, minutes)
    url = str(request.url_for("login_form").include_query_params(token=token))
    return {"user": user.username, "url": url, "expires_in_minutes": minutes}


@router.get("/api/keys", response_model=list[KeyOut])
def list_keys(session: SessionDep) -> list[dict[str, Any]]:
    return [key_service.key_dict(k) for k in key_service.list_keys(session)]


@router.post("/api/keys", response_model=NewKeyOut, status_code=201)
def create_key(body: KeyIn, session: SessionDep) -> dict[str, Any]:
    """A new key for a user; the secret is in this response only."""
    row, secret = key_service.create_key(
        session, user_service.get_user(session, body.user), body.name
    )
    return key_service.key_dict(row) | {"key": secret}


@router.delete("/api/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: DbInt, session: SessionDep) -> dict[str, Any]:
    """Revoke now: the next request with this key gets 401."""
    return key_service.key_dict(key_service.revoke_key(session, key_id))
