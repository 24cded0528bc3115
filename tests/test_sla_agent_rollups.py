"""``group_by=agent`` from the agent roll-ups (``sla_agent_rollups``, issue 17) answers
exactly what the per-record reference and the per-call SQL path answer, on SQLite and
PostgreSQL, while calls change agent, ring-outs come and go and callers are still queued.

The data is ``test_sla_scale.fixed_calls`` (ring-outs by several agents, one person under
two PBX identifiers, callers waiting and talking, outbound calls, a US DST change). Every
comparison asserts that the roll-ups answered (``_from_rollups`` is not None), so a silent
fallback to the per-call path cannot make a test pass. Periods are whole local days in
UTC, Asia/Kathmandu (+05:45: quarter-hours at the ends) and America/New_York (across the
change to summer time), plus one that starts and ends inside quarter-hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from earwitness.models import Agent, AgentAttempt, Call, SlaAgentRollup, SlaDirtyInterval
from earwitness.runtime import Runtime
from earwitness.telephony import sla_rollups, sla_sql
from earwitness.telephony.persist import save_imported
from earwitness.telephony.queries import CallFilter
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.sla_sql import _from_rollups, sla_groups_python, sla_groups_sql
from earwitness.timezones import zone_named
from tests.test_sla_scale import DEFAULTS, START, same, store_fixed_calls

ZONES = ["UTC", "Asia/Kathmandu", "America/New_York"]
TARGETS = (None, "rescue")  # the default target, and a queue's (seconds, another cadence)


def local_days(zone_name: str, first: int, days: int) -> CallFilter:
    """Whole local days from ``START``'s date + ``first`` days, in ``zone_name``."""
    zone = zone_named(zone_name)
    day = START.date() + timedelta(days=first)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = (start.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=zone)
    return CallFilter(start=start, end=end)


def periods(zone_name: str) -> list[CallFilter]:
    return [
        CallFilter(),
        local_days(zone_name, 0, 4),
        local_days(zone_name, 1, 2),  # New York: 7-8 March, 23-hour 8 March
        CallFilter(
            start=START + timedelta(hours=30, minutes=7, seconds=3),
            end=START + timedelta(hours=75, microseconds=17),
        ),
    ]


def check(session: Session, zones: list[str] = ZONES) -> int:
    """Every period, zone and target: roll-ups == reference == per-call SQL; returns the
    number of ring-outs seen, so a caller can show the data exercises them."""
    ronas = 0
    for zone_name in zones:
        zone = zone_named(zone_name)
        for f in periods(zone_name):
            for queue in TARGETS:
                old = sla_groups_python(session, f, "agent", zone, DEFAULTS, queue)
                new = _from_rollups(session, f, "agent", zone, DEFAULTS, queue)
                assert new is not None, (f, zone_name, queue)
                same(new, old)
                same(sla_groups_sql(session, f, "agent", zone, DEFAULTS, queue), old)
                ronas += sum(g.rona_count for g in new)
    return ronas


def marks(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SlaDirtyInterval)) or 0


def refresh(runtime: Runtime) -> None:
    with runtime.db.engine.begin() as conn:
        sla_rollups.refresh(conn)


@pytest.fixture
def rolled(runtime: Runtime) -> Runtime:
    return store_fixed_calls(runtime)


def test_agent_rollups_equal_the_reference(rolled: Runtime) -> None:
    with rolled.db.session() as session:
        assert marks(session) > 0
        assert check(session) > 0  # ring-outs counted for the agents who missed them
        assert marks(session) == 0
        # Built for the targets asked for, at every grain, with unanswered calls (agent 0).
        kept = sla_rollups.kept_profiles(session, agents=True)
        assert kept == {
            sla_rollups.Profile.of(sla_sql.target_of(session, q, DEFAULTS)) for q in TARGETS
        }
        grains = set(session.scalars(select(SlaAgentRollup.grain).distinct()))
        assert grains == {sla_rollups.QUARTER, sla_rollups.HOUR, sla_rollups.DAY}
        assert session.scalar(select(func.count()).where(SlaAgentRollup.agent_id == 0))
        groups = sla_groups_python(session, CallFilter(), "agent", zone_named("UTC"), DEFAULTS)
        # One person, two identifiers: one group, as the reference counts them.
        assert "Lucy Zhao" in {g.key for g in groups}
        assert any(g.waiting for g in groups) and any(g.rona_count for g in groups)


def test_a_queue_filter_reads_the_calls(rolled: Runtime) -> None:
    """The agent rows total every queue: with a queue filter the roll-ups decline and the
    per-call path answers (the same figures)."""
    zone = zone_named("UTC")
    with rolled.db.session() as session:
        for f in (CallFilter(queue="refunds"), CallFilter(queues=("rescue", "vip"))):
            assert _from_rollups(session, f, "agent", zone, DEFAULTS, None) is None
            old = sla_groups_python(session, f, "agent", zone, DEFAULTS)
            same(sla_sql.sla_groups(session, f, "agent", zone, DEFAULTS, None), old)


def test_agent_changes_and_ring_outs_after_the_build(
    rolled: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes that move figures between agents, by the ORM and by plain SQL; read with the
    marked quarters taken from the calls, then again after the refresh."""
    with rolled.db.session() as session:
        check(session, ["UTC"])  # builds the agent rows
        assert marks(session) == 0
    with rolled.db.session() as session:
        agents = session.scalars(select(Agent).order_by(Agent.id)).all()
        answered = session.scalars(
            select(Call)
            .where(Call.kind != "outbound", Call.answered_at.is_not(None), Call.wait_s > 0)
            .order_by(Call.id)
        ).all()
        # Answered by someone else; answered by nobody known; no longer answered; moved in
        # time to another quarter and day (and agent); deleted with its ring-outs.
        answered[0].agent = next(a for a in agents if a.id != answered[0].agent_id)
        answered[1].agent = None
        answered[2].answered_at = None
        answered[2].agent = None
        answered[2].outcome = "abandoned"
        answered[2].ended_at = answered[2].entered_at + timedelta(seconds=answered[2].wait_s or 0)
        moved = timedelta(hours=26, minutes=3)
        answered[3].entered_at += moved
        assert answered[3].answered_at is not None
        answered[3].answered_at += moved
        if answered[3].ended_at is not None:
            answered[3].ended_at += moved
        answered[3].agent = agents[-1]
        session.delete(answered[4])
        session.flush()
        # Plain SQL, as bulk tools write: a ring-out added, one cancelled, one deleted.
        session.execute(
            insert(AgentAttempt).values(
                call_id=answered[5].id,
                agent_id=agents[0].id,
                rang_at=answered[5].entered_at,
                result="rona",
            )
        )
        ronas = session.scalars(
            select(AgentAttempt).where(AgentAttempt.result == "rona").order_by(AgentAttempt.id)
        ).all()
        session.execute(
            update(AgentAttempt).where(AgentAttempt.id == ronas[0].id).values(result="cancelled")
        )
        session.execute(delete(AgentAttempt).where(AgentAttempt.id == ronas[1].id))
    # A caller still queued and one talking to an agent, through the import path.
    fresh = START + timedelta(days=1, hours=3, minutes=14, seconds=59)
    with rolled.db.session() as session:
        save_imported(
            session,
            [
                CallRecord(
                    key="agent-late-1",
                    caller="1390000011",
                    queue="rescue",
                    agent=None,
                    entered_at=fresh,
                    answered_at=None,
                    ended_at=None,
                    outcome=CallOutcome.IN_PROGRESS,
                ),
                CallRecord(
                    key="agent-late-2",
                    caller="1390000012",
                    queue="vip",
                    agent="SIP/3001",
                    entered_at=fresh,
                    answered_at=fresh + timedelta(seconds=9),
                    ended_at=None,
                    outcome=CallOutcome.IN_PROGRESS,
                    rona=("PJSIP/2002",),
                ),
            ],
            DEFAULTS,
        )
    with rolled.db.session() as session, monkeypatch.context() as m:
        m.setattr(sla_sql, "_REFRESH_AT", 10**6)  # fold nothing: marked quarters from calls
        assert 0 < marks(session) <= 14
        check(session)
        assert 0 < marks(session) <= 14
    refresh(rolled)
    with rolled.db.session() as session:
        assert marks(session) == 0
        check(session)


def test_a_ring_out_given_to_another_agent_is_marked(rolled: Runtime) -> None:
    """Who missed a call decides its agent group: changing only ``agent_id`` of a ring-out
    marks the call's quarter (migration 0020), and the figures follow."""
    with rolled.db.session() as session:
        check(session, ["UTC"])
        rona = session.scalars(
            select(AgentAttempt).where(AgentAttempt.result == "rona").order_by(AgentAttempt.id)
        ).first()
        assert rona is not None
        other = session.scalar(select(Agent.id).where(Agent.id != rona.agent_id).limit(1))
        session.execute(
            update(AgentAttempt).where(AgentAttempt.id == rona.id).values(agent_id=other)
        )
        session.commit()
        assert marks(session) == 1
        check(session, ["UTC"])
    refresh(rolled)
    with rolled.db.session() as session:
        assert marks(session) == 0
        check(session, ["America/New_York"])


def test_services_start_builds_the_agent_rows(
    rolled: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a bulk load, starting the services builds the default target's agent rows, so
    the first agent report builds and refreshes nothing."""
    rolled.start_services()

    def no_refresh(*_args: object, **_kwargs: object) -> bool:
        raise AssertionError("the first report rebuilt roll-ups")

    monkeypatch.setattr(sla_rollups, "try_refresh", no_refresh)
    with rolled.db.session() as session:
        f = local_days("Asia/Kathmandu", 0, 4)
        zone = zone_named("Asia/Kathmandu")
        new = _from_rollups(session, f, "agent", zone, DEFAULTS, None)
        assert new is not None
        same(new, sla_groups_python(session, f, "agent", zone, DEFAULTS))
