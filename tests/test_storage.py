"""Schema and storage behaviour on both SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from earwitness.db import Database
from earwitness.errors import DatabaseUnavailable
from earwitness.migrations import current_revision, head_revision, upgrade
from earwitness.models import Base, Call, CallEvent, Queue
from earwitness.models.search import include_name


def test_migrations_reach_head_and_match_models(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db.engine)
    upgrade(db.engine)  # second start is a no-op, not an error
    assert current_revision(db.engine) == head_revision(db.engine)
    with db.engine.connect() as conn:
        # The project's own filter: hides only the search engine's SQL-made structures.
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    db.dispose()


def test_datetimes_round_trip_as_aware_utc(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db.engine)
    beijing = timezone(timedelta(hours=8))
    entered = datetime(2026, 11, 26, 9, 30, 5, 250000, tzinfo=beijing)
    with db.session() as s:
        q = Queue(name="complaints", sla_rings=3)
        call = Call(linkedid="1700000000.1", queue=q, entered_at=entered, caller="13800138000")
        call.events.append(
            CallEvent(
                at=entered, time_source="event", name="QueueCallerJoin", data={"Position": "1"}
            )
        )
        s.add(call)
    with db.session() as s:
        got = s.scalar(sa.select(Call))
        assert got is not None
        assert got.entered_at == entered
        assert got.entered_at.tzinfo is not None and got.entered_at.utcoffset() == timedelta(0)
        assert got.entered_at.hour == 1  # 09:30 in Beijing is 01:30 UTC
        assert got.events[0].data == {"Position": "1"}
    db.dispose()


def test_naive_datetimes_are_refused(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db.engine)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), db.session() as s:
        s.add(Call(linkedid="x", entered_at=datetime(2026, 1, 1)))
        s.flush()
    db.dispose()


def test_unique_linkedid_per_source(db_url: str) -> None:
    db = Database(db_url)
    upgrade(db.engine)
    now = datetime.now(UTC)
    with db.session() as s:
        s.add(Call(linkedid="dup", source="ami", entered_at=now))
        s.add(Call(linkedid="dup", source="queue_log", entered_at=now))
    with pytest.raises(sa.exc.IntegrityError), db.session() as s:
        s.add(Call(linkedid="dup", source="ami", entered_at=now))
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Call)) == 2
    db.dispose()


def test_sqlite_uses_wal_and_foreign_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_unreachable_database_is_one_clear_error() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable) as info:
        db.ping()
    assert "127.0.0.1:1" in info.value.detail and "\n" not in info.value.detail
