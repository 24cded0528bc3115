"""The quarter-hour SLA roll-ups (issue 17) answer exactly what the per-record reference
answers, before and after the calls change under them, on SQLite and PostgreSQL.

The data is ``test_sla_scale.fixed_calls`` (targets in rings, seconds and both, cadences
changed after saving, waits on ring boundaries, abandons at 0 s and on the first-ring
limit, callers still waiting and talking, ring-outs, outbound calls, a DST change). Each
comparison also asserts that the roll-ups really answered (``_from_rollups`` is not None),
so a silent fallback to the per-call path cannot make the test pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from earwitness.models import (
    Agent,
    AgentAttempt,
    Call,
    Queue,
    SlaAgentRollup,
    SlaDirtyInterval,
    SlaInterval,
)
from earwitness.runtime import Runtime
from earwitness.telephony import sla_rollups, sla_sql
from earwitness.telephony.identities import set_name
from earwitness.telephony.persist import save_imported
from earwitness.telephony.queries import CallFilter
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.sla import GroupBy
from earwitness.telephony.sla_sql import _cover, _from_rollups, sla_groups, sla_groups_python
from earwitness.timezones import zone_named
from tests.test_sla_scale import DEFAULTS, START, same, store_fixed_calls

GROUP_BYS: tuple[GroupBy, ...] = ("total", "queue", "hour", "day", "agent")
FILTERS = [
    CallFilter(),
    # Whole days in Shanghai: day rows in the middle, hours and quarters at the ends.
    CallFilter(start=START - timedelta(hours=8), end=START + timedelta(days=3, hours=16)),
    # Not on quarter-hours: the partial quarters at both ends are read from the calls.
    CallFilter(
        start=START + timedelta(hours=30, minutes=7, seconds=3),
        end=START + timedelta(hours=75, microseconds=17),
    ),
    CallFilter(queue="refunds"),
    CallFilter(queues=("rescue", "vip"), start=START, end=START + timedelta(days=2)),
]
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kathmandu"]
CHANGED_ZONES = ["Asia/Shanghai", "America/New_York"]  # hour rows, fixed offset and DST


def check(session: Session, filters: list[CallFilter] = FILTERS, zones: list[str] = ZONES) -> None:
    for group_by in GROUP_BYS:
        for f in filters:
            for zone_name in zones:
                zone = zone_named(zone_name)
                for queue in (None, "rescue") if group_by in ("total", "agent") else (None,):
                    old = sla_groups_python(session, f, group_by, zone, DEFAULTS, queue)
                    new = _from_rollups(session, f, group_by, zone, DEFAULTS, queue)
                    if group_by == "agent" and (f.queue or f.queues):
                        # The agent rows total every queue: a queue filter reads the calls.
                        assert new is None, f
                        new = sla_groups(session, f, group_by, zone, DEFAULTS, queue)
                    assert new is not None, (group_by, f, zone_name)
                    same(new, old)


def refresh(runtime: Runtime) -> None:
    with runtime.db.engine.begin() as conn:
        sla_rollups.refresh(conn)


def marks(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SlaDirtyInterval)) or 0


@pytest.fixture
def rolled(runtime: Runtime) -> Runtime:
    store_fixed_calls(runtime)
    return runtime


@pytest.fixture
def small(runtime: Runtime) -> Runtime:
    """Fewer calls, for the tests about transactions rather than figures."""
    store_fixed_calls(runtime, 80)
    return runtime


def test_rollups_equal_the_reference(rolled: Runtime) -> None:
    with rolled.db.session() as session:
        assert marks(session) > 0  # the triggers marked every quarter the import wrote
        check(session)  # the first read builds the profiles it needs and refreshes
        assert marks(session) == 0
        rows = session.scalar(select(func.count()).select_from(SlaInterval)) or 0
        assert rows > 0
        # Several grains and the all-queues rows really exist (what makes a month cheap).
        grains = set(session.scalars(select(SlaInterval.grain).distinct()))
        assert grains == {sla_rollups.QUARTER, sla_rollups.HOUR, sla_rollups.DAY}


def test_changes_after_the_rollups_were_built(
    rolled: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kind of write, by the ORM and by plain SQL, then read before and after a
    refresh: marked quarters come from the calls, refreshed ones from the roll-ups."""
    with rolled.db.session() as session:
        check(session, FILTERS[:2], ["Asia/Shanghai"])  # builds the roll-ups
        assert marks(session) == 0
    with rolled.db.session() as session:
        calls = session.scalars(select(Call).where(Call.kind != "outbound").order_by(Call.id)).all()
        # Calls updated after they were saved: answered later, abandoned instead, moved in
        # time (to another quarter and day), moved to another queue, made outbound.
        calls[0].answered_at = calls[0].entered_at + timedelta(seconds=15)
        calls[0].ended_at = calls[0].entered_at + timedelta(seconds=75)
        calls[0].wait_s = 15.0
        calls[0].outcome = "answered"
        calls[1].answered_at = None
        calls[1].agent = None
        calls[1].outcome = "abandoned"
        calls[1].ended_at = calls[1].entered_at + timedelta(seconds=5)
        calls[1].wait_s = 5.0
        moved = timedelta(hours=26, minutes=3)
        calls[2].entered_at += moved
        calls[2].answered_at = calls[2].answered_at + moved if calls[2].answered_at else None
        calls[2].ended_at = calls[2].ended_at + moved if calls[2].ended_at else None
        calls[3].queue = session.scalar(select(Queue).where(Queue.name == "vip"))
        calls[4].kind = "outbound"
        session.delete(calls[5])  # deleted calls (with their attempts)
        session.flush()
        # Plain SQL, as bulk tools write: a ring-out, an outcome, a new call in progress.
        agent_id = session.scalar(select(Agent.id).limit(1))
        session.execute(
            insert(AgentAttempt).values(
                call_id=calls[6].id, agent_id=agent_id, rang_at=calls[6].entered_at, result="rona"
            )
        )
        abandoned = next(c for c in calls[7:] if c.outcome == "abandoned")
        session.execute(update(Call).where(Call.id == abandoned.id).values(outcome="timeout"))
        session.execute(
            update(AgentAttempt)
            .where(AgentAttempt.result == "rona", AgentAttempt.call_id == calls[8].id)
            .values(result="cancelled")
        )
    # New calls, through the same import path: an abandon at 0 s, one exactly on the
    # first-ring limit of the uk cadence (3 s), and a caller still waiting.
    fresh = START + timedelta(days=1, hours=3, minutes=14, seconds=59)
    with rolled.db.session() as session:
        save_imported(
            session,
            [
                CallRecord(
                    key="late-1",
                    caller="1390000001",
                    queue="rescue",
                    agent=None,
                    entered_at=fresh,
                    answered_at=None,
                    ended_at=fresh,
                    outcome=CallOutcome.ABANDONED,
                ),
                CallRecord(
                    key="late-2",
                    caller="1390000002",
                    queue="rescue",
                    agent=None,
                    entered_at=fresh,
                    answered_at=None,
                    ended_at=fresh + timedelta(seconds=3),
                    outcome=CallOutcome.ABANDONED,
                ),
                CallRecord(
                    key="late-3",
                    caller="1390000003",
                    queue="complaints",
                    agent=None,
                    entered_at=fresh,
                    answered_at=None,
                    ended_at=None,
                    outcome=CallOutcome.IN_PROGRESS,
                ),
            ],
            DEFAULTS,
        )
    with rolled.db.session() as session:
        # A queue target changed after the roll-ups were built: another profile is read.
        session.execute(
            update(Queue)
            .where(Queue.name == "rescue")
            .values(sla_rings=2, sla_seconds=7.5, cadence="us")
        )
    with rolled.db.session() as session, monkeypatch.context() as m:
        m.setattr(sla_sql, "_REFRESH_AT", 10**6)  # builds the new profile, folds nothing
        assert 0 < marks(session) <= 12
        check(session, FILTERS, CHANGED_ZONES)  # marked quarters from the calls, rest stale
        assert 0 < marks(session) <= 12
    refresh(rolled)
    with rolled.db.session() as session:
        assert marks(session) == 0
        check(session, FILTERS, CHANGED_ZONES)  # the same from the refreshed roll-ups


def test_an_open_write_in_the_same_session_is_counted_and_does_not_block(
    small: Runtime,
) -> None:
    """A caller with unflushed-then-flushed writes in its own transaction: the read sees
    them (the marks are visible to it), and the refresh it would try gives up at once
    instead of waiting for the caller's own lock."""
    with small.db.session() as session:
        check(session, FILTERS[:1], ["UTC"])
    with small.db.session() as session:
        for k in range(12):  # more marked quarters than a read computes before refreshing
            at = START + timedelta(hours=k, minutes=20)
            session.add(
                Call(
                    linkedid=f"open-{k}",
                    entered_at=at,
                    answered_at=at + timedelta(seconds=4),
                    ended_at=at + timedelta(seconds=60),
                    wait_s=4.0,
                    outcome="answered",
                )
            )
        session.flush()
        t0 = datetime.now(UTC)
        check(session, FILTERS[:1], ["UTC"])
        assert datetime.now(UTC) - t0 < timedelta(seconds=60)
        assert marks(session) >= 12
        session.rollback()
    with small.db.session() as session:
        check(session, FILTERS[:1], ["UTC"])


@pytest.mark.parametrize(
    ("b0", "b1", "marked", "grains"),
    [
        (0, 96 * 3, [], [0, 1, 2]),
        (5, 96 * 3 + 7, [97, 200], [0, 1, 2]),
        (5, 96 * 3 + 7, [97, 200], [0, 1]),
        (5, 96 * 3 + 7, [97, 200], [0]),
        (3, 4, [3], [0, 1, 2]),
    ],
)
def test_cover_takes_every_unmarked_quarter_once(
    b0: int, b1: int, marked: list[int], grains: list[int]
) -> None:
    pieces = _cover(b0, b1, marked, grains)
    width = {0: 1, 1: 4, 2: 96}
    covered: list[int] = []
    for grain, spans in pieces.items():
        assert grain in grains
        for lo, hi in spans:
            for b in range(lo, hi):
                covered += range(b * width[grain], (b + 1) * width[grain])
    assert sorted(covered) == [q for q in range(b0, b1) if q not in marked]


def test_deleting_everything_leaves_nothing(small: Runtime) -> None:
    with small.db.session() as session:
        check(session, FILTERS[:1], ["UTC"])
        for call in session.scalars(select(Call)).unique().all():
            session.delete(call)
    with small.db.session() as session:
        for group_by in GROUP_BYS:
            got: Any = sla_groups(
                session, CallFilter(), group_by, zone_named("UTC"), DEFAULTS, None
            )
            want = sla_groups_python(session, CallFilter(), group_by, zone_named("UTC"), DEFAULTS)
            same(got, want)
        refresh(small)
        assert session.scalar(select(func.count()).select_from(SlaInterval)) == 0
        assert session.scalar(select(func.count()).select_from(SlaAgentRollup)) == 0


def test_services_start_builds_the_rollups_reports_will_read(rolled: Runtime) -> None:
    """After a bulk load (every quarter marked, no profile kept) starting the services
    folds the marks and builds each queue's profile, so the first report rebuilds nothing."""
    with rolled.db.session() as session:
        assert marks(session) > sla_sql._REFRESH_AT
        kept, _ = sla_sql._rollup_state(session)
    rolled.start_services()
    with rolled.db.session() as session:
        kept_after, marked = sla_sql._rollup_state(session)
        assert marked == []
        queues = session.scalars(select(Queue)).all()
        wanted = {sla_rollups.Profile.of(sla_sql.target_for(q, DEFAULTS)) for q in queues} | {
            sla_rollups.Profile.of(sla_sql.target_for(None, DEFAULTS))
        }
        assert wanted <= kept_after
        assert not wanted <= kept
        # The agent rows of the default target too (what group_by=agent reads).
        default = sla_rollups.Profile.of(sla_sql.target_for(None, DEFAULTS))
        assert sla_rollups.kept_profiles(session, agents=True) == {default}
    check_session_once(rolled)


def check_session_once(runtime: Runtime) -> None:
    with runtime.db.session() as session:
        check(session, FILTERS[:2], ["Asia/Shanghai"])


def test_agents_sharing_a_display_name_are_counted_together(rolled: Runtime) -> None:
    """Two PBX identities named as one person: the hour/day agent counts of the roll-ups
    add them up exactly as the per-record reference does."""
    with rolled.db.session() as session:
        interfaces = session.scalars(select(Agent.interface).order_by(Agent.id)).all()[:2]
        assert len(interfaces) == 2
        for interface in interfaces:
            set_name(session, interface, "Lucy Zhao")
        session.commit()
        check(session, FILTERS[:2], ["Asia/Shanghai", "UTC"])
        hours = sla_groups(session, FILTERS[1], "hour", zone_named("Asia/Shanghai"), DEFAULTS, None)
        assert any("Lucy Zhao" in g.answered_by_agent for g in hours)
