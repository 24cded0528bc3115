"""Calls that move (issue 20): overflow ownership, transfers across linkedids, agent states.

The real-Asterisk shapes of these calls are replayed in test_tracker_replay.py and driven
live in test_pbx_live.py; here the cases Asterisk-with-Local-channels cannot produce
(a phone's consultation under its own linkedid, an abandon after overflow) are fed as
plain events, and storage/API are checked on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from earwitness.config import load_settings
from earwitness.runtime import Runtime
from earwitness.telephony.agents import AgentBoard, AgentState, Span, time_in_states
from earwitness.telephony.persist import SlaDefaults, save_agent_state, save_tracked
from earwitness.telephony.queries import agent_board, call_movement
from earwitness.telephony.records import CallOutcome
from earwitness.telephony.service import NO_RECORDING_DIR, PbxService
from earwitness.telephony.sla import summarise
from earwitness.telephony.tracker import CallTracker
from tests.accounts_helpers import api_client
from tests.ami_replay import replay_file

T0 = datetime(2026, 5, 6, 9, 0, tzinfo=UTC)


class Ev:
    def __init__(self, name: str, **fields: str) -> None:
        self.name, self.fields = name, fields

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)


def feed(tracker: CallTracker, *steps: tuple[float, Ev]) -> list:  # type: ignore[type-arg]
    changed = []
    for seconds, ev in steps:
        changed += tracker.handle(ev, T0 + timedelta(seconds=seconds), "event")
    return changed


def caller(name: str, **kw: str) -> Ev:
    return Ev(name, Linkedid="L1", Channel="Local/c-1;2", Uniqueid="U1", **kw)


def test_abandon_after_overflow_counts_in_the_last_queue_with_the_whole_wait() -> None:
    tracker = CallTracker()
    changed = feed(
        tracker,
        (0, caller("QueueCallerJoin", Queue="A", CallerIDNum="1390")),
        (1, caller("AgentCalled", Queue="A", Interface="Local/a1@agents/n")),
        (8, caller("QueueCallerAbandon", Queue="A")),  # Asterisk sends it on a timeout too
        (8, caller("QueueCallerLeave", Queue="A")),
        (8, caller("VarSet", Variable="QUEUESTATUS", Value="TIMEOUT")),
        (8.1, caller("QueueCallerJoin", Queue="B")),
        (20, caller("QueueCallerAbandon", Queue="B")),
        (20, caller("QueueCallerLeave", Queue="B")),
        (20, caller("Hangup")),
    )
    call = changed[-1]
    assert call.outcome is CallOutcome.ABANDONED and call.queue == "B"
    assert [(v.queue, v.result) for v in call.visits] == [("A", "timeout"), ("B", "abandoned")]
    assert call.visits[1].wait_s() == pytest.approx(11.9)
    record = call.record()
    assert record.wait_s == pytest.approx(20) and record.queues == ("A", "B")
    groups = {g.key: g for g in summarise([record], group_by="queue")}
    assert set(groups) == {"B"} and groups["B"].abandoned == 1


def test_answer_after_a_transfer_into_a_queue_keeps_the_first_queue() -> None:
    tracker = CallTracker()
    changed = feed(
        tracker,
        (0, caller("QueueCallerJoin", Queue="A")),
        (2, caller("AgentConnect", Queue="A", Interface="Local/a1@agents/n", HoldTime="2")),
        (
            5,
            Ev(
                "BlindTransfer",
                TransfereeLinkedid="L1",
                TransfererLinkedid="L1",
                TransfererChannel="Local/a1@agents-0001;1",
                Extension="queue",
                Context="xfer",
                Result="Success",
            ),
        ),  # fmt: skip
        (5.1, caller("QueueCallerJoin", Queue="B")),
        (9, caller("AgentConnect", Queue="B", Interface="Local/b7@agents/n")),
        (30, caller("Hangup")),
    )
    call = changed[-1]
    assert call.queue == "A" and call.agent == "Local/a1@agents"  # the first answer owns it
    assert call.record().wait_s == pytest.approx(2)
    assert [(v.queue, v.result) for v in call.visits] == [("A", "answered"), ("B", "answered")]
    (transfer,) = call.transfers
    assert transfer.answered_by == "Local/b7@agents"
    assert transfer.answered_at == T0 + timedelta(seconds=9)


def test_attended_transfer_from_a_phone_folds_its_consultation_into_the_customer_call() -> None:
    tracker = CallTracker()
    agent_leg = {"Linkedid": "L1", "Channel": "PJSIP/1001-0000000a"}
    consult = {"Linkedid": "L2", "Channel": "PJSIP/1001-0000000b", "Uniqueid": "U2"}
    changed = feed(
        tracker,
        (0, caller("QueueCallerJoin", Queue="A")),
        (0, Ev("Newchannel", **agent_leg)),
        (
            2,
            caller(
                "AgentConnect", Queue="A", Interface="PJSIP/1001", DestChannel="PJSIP/1001-0000000a"
            ),
        ),
        (4, Ev("Newchannel", **consult)),
        (4, Ev("DialBegin", **consult, DestChannel="PJSIP/1003-0000000c")),  # the agent's own call
        (6, Ev("DialEnd", **consult, DestChannel="PJSIP/1003-0000000c", DialStatus="ANSWER")),
        (
            9,
            Ev(
                "AttendedTransfer",
                Result="Success",
                TransfereeLinkedid="L1",
                OrigTransfererLinkedid="L1",
                OrigTransfererChannel="PJSIP/1001-0000000a",
                SecondTransfererLinkedid="L2",
                SecondTransfererChannel="PJSIP/1001-0000000b",
                TransferTargetLinkedid="L2",
                TransferTargetChannel="PJSIP/1003-0000000c",
            ),
        ),  # fmt: skip
        (9, Ev("Hangup", Linkedid="L1", Channel="PJSIP/1001-0000000a")),
        (9, Ev("Hangup", Linkedid="L2", Channel="PJSIP/1001-0000000b")),
        (30, Ev("Hangup", Linkedid="L2", Channel="PJSIP/1003-0000000c")),
        (30, caller("Hangup")),
    )
    folded = {c.linkedid: c.merged_into for c in changed if c.merged_into}
    assert folded == {"L2": "L1"}  # the service deletes L2's row when handed it back
    customer = changed[-1]
    assert customer.linkedid == "L1" and customer.ended_at == T0 + timedelta(seconds=30)
    (transfer,) = customer.transfers
    assert (transfer.kind, transfer.transferer, transfer.target) == (
        "attended", "PJSIP/1001", "PJSIP/1003",
    )  # fmt: skip
    assert transfer.answered_at == T0 + timedelta(seconds=9)  # the consult was not ours
    tracker.release(customer)  # what the service does once the finished call is saved
    assert not tracker.calls and not tracker.aliases


def test_failed_transfer_is_kept_but_moves_nobody() -> None:
    tracker = CallTracker()
    changed = feed(
        tracker,
        (0, caller("QueueCallerJoin", Queue="A")),
        (2, caller("AgentConnect", Queue="A", Interface="Local/a1@agents/n")),
        (
            5,
            Ev(
                "BlindTransfer",
                TransfereeLinkedid="L1",
                Extension="999",
                Context="x",
                Result="Fail",
            ),
        ),  # fmt: skip
    )
    call = changed[-1]
    assert call.transfers[0].result == "Fail" and call.transferred_to is None


def test_agent_states_pause_in_every_queue_and_logout() -> None:
    board = AgentBoard()

    def ev(name: str, queue: str, **kw: str) -> list[AgentState]:
        return board.handle(Ev(name, Queue=queue, Interface="Local/a1@agents/n",
                               MemberName="a1", **kw), T0)  # fmt: skip

    assert [s.state for s in ev("QueueMemberAdded", "A", Status="1", Paused="0")] == ["available"]
    assert ev("QueueMemberAdded", "B", Status="1", Paused="0") == []  # no change
    assert ev("QueueMemberPause", "A", Paused="1", PausedReason="lunch") == []  # B still takes
    (paused,) = ev("QueueMemberPause", "B", Paused="1", PausedReason="lunch")
    assert (paused.state, paused.reason, paused.name) == ("paused", "lunch", "a1")
    assert [s.state for s in ev("QueueMemberRemoved", "A")] == []  # still paused in B
    assert [s.state for s in ev("QueueMemberRemoved", "B")] == ["logged_out"]
    resynced = board.resync([{"Queue": "A", "Location": "Local/a1@agents/n", "Status": "6",
                              "Paused": "0"}], T0)  # fmt: skip
    assert [s.state for s in resynced] == ["ringing"]


def test_time_in_states_clips_spans_to_the_window() -> None:
    day = T0.replace(hour=0)
    spans = [
        Span("paused", day - timedelta(hours=1), day + timedelta(hours=1)),
        Span("available", day + timedelta(hours=1), day + timedelta(hours=3)),
        Span("in_call", day + timedelta(hours=3), None),
    ]
    totals = time_in_states(spans, day, day + timedelta(hours=4))
    assert totals == {"available": 7200.0, "in_call": 3600.0, "paused": 3600.0}
    assert time_in_states(spans, day, day) == {}


def test_visits_transfers_and_agent_spans_are_stored_and_shown_live(runtime: Runtime) -> None:
    overflow = replay_file("queue_overflow").finished[0]
    transferred = replay_file("blind_transfer").finished[0]
    with runtime.db.session() as s:
        row = save_tracked(s, overflow, SlaDefaults())
        moved = call_movement(row)
        assert row.queue is not None and row.queue.name == "overflow"
        assert [(q["queue"], q["result"]) for q in moved["queues"]] == [
            ("complaints", "timeout"), ("overflow", "answered"),
        ]  # fmt: skip
        assert moved["queues"][0]["wait_s"] == pytest.approx(8, abs=0.2)
        row2 = save_tracked(s, transferred, SlaDefaults())
        (t,) = call_movement(row2)["transfers"]
        assert t["answered"] and t["answered_by"] == "Local/agent3@agents"
        save_tracked(s, transferred, SlaDefaults())  # re-saving replaces, never duplicates
        assert len(call_movement(row2)["transfers"]) == 1
        ids = (row.id, row2.id)
    now = datetime.now(UTC)
    a1 = "Local/agent1@agents"
    states = [
        AgentState(a1, "agent1", "available", None, now - timedelta(seconds=30)),
        AgentState(a1, "agent1", "paused", "training", now - timedelta(seconds=10)),
        AgentState(a1, "agent1", "paused", "training", now),  # the same again: no new span
    ]
    with runtime.db.session() as s:
        stored = [save_agent_state(s, st) for st in states]
        assert stored[2] is None
        (member,) = agent_board(s, now - timedelta(hours=1), now)
        assert member["state"] == "paused" and member["reason"] == "training"
        assert member["today_s"]["available"] == pytest.approx(20, abs=0.01)
    with api_client(runtime) as api:
        live = api.get("/api/live").json()
        detail = api.get(f"/api/calls/{ids[0]}").json()
        moved_detail = api.get(f"/api/calls/{ids[1]}").json()
    assert detail["queue"] == "overflow"
    assert [(q["queue"], q["result"]) for q in detail["queues"]] == [
        ("complaints", "timeout"), ("overflow", "answered"),
    ]  # fmt: skip
    assert [t["answered_by"] for t in moved_detail["transfers"]] == ["Local/agent3@agents"]
    (shown,) = live["members"]
    assert (shown["agent"], shown["state"], shown["reason"]) == ("agent1", "paused", "training")
    assert shown["today_s"]["paused"] >= 10


def test_missing_recording_dir_is_said_at_start_and_in_health(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = {"data_dir": tmp_path, "ami_host": "127.0.0.1", "ami_user": "u", "ami_secret": "s"}
    unset = PbxService(load_settings(**base), db=None)  # type: ignore[arg-type]
    assert unset.recording_notice() == NO_RECORDING_DIR
    health = unset.health()["recording"]
    assert health["ingest"] is False and "EARWITNESS_AMI_RECORDING_DIR" in health["notice"]
    mounted = PbxService(load_settings(**base, ami_recording_dir=tmp_path), db=None)  # type: ignore[arg-type]
    assert mounted.recording_notice() is None and mounted.health()["recording"]["ingest"]
    off = PbxService(load_settings(**base, ami_record_calls=False), db=None)  # type: ignore[arg-type]
    assert off.health()["recording"]["notice"] is None


def test_a_restarted_service_keeps_the_visits_of_calls_in_progress(runtime: Runtime) -> None:
    tracker = CallTracker()
    (call, *_) = feed(
        tracker,
        (0, caller("QueueCallerJoin", Queue="A")),
        (8, caller("QueueCallerLeave", Queue="A")),
        (8, caller("QueueCallerJoin", Queue="B")),
    )[-1:]
    with runtime.db.session() as s:
        save_tracked(s, call, SlaDefaults())
    settings = runtime.settings.model_copy(
        update={"ami_host": "127.0.0.1", "ami_user": "u", "ami_secret": "s"}
    )
    service = PbxService(settings, runtime.db)
    service._hydrate()
    (again,) = service.tracker.calls.values()
    assert [(v.queue, v.result) for v in again.visits] == [("A", "timeout"), ("B", "waiting")]
