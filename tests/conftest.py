"""Shared fixtures: real databases (SQLite file and a fresh PostgreSQL schema), runtimes, apps.

PostgreSQL is not optional: when 127.0.0.1:5432 is unreachable the storage tests
fail with a message saying so, instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from earwitness.config import Settings, load_settings
from earwitness.runtime import Runtime

PG_ADMIN_URL = os.environ.get(
    "EARWITNESS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_schema() -> Iterator[str]:
    admin = sa.create_engine(PG_ADMIN_URL)
    schema = f"ew_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({exc.orig}); the storage tests "
            "must run on PostgreSQL too. Start it or set EARWITNESS_TEST_PG_URL.",
            pytrace=False,
        )
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'earwitness.db'}"
    else:
        yield from _postgres_schema()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        worker_threads=1,
        job_poll_s=0.05,
        demo="never",
        timezone="UTC",  # results must not depend on the host's zone (EARWITNESS_TIMEZONE)
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", job_poll_s=0.05, demo="never", timezone="UTC")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings)
    try:
        yield rt
    finally:
        rt.close()
