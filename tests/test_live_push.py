"""The wallboard is pushed, and bursts of tracker saves share a transaction (issue 17).

- The tracker's writer saves what queued up in one transaction: the database it leaves is
  the one the one-transaction-per-save path leaves (captured AMI sessions replayed through
  both), order kept, and one failing save loses nothing else.
- ``/api/live/stream`` sends a snapshot as soon as a save is committed, long before its
  ``interval_s``; another process's commits reach it too (PostgreSQL LISTEN, SQLite
  data_version).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from earwitness.config import Settings, load_settings
from earwitness.db import Database
from earwitness.migrations import upgrade
from earwitness.models import AgentStateSpan, Call
from earwitness.runtime import Runtime
from earwitness.telephony.ami.protocol import AmiMessage
from earwitness.telephony.calls import TrackedCall
from earwitness.telephony.persist import DbWriter, LiveChanges, SessionWrite, commit_writes
from earwitness.telephony.queries import CallFilter, call_records, live_records
from earwitness.telephony.service import PbxService
from tests.accounts_helpers import api_client
from tests.ami_replay import DATA, connections
from tests.polling import wait_until

# Single-connection captures (no restart: the replay below does no resync).
SCENARIOS = (
    *("queue_rona", "attended_transfer", "blind_transfer", "queue_overflow"),
    *("paused_member", "queue_abandon"),
)


def _pbx_settings(url: str, data: Path) -> Settings:
    return load_settings(
        data_dir=data,
        database_url=url,
        demo="never",
        timezone="UTC",
        ami_host="127.0.0.1",
        ami_user="earwitness",
        ami_secret="unused",
        ami_record_calls=False,
    )


def _messages() -> list[AmiMessage]:
    from earwitness.telephony.ami.protocol import AmiParser

    out: list[AmiMessage] = []
    for name in SCENARIOS:
        (chunk,) = connections((DATA / f"{name}.raw").read_bytes())
        out += [
            m
            for m in AmiParser().feed(chunk, received_at=0.0)
            if m.kind == "event" and m.get("Timestamp") is not None
        ]
    return out


def _feed(service: PbxService, messages: list[AmiMessage]) -> None:
    async def run() -> None:
        for message in messages:
            await service._on_event(message)

    asyncio.run(run())


def _dump(db: Database) -> dict[str, Any]:
    """Everything the tracker stored, in a comparable form (ids left out)."""
    with db.session() as session:
        calls = {}
        for c in session.scalars(select(Call)).all():
            calls[c.linkedid] = {
                "row": (c.kind, c.caller, c.caller_uniqueid, c.outcome, c.entered_at,
                        c.answered_at, c.ended_at, c.wait_s, c.rings, c.cadence,
                        c.transferred_to, c.time_source, c.hangup_cause,
                        c.queue.name if c.queue else None,
                        c.agent.interface if c.agent else None),
                "events": [(e.at, e.name, e.channel, json.dumps(e.data, sort_keys=True))
                           for e in sorted(c.events, key=lambda e: e.id)],
                "attempts": [(a.agent.interface, a.rang_at, a.ended_at, a.result)
                             for a in c.attempts],
                "visits": [(v.queue.name, v.joined_at, v.left_at, v.result) for v in c.visits],
                "transfers": [(t.kind, t.at, t.transferer, t.target, t.answered_at)
                              for t in c.transfers],
            }  # fmt: skip
        spans = sorted(
            (s.agent.interface, s.state, s.reason or "", s.started_at, s.ended_at or s.started_at)
            for s in session.scalars(select(AgentStateSpan)).all()
        )
    return {"calls": calls, "spans": spans}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The replay saved the old way: each write in its own transaction (no writer thread)."""
    tmp_path = tmp_path_factory.mktemp("reference")
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    db = Database(url)
    upgrade(db.engine)
    try:
        _feed(PbxService(_pbx_settings(url, tmp_path / "ref"), db), _messages())
        return _dump(db)
    finally:
        db.dispose()


class Gate:
    """Holds the writer thread until released, so the writes behind it queue up."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        assert self.release.wait(30), "gate never released"


@pytest.fixture
def commits(runtime: Runtime) -> Iterator[list[int]]:
    seen: list[int] = []
    listener = lambda _conn: seen.append(1)  # noqa: E731
    event.listen(runtime.db.engine, "commit", listener)
    yield seen
    event.remove(runtime.db.engine, "commit", listener)


def _batched_service(runtime: Runtime, tmp_path: Path) -> tuple[PbxService, Gate]:
    service = PbxService(_pbx_settings(runtime.db.url, tmp_path / "pbx"), runtime.db)
    service._writer = DbWriter(runtime.db)
    gate = Gate()
    service._writer.put(gate)
    assert gate.entered.wait(10)
    return service, gate


def test_batched_writer_stores_what_one_by_one_saves_store(
    runtime: Runtime, tmp_path: Path, reference: dict[str, Any], commits: list[int]
) -> None:
    service, gate = _batched_service(runtime, tmp_path)
    assert service._writer is not None
    _feed(service, _messages())
    queued = service._writer.backlog
    assert queued > 50  # the saves wait behind the gate (plus the gate itself)
    before = len(commits)
    gate.release.set()
    wait_until(lambda: service._writer.backlog == 0, 30, "the writer to drain")  # type: ignore[union-attr]
    service._writer.close()
    batches = len(commits) - before
    assert batches <= -(-(queued - 1) // DbWriter.MAX_BATCH) + 1, (batches, queued)
    assert service.errors == 0 and service.saved > 0
    dump = _dump(runtime.db)
    assert dump["calls"].keys() == reference["calls"].keys()
    for linkedid, want in reference["calls"].items():
        assert dump["calls"][linkedid] == want, linkedid
    assert dump["spans"] == reference["spans"]
    # Each AMI event noted on a call is stored once, however often the call was saved.
    for linkedid, call in dump["calls"].items():
        assert len(set(call["events"])) == len(call["events"]), linkedid


def test_one_failing_save_does_not_lose_the_batch(
    runtime: Runtime, tmp_path: Path, reference: dict[str, Any], commits: list[int]
) -> None:
    service, gate = _batched_service(runtime, tmp_path)
    assert service._writer is not None
    messages = _messages()
    half = len(messages) // 2
    _feed(service, messages[:half])
    failures: list[str] = []

    def broken(session: Session) -> None:
        session.add(Call(source="ami", linkedid="half-written", entered_at=datetime.now(UTC)))
        session.flush()
        raise RuntimeError("this save breaks")

    service._writer.put(SessionWrite(broken, lambda: failures.append("x"), "broken"))
    _feed(service, messages[half:])
    assert service._writer.backlog > 2  # the broken write sits in the batch with others
    gate.release.set()
    wait_until(lambda: service._writer.backlog == 0, 30, "the writer to drain")  # type: ignore[union-attr]
    service._writer.close()
    assert failures == ["x"] and service.errors == 0
    assert len(commits) > 1  # the batch fell back to one transaction per write
    dump = _dump(runtime.db)
    assert dump["calls"] == reference["calls"]  # nothing lost, nothing half-written
    assert dump["spans"] == reference["spans"]


def _queue_call(linkedid: str, caller: str) -> TrackedCall:
    now = datetime.now(UTC)
    return TrackedCall(linkedid, kind="queue", caller=caller, queue="complaints", entered_at=now)


def _snapshots(lines: Iterator[str]) -> Iterator[tuple[float, dict[str, Any]]]:
    for line in lines:
        if line.startswith("data: "):
            yield time.monotonic(), json.loads(line[6:])


def test_stream_pushes_a_save_long_before_its_interval(runtime: Runtime, tmp_path: Path) -> None:
    service, gate = _batched_service(runtime, tmp_path)
    assert service._writer is not None
    callers = {f"1390000{n:04d}" for n in range(20)}
    interval = 30.0
    try:
        with (
            api_client(runtime) as api,
            api.stream(
                "GET", "/api/live/stream", params={"interval_s": interval, "max_events": 10}
            ) as stream,
        ):
            snapshots = _snapshots(stream.iter_lines())
            _, first = next(snapshots)
            assert first["waiting"] == []
            for n, caller in enumerate(sorted(callers)):  # a burst: one transaction
                service._save(_queue_call(f"push-{n}", caller))
            released = time.monotonic()
            gate.release.set()
            for at, snapshot in snapshots:  # noqa: B007 - a stray earlier wake-up may come first
                if {w["caller"] for w in snapshot["waiting"]} == callers:
                    break
            else:
                raise AssertionError("the stream ended before showing the saved calls")
            assert at - released < 5.0 < interval  # pushed, not the heartbeat
        with runtime.db.session() as session:  # the wallboard's eager read, same records
            old = call_records(session, CallFilter(outcome="in_progress"))
            assert live_records(session) == old and len(old) == len(callers)
    finally:
        gate.release.set()
        service._writer.close()


def test_changes_wait_wakes_on_bump_and_times_out_without() -> None:
    changes = LiveChanges()

    async def run() -> tuple[bool, bool, float]:
        seen = changes.version
        timer = threading.Timer(0.05, changes.bump)
        timer.start()
        t0 = time.monotonic()
        woke = await changes.wait(seen, 20.0)
        took = time.monotonic() - t0
        idle = await changes.wait(changes.version, 0.05)
        return woke, idle, took

    woke, idle, took = asyncio.run(run())
    assert woke and took < 5.0 and not idle


def test_other_processes_commits_reach_a_follower(runtime: Runtime) -> None:
    """A second engine on the same database stands for ``earwitness tracker`` in another
    process: its commits must wake this process's streams (LISTEN or data_version)."""
    changes = LiveChanges()  # not the module's: only the follower can move it
    other = Database(runtime.db.url)
    saves = iter(range(1000))

    def commit_elsewhere() -> None:
        linkedid = f"far-{next(saves)}"

        def add(session: Session) -> None:
            session.add(Call(source="ami", linkedid=linkedid, entered_at=datetime.now(UTC)))

        commit_writes(other, [SessionWrite(add, lambda: None)])

    try:
        with changes.follow(runtime.db):
            start = changes.version

            def moved() -> bool:
                commit_elsewhere()
                return changes.version != start

            wait_until(moved, 15, "a commit in another engine to reach the follower")
        wait_until(lambda: not changes._followers, 10, "the follower to stop without users")
    finally:
        other.dispose()


# -- GET /api/calls read the fast way (issue 17, API part) --------------------------------


def _old_page(session: Session, f: CallFilter, limit: int, offset: int) -> dict[str, Any]:
    """The page and total as ``GET /api/calls`` computed them before issue 17: ORM rows,
    ``call_summary``, a count over a subquery, FastAPI's encoding of the response model."""
    from fastapi.encoders import jsonable_encoder
    from sqlalchemy import func

    from earwitness.api.routes.calls import CallPage
    from earwitness.telephony.queries import filtered_calls
    from tests.test_sla_scale import old_call_page

    total = session.scalar(select(func.count()).select_from(filtered_calls(f).subquery()))
    page = {"total": total, "limit": limit, "offset": offset,
            "items": old_call_page(session, f, limit, offset)}  # fmt: skip
    return json.loads(json.dumps(jsonable_encoder(CallPage.model_validate(page))))


def test_call_list_is_the_page_the_old_path_served(runtime: Runtime) -> None:
    from benchmarks.datagen import MONTH_START, generate_calls
    from earwitness.models import Recording

    generate_calls(runtime.db, 300, seed=3)
    with runtime.db.session() as session:
        ids = session.scalars(select(Call.id).order_by(Call.id)).all()
        session.add_all([Recording(call_id=i) for i in ids[::5]])
    cases: list[tuple[dict[str, Any], CallFilter]] = [
        ({}, CallFilter()),
        ({"limit": 7, "offset": 20}, CallFilter()),
        ({"offset": 290, "limit": 50}, CallFilter()),  # a short last page: no count
        ({"offset": 5000}, CallFilter()),  # past the end
        ({"queue": "refunds", "limit": 500}, CallFilter(queue="refunds")),
        ({"outcome": "abandoned"}, CallFilter(outcome="abandoned")),
        ({"min_rings": 3, "queue": "vip"}, CallFilter(queue="vip", min_rings=3)),
    ]
    start, end = MONTH_START.isoformat(), MONTH_START.replace(day=8).isoformat()
    cases.append(
        ({"from": start, "to": end}, CallFilter(start=MONTH_START, end=MONTH_START.replace(day=8)))
    )  # noqa: E501
    with api_client(runtime) as api, runtime.db.session() as session:
        for params, f in cases:
            got = api.get("/api/calls", params=params)
            assert got.status_code == 200, got.text
            want = _old_page(session, f, params.get("limit", 50), params.get("offset", 0))
            assert got.json() == want, params
            assert want["total"] > 0 and (want["items"] or params.get("offset"))
        agent = session.scalar(select(Call).where(Call.agent_id.is_not(None)))
        assert agent is not None and agent.agent is not None
        label = agent.agent.name or agent.agent.interface
        got = api.get("/api/calls", params={"agent": label}).json()
        assert got == _old_page(session, CallFilter(agent=label), 50, 0)
