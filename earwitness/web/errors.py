"""Errors on pages are pages: a browser asking for HTML gets a readable 403/404, not JSON.

The API's problem+json handler (:mod:`earwitness.api.problems`) stays in charge of every
other request; this wraps it and only takes over for a browser ``GET`` of a page path.
A 401 still goes to the login form (the API handler does that).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from earwitness.errors import EarwitnessError
from earwitness.web.render import page

TITLES = {403: "Not allowed", 404: "Not found"}


def wants_page(request: Request) -> bool:
    path = request.url.path
    return (
        request.method == "GET"
        and not path.startswith(("/api/", "/static/", "/docs", "/redoc", "/openapi"))
        and "text/html" in request.headers.get("accept", "")
    )


async def _answer(result: Response | Awaitable[Response]) -> Response:
    """The wrapped handler's response (Starlette allows sync and async handlers)."""
    return await result if inspect.isawaitable(result) else result


def install_page_errors(app: FastAPI) -> None:
    """Call after :func:`earwitness.api.problems.install_problem_handlers`."""
    api_handler = app.exception_handlers[EarwitnessError]
    http_handler = app.exception_handlers[StarletteHTTPException]

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EarwitnessError)
        if exc.status == 401 or not wants_page(request):
            return await _answer(api_handler(request, exc))
        who = getattr(request.state, "principal", None)
        title = TITLES.get(exc.status, "Something went wrong")
        return page(
            request, "error.html", who, exc.status, title=title, detail=exc.detail, code=exc.status
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not wants_page(request):
            return await _answer(http_handler(request, exc))
        who = getattr(request.state, "principal", None)
        title = TITLES.get(exc.status_code, "Something went wrong")
        return page(
            request,
            "error.html",
            who,
            exc.status_code,
            title=title,
            detail=str(exc.detail),
            code=exc.status_code,
        )

    app.add_exception_handler(EarwitnessError, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
