"""Authenticated test clients: a real user of a given role holding a real API key.

Auth is always on, so every API test authenticates the way automation does
(X-API-Key), as the role the test is about. The base URL is a loopback name so the
default allowed-hosts list (the DNS-rebinding defence) admits it unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.testclient import TestClient

from earwitness.accounts.keys import create_key
from earwitness.accounts.users import create_user
from earwitness.api import create_app
from earwitness.runtime import Runtime

BASE_URL = "http://localhost"
_serial = itertools.count(1)


def user_with_key(
    runtime: Runtime,
    role: str,
    *,
    username: str | None = None,
    password: str | None = None,
    pbx_agent: str | None = None,
    queues: Sequence[str] = (),
) -> tuple[str, str]:
    """Create a user of ``role`` with one API key; returns (username, key)."""
    name = username or f"{role}-{next(_serial)}"
    with runtime.db.session() as session:
        user = create_user(
            session, name, role, password=password, pbx_agent=pbx_agent, queues=queues
        )
        _, secret = create_key(session, user, "tests")
    return name, secret


def api_client(
    runtime: Runtime,
    role: str = "admin",
    *,
    app: FastAPI | None = None,
    username: str | None = None,
    pbx_agent: str | None = None,
    queues: Sequence[str] = (),
) -> TestClient:
    """A TestClient acting as a new user of ``role`` (use it as a context manager)."""
    _, key = user_with_key(runtime, role, username=username, pbx_agent=pbx_agent, queues=queues)
    return TestClient(
        app or create_app(runtime=runtime), base_url=BASE_URL, headers={"X-API-Key": key}
    )


def anonymous_client(runtime: Runtime, app: FastAPI | None = None) -> TestClient:
    return TestClient(app or create_app(runtime=runtime), base_url=BASE_URL)
