"""The SQL-aggregated SLA (issue 17) gives the answers of the per-record Python path,
and the plain-row call list the answers of the ORM one.

A fixed, seeded set of calls — several queues with targets in rings, seconds and both,
cadences changed after the calls were saved, calls without a queue, every outcome, waits on
exact ring boundaries, callers still waiting and talking, ring-outs, one person under two
PBX identifiers, calls earwitness placed itself, periods across DST changes — is stored in
a real SQLite and PostgreSQL database, then every ``group_by`` in several zones (whole-hour,
half-hour and quarter-hour offsets, DST) and with each filter is computed both ways.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from earwitness.models import Call, Queue, Recording
from earwitness.runtime import Runtime
from earwitness.telephony.identities import set_name
from earwitness.telephony.persist import SlaDefaults, save_imported
from earwitness.telephony.queries import CallFilter, call_page, call_summary, filtered_calls
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.sla import GROUP_BYS
from earwitness.telephony.sla_sql import sla_groups, sla_groups_python
from earwitness.timezones import zone_named
from tests.accounts_helpers import api_client

START = datetime(2026, 3, 6, tzinfo=UTC)  # the US springs forward on 8 March 2026
DEFAULTS = SlaDefaults(rings=3, cadence="cn")
QUEUES = ["complaints", "rescue", "refunds", "vip", None]
AGENTS = ["PJSIP/2001", "PJSIP/2002", "PJSIP/lucy-desk", "SIP/3001", "Local/9@agents"]
#: Waits that sit on ring boundaries of 3, 4.5, 5 and 6 s cadences, and beside them.
EDGES = [0.0, 0.000001, 3.0, 4.5, 5.0, 5.000001, 6.0, 10.0, 15.0, 15.000001, 18.0, 20.0]


def fixed_calls(n: int = 360, seed: int = 17) -> list[CallRecord]:
    """Pure: the same seed gives the same calls."""
    rng = random.Random(seed)
    outcomes = [CallOutcome.ANSWERED] * 6 + [
        CallOutcome.ABANDONED,
        CallOutcome.ABANDONED,
        CallOutcome.TIMEOUT,
        CallOutcome.BUSY,
        CallOutcome.UNAVAILABLE,
        CallOutcome.FAILED,
        CallOutcome.IN_PROGRESS,
    ]
    calls = []
    for k in range(n):
        # Two days either side of the DST change, at microsecond resolution.
        entered = START + timedelta(
            seconds=rng.randrange(4 * 86_400), microseconds=rng.randrange(10**6)
        )
        wait = rng.choice(EDGES) if rng.random() < 0.4 else round(rng.expovariate(1 / 20), 6)
        outcome = rng.choice(outcomes)
        talking = outcome is CallOutcome.IN_PROGRESS and rng.random() < 0.5
        answered = outcome is CallOutcome.ANSWERED or talking
        answered_at = entered + timedelta(seconds=wait) if answered else None
        if outcome is CallOutcome.IN_PROGRESS:
            ended_at = None
        elif answered_at is not None:
            ended_at = answered_at + timedelta(seconds=rng.uniform(10, 300))
        else:
            ended_at = entered + timedelta(seconds=wait)
        rona = tuple(rng.sample(AGENTS, rng.choice([0, 0, 0, 1, 2])))
        calls.append(
            CallRecord(
                key=f"scale-{k}",
                caller=f"1380000{k:04d}",
                queue=rng.choice(QUEUES),
                agent=rng.choice(AGENTS) if answered else None,
                entered_at=entered,
                answered_at=answered_at,
                ended_at=ended_at,
                outcome=outcome,
                rona=rona,
            )
        )
    return calls


@pytest.fixture
def stored(runtime: Runtime) -> Runtime:
    return store_fixed_calls(runtime)


def store_fixed_calls(runtime: Runtime, n: int = 360) -> Runtime:
    """``fixed_calls`` saved, then targets, names and kinds changed behind them."""
    with runtime.db.session() as session:
        save_imported(session, fixed_calls(n), DEFAULTS)
        # Targets and cadences changed after the calls were saved: the stored rings are stale.
        targets = {
            "complaints": {"sla_rings": 3, "sla_seconds": None, "cadence": "us"},
            "rescue": {"sla_rings": None, "sla_seconds": 10.0, "cadence": "uk"},
            "refunds": {"sla_rings": 2, "sla_seconds": 9.0, "cadence": "es"},
            "vip": {"sla_rings": None, "sla_seconds": None, "cadence": "jp"},
        }
        for name, values in targets.items():
            session.execute(update(Queue).where(Queue.name == name).values(**values))
        # One person under two identifiers; some calls earwitness placed itself.
        set_name(session, "PJSIP/2001", "Lucy Zhao")
        set_name(session, "PJSIP/lucy-desk", "Lucy Zhao")
        ids = session.scalars(select(Call.id).order_by(Call.id)).all()
        session.execute(update(Call).where(Call.id.in_(ids[::13])).values(kind="outbound"))
        session.commit()
    return runtime


def same(new: list[Any], old: list[Any]) -> None:
    """Equal figures: counts, keys, histograms and maxima exactly, means to float noise."""
    assert [g.key for g in new] == [g.key for g in old]
    for a, b in zip(new, old, strict=True):
        da, db = asdict(a), asdict(b)
        for name in ("asa_s", "avg_wait_s"):
            got, want = da.pop(name), db.pop(name)
            assert (got is None and want is None) or got == pytest.approx(want, rel=1e-12), name
        assert da == db, a.key


FILTERS = [
    CallFilter(),
    CallFilter(start=START + timedelta(hours=30), end=START + timedelta(hours=75)),
    CallFilter(queue="refunds"),
    CallFilter(agent="Lucy Zhao"),
    CallFilter(agent="PJSIP/2002", start=START, end=START + timedelta(days=3)),
    CallFilter(queues=("rescue", "vip")),
]
ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]


@pytest.mark.parametrize("group_by", GROUP_BYS)
def test_sql_aggregation_equals_the_python_path(stored: Runtime, group_by: Any) -> None:
    with stored.db.session() as session:
        for f in FILTERS:
            for zone_name in ZONES:
                zone = zone_named(zone_name)
                for queue in (None, "rescue") if group_by != "queue" else (None, f.queue):
                    old = sla_groups_python(session, f, group_by, zone, DEFAULTS, queue)
                    new = sla_groups(session, f, group_by, zone, DEFAULTS, queue)
                    same(new, old)
        # The data really exercises the rules: several groups, short abandons, ring-outs,
        # callers still waiting, ring counts at the per-queue cadences.
        every = sla_groups_python(session, CallFilter(), group_by, zone_named("UTC"), DEFAULTS)
        assert sum(g.abandoned_first_ring for g in every) > 0
        assert sum(g.rona_count for g in every) > 0 and sum(g.waiting for g in every) > 0


def test_nobody_visible_and_empty_periods(stored: Runtime) -> None:
    zone = zone_named("Asia/Shanghai")
    empty = CallFilter(start=START - timedelta(days=9), end=START - timedelta(days=8))
    with stored.db.session() as session:
        for group_by in GROUP_BYS:
            for f in (None, empty):
                old = sla_groups_python(session, f, group_by, zone, DEFAULTS, "vip")
                same(sla_groups(session, f, group_by, zone, DEFAULTS, "vip"), old)


def test_api_sla_serves_the_same_figures(stored: Runtime) -> None:
    """The endpoint (scoping, period parsing, JSON) on top of the SQL path."""
    params = {"from": "2026-03-06", "to": "2026-03-09", "tz": "America/New_York"}
    zone = zone_named("America/New_York")
    with stored.db.session() as session, api_client(stored) as client:
        for group_by in GROUP_BYS:
            body = client.get("/api/sla", params={**params, "group_by": group_by}).json()
            f = CallFilter(
                start=datetime.fromisoformat(body["period"]["from"]),
                end=datetime.fromisoformat(body["period"]["to"]),
            )
            old = sla_groups_python(session, f, group_by, zone, DEFAULTS)
            assert [g["key"] for g in body["groups"]] == [g.key for g in old]
            assert [g["offered"] for g in body["groups"]] == [g.offered for g in old]
            assert [g["service_level_pct"] for g in body["groups"]] == [
                g.service_level_pct for g in old
            ]
            # Every field as FastAPI's own encoder wrote it before the route encoded once.
            new = sla_groups(session, f, group_by, zone, DEFAULTS)
            encoded = json.loads(json.dumps(jsonable_encoder([asdict(g) for g in new])))
            assert body["groups"] == encoded


def old_call_page(session: Any, f: CallFilter, limit: int, offset: int) -> list[dict[str, Any]]:
    """The list page as ``GET /api/calls`` built it before issue 17 (ORM rows)."""
    rows = session.scalars(
        filtered_calls(f)
        .options(selectinload(Call.recordings))
        .order_by(Call.entered_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    ).unique()
    return [call_summary(r) for r in rows]


def test_call_page_equals_the_orm_summaries(stored: Runtime) -> None:
    with stored.db.session() as session:
        ids = session.scalars(select(Call.id).order_by(Call.id)).all()
        for n, call_id in enumerate(ids[::7]):  # some calls with one, some with two recordings
            session.add_all([Recording(call_id=call_id) for _ in range(1 + n % 2)])
        session.commit()
        for f in FILTERS:
            for limit, offset in ((50, 0), (7, 20), (500, 0)):
                new = call_page(session, f, limit, offset)
                assert new == old_call_page(session, f, limit, offset)
        assert any(c["recording_id"] for c in call_page(session, CallFilter(), 500, 0))
