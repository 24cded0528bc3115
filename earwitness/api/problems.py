"""One error format for every 4xx/5xx: RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from earwitness.errors import EarwitnessError, TooManyRequests
from earwitness.logs import request_id_var

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://earwitness.invalid/problems/"


def problem(status: int, title: str, detail: str, slug: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _browser_page(request: Request) -> bool:
    """A browser asking for a page (not the API, not the login form itself)."""
    path = request.url.path
    return (
        request.method == "GET"
        and not path.startswith("/api/")
        and path != "/login"
        and "text/html" in request.headers.get("accept", "")
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(EarwitnessError)
    async def _earwitness(request: Request, exc: EarwitnessError) -> Response:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.detail)
        if exc.status == 401 and _browser_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
        response = problem(exc.status, exc.title, exc.detail, exc.slug)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = "60"
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(422, "Invalid request", detail, "validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail), f"http-{exc.status_code}")

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        """A lost connection, a restarted server, a lock held past the busy timeout, a full
        disk: the unit of work was rolled back, so the client may simply retry."""
        reason = (str(exc.orig).strip().splitlines() or ["?"])[0] if exc.orig else repr(exc)
        log.error("database error: %s", reason)
        return problem(
            503,
            "Database unavailable",
            f"the database could not complete the request ({reason}); "
            "nothing of it was saved, retry",
            "database-unavailable",
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return internal_error()


def internal_error() -> JSONResponse:
    """The 500 problem; its ``request_id`` is the one the server log line names."""
    return problem(
        500,
        "Internal error",
        "an unexpected error occurred; see the server log for this request id",
        "internal",
    )
