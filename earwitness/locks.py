"""Cross-process locks: one AMI tracker per PBX, one schema upgrade at a time.

PostgreSQL: a session advisory lock held on a connection of its own. The lock lives
exactly as long as that connection, so a leader that dies (``kill -9``, host lost)
releases it the moment PostgreSQL notices the connection is gone, and a standby
polling ``pg_try_advisory_lock`` takes over within a poll interval. The holder checks
its connection every poll too: if the connection dropped, the lock may already be
someone else's, and the holder stops leading at once.

SQLite (one host by definition): ``flock`` on a file next to the database, released
by the kernel when the holding process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Lock(Protocol):
    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PgAdvisoryLock:
    """``pg_try_advisory_lock`` on a connection checked out for as long as the lock is held."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name, self.key = engine, name, lock_key(name)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            got = bool(
                self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
                ).scalar()
            )
            self._conn.commit()
        except Exception:
            self._drop()
            raise
        return got

    def still_held(self) -> bool:
        """True while our connection is alive and PostgreSQL lists the lock as ours."""
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": self.key},
            ).scalar()
            self._conn.commit()
            return bool(held)
        except Exception:
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        except Exception:
            pass
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass


class FileLock:
    """``flock`` on ``path``: the kernel frees it when the holder process exits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leader_lock(engine: Engine, name: str, sqlite_dir: Path) -> Lock:
    """The right lock for the database in use."""
    if engine.dialect.name == "postgresql":
        # The key mixes in the schema, so separate databases/schemas never contend.
        with engine.connect() as conn:
            scope = conn.execute(text("SELECT current_database() || '.' || current_schema()"))
            where = str(scope.scalar())
        return PgAdvisoryLock(engine, f"{where}:{name}")
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return FileLock(sqlite_dir / f"leader-{digest}.lock")


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


class LeaderGate:
    """Runs a service only while this process holds the leader lock.

    A standby polls the lock every ``check_s``; on winning it builds a fresh service
    (which resynchronises from the source as after a reconnect) and starts it. The
    leader re-checks its lock just as often and stops the service the moment the lock
    is no longer provably its own.
    """

    def __init__(
        self, name: str, lock: Lock, factory: Callable[[], Service], check_s: float = 1.0
    ) -> None:
        self.name, self.lock, self.factory, self.check_s = name, lock, factory, check_s
        self.service: Service | None = None
        self.terms = 0  # times this process became leader
        self.tries = 0  # lock checks made (standby or leader)
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._became_leader = threading.Event()

    @property
    def is_leader(self) -> bool:
        return self.service is not None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"earwitness-leader-{self.name}", daemon=True
        )
        self._thread.start()

    def wait_leader(self, timeout: float) -> bool:
        return self._became_leader.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(20)
        self._step_down()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.service is None:
                    if self.lock.try_acquire():
                        log.info("%s: this process is now the leader", self.name)
                        self.terms += 1
                        # Visible (health, attributes) from the start: "connecting", not
                        # "standby", while it logs in.
                        self.service = self.factory()
                        self.service.start()
                        self._became_leader.set()
                elif not self.lock.still_held():
                    log.warning("%s: leader lock lost; stopping", self.name)
                    self._step_down()
                self.last_error = None
            except Exception as exc:  # database away: stay (or become) standby, retry
                self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("%s: leader lock check failed: %s", self.name, self.last_error)
                self._step_down()
            self.tries += 1
            self._stop.wait(self.check_s)

    def _step_down(self) -> None:
        service, self.service = self.service, None
        self._became_leader.clear()
        try:
            if service is not None:
                service.stop()
        finally:
            self.lock.release()  # also after a failed start; a no-op when not held

    def __getattr__(self, name: str) -> Any:
        """Reach through to the leading service (its client, tracker): the gate is meant to
        be transparent to code that inspects the running tracker."""
        service = self.__dict__.get("service")
        if service is None:
            raise AttributeError(f"{name!r}: {self.__dict__.get('name')} is not leading here")
        return getattr(service, name)

    def health(self) -> dict[str, Any]:
        service = self.service
        if service is not None:
            return {**service.health(), "role": "leader", "terms": self.terms}
        return {
            # healthy once it has looked at the lock: another process leads
            "ok": self.last_error is None and self.tries > 0,
            "configured": True,
            "role": "standby",
            "terms": self.terms,
            **({"error": self.last_error} if self.last_error else {}),
        }


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the schema-upgrade lock until it has committed.

    PostgreSQL: ``pg_advisory_xact_lock`` (released by the commit itself). SQLite: an
    exclusive ``flock`` on ``<db>.migrate.lock``, taken before the transaction begins and
    released only after it has committed: released before the commit, a waiting process read
    the old revision from its WAL snapshot and migrated a second time (seen under load).
    """
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path and path != ":memory:":
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            key = lock_key(f"migrate:{schema}")
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        yield conn
