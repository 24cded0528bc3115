"""FastAPI dependencies: the runtime, a database session per request, the caller's identity.

Who may call a route is decided before the view by :func:`earwitness.api.auth.authorize`
from :mod:`earwitness.api.permissions`; views take ``PrincipalDep`` to know *who* acts
(custody entries, row scope, masking), never to check roles themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from earwitness.accounts.principal import Principal
from earwitness.api.auth import PrincipalDep
from earwitness.runtime import Runtime

__all__ = ["Principal", "PrincipalDep", "RuntimeDep", "SessionDep", "quick_read"]

P = ParamSpec("P")
T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    """Async though it awaits nothing: FastAPI runs a plain ``def`` dependency in its
    threadpool, a hop (and a GIL hand-over among 16 busy threads) per request for an
    attribute lookup."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def quick_read(
    runtime: Runtime, read: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run a short read-only query where it costs least: on SQLite here, on the event loop;
    on a server database in the threadpool.

    An SQLite read in WAL mode never waits for a lock and is CPU work in this process (a
    page of 50 calls: 0.9 ms); sent to the threadpool, 16 concurrent requests each hand the
    GIL over once per row fetched (sqlite3 releases it for every step): 380 context switches
    and 5-8 ms of CPU per request, a third of the throughput (issue 17, benchmarks/README).
    A server database waits on the network, which must not stall the loop; and anything
    that writes (SQLite's write lock can wait 30 s) stays in the threadpool everywhere."""
    if runtime.db.is_sqlite:
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)
