"""The wallboard served from the tracker's memory is the one the database gives (issue 17).

The process running the tracker shows calls in progress from the snapshots it hands its
writer, so an AMI event reaches ``/api/live`` without waiting for a commit. That is only
right if, once the writer has caught up, memory and database say the same: checked here
after *every* event of captured real Asterisk sessions (inline saves, so the database is
current after each), agent names included (learned from the PBX, set by a person); then
that the route really serves memory while the writer is held back, and that a restarted
tracker takes over the calls left in progress with their ring-outs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from earwitness.runtime import Runtime
from earwitness.telephony.agents import AgentState
from earwitness.telephony.calls import agent_interface
from earwitness.telephony.identities import set_name
from earwitness.telephony.live_view import live_agent_states, live_record
from earwitness.telephony.queries import agent_labels, agent_states, live_records
from earwitness.telephony.records import CallRecord
from earwitness.telephony.service import PbxService
from tests.accounts_helpers import api_client
from tests.test_live_push import (
    _batched_service,
    _messages,
    _pbx_settings,
    _queue_call,
    _snapshots,
)


def _ordered(records: list[CallRecord]) -> list[CallRecord]:
    return sorted(records, key=lambda r: (r.entered_at, r.key))


def _memory(service: PbxService, runtime: Runtime) -> tuple[list[CallRecord], dict[str, str]]:
    tracked = service.live_calls()
    assert tracked is not None
    with runtime.db.session() as session:
        labels = agent_labels(session)
    return _ordered([live_record(c, labels) for c in tracked]), live_agent_states(tracked, labels)


def _database(runtime: Runtime) -> tuple[list[CallRecord], dict[str, str]]:
    with runtime.db.session() as session:
        return _ordered(live_records(session)), agent_states(session)


def _replay_checking_each_event(service: PbxService, runtime: Runtime) -> int:
    """Feed every captured event; after each, memory must equal the database. Returns how
    many events left at least one call on the board (so the test cannot pass on nothing)."""
    shown = 0

    async def run() -> None:
        nonlocal shown
        for n, message in enumerate(_messages()):
            await service._on_event(message)
            memory, database = _memory(service, runtime), _database(runtime)
            assert memory == database, (n, message.name)
            shown += bool(memory[0])

    asyncio.run(run())
    return shown


def test_memory_board_equals_the_saved_board_after_every_event(
    runtime: Runtime, tmp_path: Path
) -> None:
    service = PbxService(_pbx_settings(runtime.db.url, tmp_path / "pbx"), runtime.db)
    service._hydrate()
    assert service.live_calls() == []
    shown = _replay_checking_each_event(service, runtime)
    assert shown > 50  # calls waited, rang agents, talked, were transferred, abandoned
    assert service.live_calls() == [] and _database(runtime) == ([], {})


def test_a_name_set_by_a_person_labels_the_memory_board_too(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Captured agents are ``Local/agentN@agents`` named ``agentN`` by the PBX; a manual
    identity must win in memory as it does on save (and a learned name must not)."""
    messages = _messages()
    interfaces = {agent_interface(i) for m in messages if (i := m.get("Interface"))}
    assert interfaces
    with runtime.db.session() as session:
        for n, interface in enumerate(sorted(interfaces)):
            set_name(session, interface, f"坐席 {n}")
    service = PbxService(_pbx_settings(runtime.db.url, tmp_path / "pbx"), runtime.db)
    service._hydrate()
    labels_seen: set[str] = set()

    async def run() -> None:
        for message in messages:
            await service._on_event(message)
            memory, database = _memory(service, runtime), _database(runtime)
            assert memory == database, message.name
            labels_seen.update(r.agent for r in memory[0] if r.agent)
            labels_seen.update(memory[1])

    asyncio.run(run())
    assert labels_seen and all(label.startswith("坐席 ") for label in labels_seen)


def test_live_route_shows_calls_before_the_writer_commits(runtime: Runtime, tmp_path: Path) -> None:
    service, gate = _batched_service(runtime, tmp_path)
    service._live = {}  # hydrated: nothing was in progress
    runtime.services["ami"] = service
    try:
        with api_client(runtime) as api:
            for n in range(3):
                service._save(_queue_call(f"mem-{n}", f"1380000000{n}"))
            shown = api.get("/api/live").json()
            assert sorted(w["caller"] for w in shown["waiting"]) == [
                f"1380000000{n}" for n in range(3)
            ]
            assert shown["calls_waiting"] == 3
            with runtime.db.session() as session:
                assert live_records(session) == []  # held behind the gate: not saved yet
    finally:
        runtime.services.pop("ami", None)
        gate.release.set()
        assert service._writer is not None
        service._writer.close()
    with runtime.db.session() as session:
        assert len(live_records(session)) == 3


def test_restarted_tracker_takes_over_calls_in_progress_with_their_ring_outs(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Stop the replay while calls are in progress (one with a ring-out behind it); a new
    tracker process must show the same board from its memory at once, and saving one of
    those calls again must keep its ring-out (it used to be dropped on the re-save)."""
    messages = _messages()
    first = PbxService(_pbx_settings(runtime.db.url, tmp_path / "one"), runtime.db)
    first._hydrate()

    async def feed_until_rona_in_progress() -> None:
        for message in messages:
            await first._on_event(message)
            if any(r.rona for r in _database(runtime)[0]):
                return
        raise AssertionError("no call in progress ever had a ring-out")

    asyncio.run(feed_until_rona_in_progress())
    before = _database(runtime)
    second = PbxService(_pbx_settings(runtime.db.url, tmp_path / "two"), runtime.db)
    second._hydrate()
    assert _memory(second, runtime)[0] == before[0]
    rona_call = next(c for c in second.tracker.calls.values() if c.attempts)
    rona_call.last_event_at = datetime.now(UTC)
    second._save(rona_call)  # e.g. the resync after the restart re-saves it
    assert _database(runtime)[0] == before[0]


def test_stream_shows_the_trackers_change_while_the_writer_is_held_then_the_saved_part(
    runtime: Runtime, tmp_path: Path
) -> None:
    """The stream must not wait for the database: calls the tracker saw appear while the
    writer cannot commit; once it commits, the database part (members) follows."""
    service, gate = _batched_service(runtime, tmp_path)
    service._live = {}
    runtime.services["ami"] = service
    callers = {f"1370000000{n}" for n in range(3)}
    try:
        with (
            api_client(runtime) as api,
            api.stream(
                "GET", "/api/live/stream", params={"interval_s": 30, "max_events": 20}
            ) as stream,
        ):
            snapshots = _snapshots(stream.iter_lines())
            _, first = next(snapshots)
            assert first["waiting"] == [] and first["members"] == []
            for n, caller in enumerate(sorted(callers)):
                service._save(_queue_call(f"held-{n}", caller))
            service._save_agents(
                [AgentState("PJSIP/2001", "Lucy", "available", None, datetime.now(UTC))]
            )
            for _, snapshot in snapshots:
                if {w["caller"] for w in snapshot["waiting"]} == callers:
                    break
            else:
                raise AssertionError("the stream never showed the calls the tracker saw")
            assert snapshot["members"] == []  # the writer is held: nothing committed yet
            with runtime.db.session() as session:
                assert live_records(session) == []
            gate.release.set()
            for _, snapshot in snapshots:
                if [m["agent"] for m in snapshot["members"]] == ["Lucy"]:
                    break
            else:
                raise AssertionError("the saved member never reached the stream")
            assert {w["caller"] for w in snapshot["waiting"]} == callers
    finally:
        runtime.services.pop("ami", None)
        gate.release.set()
        assert service._writer is not None
        service._writer.close()
