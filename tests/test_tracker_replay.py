"""The call tracker on real AMI streams captured from Asterisk 22 (tests/pbx/capture.py).

Truth comes from how each scenario was driven (scenarios.json: agent delays, abandon
times, timeouts) and from Asterisk's own ``HoldTime`` on AgentConnect, which the
tracker's event-time wait must agree with.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from earwitness.telephony.records import CallOutcome
from earwitness.telephony.rings import Cadence, ring_count
from tests.ami_replay import DATA, replay_file

SCENARIOS = json.loads((DATA / "scenarios.json").read_text())
CALLER = "13800138000"
CN, US = Cadence.for_country("cn"), Cadence.for_country("us")


def only_call(name: str):  # type: ignore[no-untyped-def]
    result = replay_file(name)
    assert len(result.finished) == 1, [c.linkedid for c in result.finished]
    assert not [c for c in result.tracker.calls.values() if c.is_call], "call left open"
    return result, result.finished[0]


def test_answered_after_3s_is_one_ring_and_agrees_with_asterisk() -> None:
    result, call = only_call("queue_answered")
    record = call.record()
    delay = SCENARIOS["queue_answered"]["params"]["agent_delay"]
    assert record.outcome is CallOutcome.ANSWERED and record.caller == CALLER
    assert record.queue == "complaints" and record.agent == "Local/agent1@agents"
    assert record.wait_s == pytest.approx(delay, abs=0.15)
    assert abs(record.wait_s - result.hold_times[call.linkedid]) < 1.0
    assert ring_count(record.wait_s, CN) == 1 and ring_count(record.wait_s, US) == 1
    assert call.time_source == "event"
    assert [n.name for n in call.notes][:2] == ["QueueCallerJoin", "AgentCalled"]


def test_abandon_in_queue_keeps_the_wait() -> None:
    _, call = only_call("queue_abandon")
    after = SCENARIOS["queue_abandon"]["params"]["abandon_after"]
    assert call.outcome is CallOutcome.ABANDONED and call.answered_at is None
    assert call.record().wait_s == pytest.approx(after, abs=0.15)
    assert [a.result for a in call.attempts] == ["cancelled"]


def test_rona_then_second_agent_counts_whole_wait() -> None:
    result, call = only_call("queue_rona")
    record = call.record()
    params = SCENARIOS["queue_rona"]["params"]
    expected = params["member_timeout"] + params["retry"] + params["others_delay"]
    assert record.wait_s == pytest.approx(expected, abs=0.2)
    assert abs(record.wait_s - result.hold_times[call.linkedid]) < 1.0
    assert [(a.agent, a.result) for a in call.attempts] == [
        ("Local/agent1@agents", "rona"),
        ("Local/agent2@agents", "answered"),
    ]
    assert record.rona == ("Local/agent1@agents",) and record.agent == "Local/agent2@agents"
    assert ring_count(record.wait_s, CN) == 2  # 8 s under China's 5 s cadence


def test_queue_timeout_is_not_an_abandon() -> None:
    _, call = only_call("queue_timeout")
    assert call.outcome is CallOutcome.TIMEOUT
    timeout = SCENARIOS["queue_timeout"]["params"]["queue_timeout"]
    assert call.record().wait_s == pytest.approx(timeout, abs=0.2)


def test_direct_extension_call_answered_and_unanswered() -> None:
    _, answered = only_call("direct_answered")
    assert answered.kind == "direct" and answered.outcome is CallOutcome.ANSWERED
    delay = SCENARIOS["direct_answered"]["params"]["agent_delay"]
    assert answered.record().wait_s == pytest.approx(delay, abs=0.15)
    assert answered.agent == "Local/agent3@agents"
    _, missed = only_call("direct_noanswer")
    assert missed.outcome is CallOutcome.TIMEOUT
    timeout = SCENARIOS["direct_noanswer"]["params"]["dial_timeout"]
    assert missed.record().wait_s == pytest.approx(timeout, abs=0.15)


@pytest.mark.parametrize("scenario", ["blind_transfer", "redirect_transfer"])
def test_transfer_stays_one_call_with_first_answer(scenario: str) -> None:
    _, call = only_call(scenario)
    assert call.outcome is CallOutcome.ANSWERED
    assert call.agent == "Local/agent1@agents"  # who answered counts for the SLA
    assert call.transferred_to is not None and "agent3" in call.transferred_to


def test_twenty_concurrent_calls_each_tracked_once() -> None:
    result = replay_file("concurrent_20")
    plans = {c["callerid"]: c for c in SCENARIOS["concurrent_20"]["params"]["calls"]}
    assert sorted(c.caller or "" for c in result.finished) == sorted(plans)
    for call in result.finished:
        plan = plans[call.caller or ""]
        delay, abandon = plan["agent_delay"], plan["abandon_after"]
        wait = call.record().wait_s
        assert wait is not None
        if abandon is not None and abs(abandon - delay) < 0.5:
            continue  # a race by construction: hang-up and answer in the same second
        if abandon is not None and abandon < delay:
            assert call.outcome is CallOutcome.ABANDONED, plan
            assert wait == pytest.approx(abandon, abs=0.2)
        elif delay < 5:  # member timeout 5 s: shorter delays get answered
            assert call.outcome is CallOutcome.ANSWERED, plan
            assert wait >= delay - 0.1
            assert abs(wait - result.hold_times[call.linkedid]) < 1.0
        elif delay > 5:
            assert call.outcome is CallOutcome.TIMEOUT, plan
            assert wait == pytest.approx(40, abs=0.5)


@pytest.mark.parametrize("scenario", ["restart_graceful", "restart_kill"])
def test_restart_mid_call_closes_the_old_call_and_tracks_the_new(scenario: str) -> None:
    result = replay_file(scenario)
    assert len(result.finished) == 2
    first, second = sorted(result.finished, key=lambda c: c.entered_at or 0)  # type: ignore[arg-type,return-value]
    assert first.linkedid != second.linkedid
    assert first.outcome is CallOutcome.ANSWERED and second.outcome is CallOutcome.ANSWERED
    assert first.ended_at is not None and second.entered_at is not None
    assert first.ended_at <= second.entered_at
    if scenario == "restart_kill":  # no Hangup ever came: closed by the resync
        assert first.time_source == "resync" and first.hangup_cause is not None
    assert not [c for c in result.tracker.calls.values() if c.is_call]


def test_garbage_and_half_frames_do_not_disturb_tracking() -> None:
    raw = (DATA / "queue_rona.raw").read_bytes()
    noisy = raw.replace(b"Event: Newexten", b"Event: Newexten\r\nJunk \xff\xfe no colon", 5)
    from tests.ami_replay import replay

    result = replay(noisy + b"Event: AgentConnect\r\nLinkedid: x\r\nTimesta")
    assert len(result.finished) == 1 and result.finished[0].outcome is CallOutcome.ANSWERED


def test_every_captured_scenario_has_parameters() -> None:
    captured = {p.stem for p in Path(DATA).glob("*.raw")}
    assert {"queue_answered", "queue_rona", "concurrent_20", "restart_kill"} <= captured
    assert captured <= set(SCENARIOS)


# -- calls that move (issue 20) ---------------------------------------------------------


def test_overflow_is_one_call_owned_by_the_answering_queue() -> None:
    result, call = only_call("queue_overflow")
    params = SCENARIOS["queue_overflow"]["params"]
    record = call.record()
    expected = params["queue_timeout"] + params["overflow_delay"]
    assert record.outcome is CallOutcome.ANSWERED
    assert record.wait_s == pytest.approx(expected, abs=0.2)  # from the first join
    assert record.queue == "overflow" and record.queues == ("complaints", "overflow")
    assert record.agent == "Local/agent25@agents"
    first, second = call.visits
    assert (first.queue, first.result) == ("complaints", "timeout")
    assert first.wait_s() == pytest.approx(params["queue_timeout"], abs=0.2)
    assert (second.queue, second.result) == ("overflow", "answered")
    assert second.wait_s() == pytest.approx(params["overflow_delay"], abs=0.2)
    # Asterisk's HoldTime counts the answering queue only; ours is the caller's whole wait.
    assert result.hold_times[call.linkedid] == pytest.approx(params["overflow_delay"], abs=1)


def test_overflow_sla_counts_under_the_owner_only() -> None:
    from earwitness.telephony.sla import summarise

    _, call = only_call("queue_overflow")
    groups = {g.key: g for g in summarise([call.record()], group_by="queue")}
    assert set(groups) == {"overflow"} and groups["overflow"].offered == 1


def test_blind_transfer_records_who_whom_when_and_the_answer() -> None:
    _, call = only_call("blind_transfer")
    (transfer,) = call.transfers
    assert transfer.kind == "blind" and transfer.result == "Success"
    assert transfer.transferer == "Local/agent1@agents" and transfer.target == "agent3@transfer"
    assert call.answered_at is not None and transfer.at - call.answered_at > timedelta(seconds=2)
    assert transfer.answered_by == "Local/agent3@agents"
    assert transfer.answered_at is not None
    delay = 3  # __AGENT_DELAY_agent3 of the capture
    assert (transfer.answered_at - transfer.at).total_seconds() == pytest.approx(delay, abs=0.2)
    assert call.transferred_to == "agent3@transfer"


def test_attended_transfer_keeps_one_call_and_the_consultation_answer() -> None:
    _, call = only_call("attended_transfer")
    params = SCENARIOS["attended_transfer"]["params"]
    assert call.agent == "Local/agent1@agents" and call.outcome is CallOutcome.ANSWERED
    (transfer,) = call.transfers
    assert transfer.kind == "attended" and transfer.result == "Success"
    assert transfer.transferer == "Local/agent1@agents"
    assert transfer.answered_by == "Local/agent3@agents"
    assert transfer.answered_at is not None and transfer.answered_at < transfer.at
    consult_ring = [n for n in call.notes if n.name == "AttendedTransfer"]
    assert consult_ring and call.transferred_to == transfer.target
    assert params["response"] == "Success"


def test_paused_member_is_never_rung_and_the_board_says_why() -> None:
    from earwitness.telephony.agents import AgentBoard

    result, call = only_call("paused_member")
    assert [a.agent for a in call.attempts] == ["Local/agent2@agents"]
    board = AgentBoard()
    seen = []
    for msg in result.messages:
        if msg.kind == "event" and msg.get("Timestamp") is not None:
            at = datetime.fromtimestamp(float(msg["Timestamp"]), UTC)
            seen += board.handle(msg, at)
    paused = [s for s in seen if s.agent == "Local/agent1@agents" and s.state == "paused"]
    assert paused and paused[0].reason == "training"
    agent30 = [s.state for s in seen if s.agent == "Local/agent30@agents"]
    assert agent30[0] != "logged_out" and agent30[-1] == "logged_out"  # added, then removed
    final = {s.agent: s for s in board.states()}
    # Unpaused at the end: back to its device state (whatever the capture left it in).
    assert final["Local/agent1@agents"].state != "paused"
    assert final["Local/agent1@agents"].reason is None
