"""Engine and session factory: SQLite (WAL, foreign keys) by default, PostgreSQL by URL.

SQLite gets WAL so the API can read while the worker writes, ``busy_timeout`` so
two writers wait instead of failing, and foreign keys because SQLite leaves them
off by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from earwitness.errors import DatabaseUnavailable


def redact_url(url: str) -> str:
    """Hide a password in a URL before it reaches a log line or an error."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine, preparing the directory of a SQLite file."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool as large as the server's concurrency: with the default 5 + 10, a 16-client
        # load closed and reopened connections past the pool (WAL pragmas included), ~9 % of
        # GET /api/calls in a profile. SQLite connections are cheap file handles.
        pool = {"pool_size": 20, "max_overflow": 20} if path and path != ":memory:" else {}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """An engine plus its session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise DatabaseUnavailable with one readable line if the database can't be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseUnavailable(
                f"database unreachable at {redact_url(self.url)}: {reason}"
            ) from None
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"database error at {redact_url(self.url)}: {exc}") from None

    def dispose(self) -> None:
        self.engine.dispose()
