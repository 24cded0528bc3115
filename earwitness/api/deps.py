"""FastAPI dependencies: the runtime, a database session per request, the caller's identity.

Who may call a route is decided before the view by :func:`earwitness.api.auth.authorize`
from :mod:`earwitness.api.permissions`; views take ``PrincipalDep`` to know *who* acts
(custody entries, row scope, masking), never to check roles themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from earwitness.accounts.principal import Principal
from earwitness.api.auth import PrincipalDep
from earwitness.runtime import Runtime

__all__ = ["Principal", "PrincipalDep", "RuntimeDep", "SessionDep"]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
