"""The browser UI: server-rendered pages over the same view functions as the JSON API.

``install(app)`` mounts the page router, the static files (vendored with their version
and licence under ``static/vendor/``) and HTML error pages for browsers.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from earwitness.web.errors import install_page_errors
from earwitness.web.pages import router
from earwitness.web.render import STATIC

__all__ = ["install", "router"]


def install(app: FastAPI) -> None:
    """Static files and page errors; the router is included by the app with the API's."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_page_errors(app)
