"""Browser login: the login form and one-time links, logout, and a minimal start page.

``POST /login`` takes form fields ``username`` and ``password`` (plus the form's CSRF
token) and sets the session cookie: HttpOnly (scripts cannot read it), SameSite=Lax
(other sites' forms do not carry it), Secure when served over TLS. A wrong username
and a wrong password get the same 401 and cost the same time. Attempts are limited
per username and per client address (429 with Retry-After).

``GET /login?token=...`` redeems a single-use link (the one printed on first start).
The login form is rendered by the web UI (earwitness/web), which builds on the same
cookie, CSRF token and permission matrix and serves ``/`` (the wallboard).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from earwitness.accounts.credentials import verify_password
from earwitness.accounts.ratelimit import LoginLimiter
from earwitness.accounts.sessions import (
    close_session,
    open_session,
    redeem_login_token,
)
from earwitness.api import csrf
from earwitness.api.auth import SESSION_COOKIE
from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.errors import AuthError, Forbidden, TooManyRequests
from earwitness.models import User
from earwitness.runtime import Runtime

router = APIRouter(include_in_schema=False)
WRONG = "wrong username or password"


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would make the login page a phishing tool."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _login_page(
    request: Request, token: str, next_path: str, error: str = "", status: int = 200
) -> HTMLResponse:
    from earwitness.web.render import page  # the web UI's chrome (language, styles)

    response = page(
        request, "login.html", None, status, login_token=token, next_path=next_path, error=error
    )
    response.set_cookie(csrf.LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login")
    return response


def _with_cookie(request: Request, runtime: Runtime, response: Response, token: str) -> Response:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(runtime.settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


@router.get("/login", name="login_form", response_model=None)
def login_form(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    token: str | None = None,
    next: str | None = None,  # noqa: A002
) -> Response:
    """The login form, or — with ``token`` — a one-time login link redeemed."""
    if token is None:
        return _login_page(request, csrf.new_login_token(), safe_next(next))
    user = redeem_login_token(session, token)
    session.commit()  # spent even if the response never arrives
    if user is None:
        raise Forbidden("this login link is invalid, already used or expired")
    cookie = open_session(session, user, runtime.settings.session_hours)
    session.commit()  # before the redirect is followed (see login)
    return _with_cookie(request, runtime, RedirectResponse(safe_next(next), 303), cookie)


def _limiter(request: Request, runtime: Runtime) -> LoginLimiter:
    limiter: LoginLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = LoginLimiter(runtime.settings.login_attempts, runtime.settings.login_window_s)
        request.app.state.login_limiter = limiter
    return limiter


@router.post("/login", response_model=None)
async def login(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    await csrf.check_login_request(request)
    limiter = _limiter(request, runtime)
    client = request.client.host if request.client else "-"
    keys = (f"user:{username.lower()}", f"addr:{client}")
    if not limiter.allow(*keys):
        raise TooManyRequests(
            f"too many failed logins; wait {int(runtime.settings.login_window_s)} s and try again"
        )
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.active else None
    if user is None or not verify_password(stored, password):
        limiter.failed(*keys)
        if _wants_html(request):
            token = csrf.new_login_token()
            return _login_page(request, token, safe_next(next), WRONG, status=401)
        raise AuthError(WRONG)
    limiter.succeeded(keys[0])
    cookie = open_session(session, user, runtime.settings.session_hours)
    # Committed before the redirect leaves: the browser follows it at once, and a
    # dependency's teardown commit can land after that request is already refused.
    session.commit()
    return _with_cookie(request, runtime, RedirectResponse(safe_next(next), 303), cookie)


@router.post("/logout", response_model=None)
def logout(request: Request, session: SessionDep, _: PrincipalDep) -> Response:
    """End this browser session (API keys are revoked with ``DELETE /api/keys/{id}``)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        close_session(session, token)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
