"""The FastAPI app factory; the runtime is opened in the lifespan so tests can inject one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.trustedhost import TrustedHostMiddleware

from earwitness import web
from earwitness.api.auth import authorize
from earwitness.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from earwitness.api.problems import install_problem_handlers
from earwitness.api.routes import (
    accounts,
    calls,
    cases,
    evidence,
    followups,
    health,
    jobs,
    qa,
    recordings,
    search,
    session,
    tracks,
)
from earwitness.config import Settings, load_settings
from earwitness.runtime import Runtime


def route_table(routers: Iterable[APIRouter]) -> dict[tuple[object, str], str]:
    """(endpoint, method) → declared full path of every route, for the permission gate.

    Built here, where the routers are included (without extra prefixes), so the gate
    does not depend on how a FastAPI version represents included routers internally.
    """
    table: dict[tuple[object, str], str] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in route.methods or ():
                    table[(route.endpoint, method)] = route.path  # prefix included
    return table


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; a given runtime is used as is (and not closed), else one is opened."""
    settings = runtime.settings if runtime is not None else (settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        active = runtime if runtime is not None else Runtime.open(settings)
        if owned:
            active.start_worker()
            active.start_services()
        app.state.runtime = active
        try:
            yield
        finally:
            if owned:
                active.close()

    app = FastAPI(
        title="earwitness",
        version="0.1.0",
        summary="Complaint call evidence: ring-count SLA, recordings, transcripts, cases.",
        lifespan=lifespan,
        # The permission matrix decides for every route before its view runs.
        dependencies=[Depends(authorize)],
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_problem_handlers(app)
    routers = (
        *(health.router, jobs.router, calls.router, recordings.router, cases.router),
        *(evidence.router, tracks.router, qa.router, search.router, followups.router),
        *(accounts.router, session.router),
        web.router,  # the browser UI's pages (earwitness/web)
    )
    for router in routers:
        app.include_router(router)
    app.state.route_paths = route_table(routers)
    web.install(app)  # static files and HTML error pages for browsers
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        idle_timeout_s=settings.upload_idle_timeout_s,
        min_rate_bps=settings.upload_min_bytes_per_s,
    )
    # A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding)
    # sends its own Host header: refused before anything else runs.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(RequestIdMiddleware)
    return app
