"""The FastAPI app factory; the runtime is opened in the lifespan so tests can inject one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from earwitness.api.middleware import BodySizeLimitMiddleware, RequestIdMiddleware
from earwitness.api.problems import install_problem_handlers
from earwitness.api.routes import (
    calls,
    cases,
    evidence,
    health,
    jobs,
    qa,
    recordings,
    search,
    tracks,
)
from earwitness.config import Settings, load_settings
from earwitness.runtime import Runtime


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
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_problem_handlers(app)
    for router in (health.router, jobs.router, calls.router, recordings.router):
        app.include_router(router)
    for router in (cases.router, evidence.router, tracks.router, qa.router, search.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
