"""SLA aggregation and call records: hand-computed truths, invariants, and the sample day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earwitness.telephony.queue_log import parse_queue_log
from earwitness.telephony.records import CallOutcome, CallRecord
from earwitness.telephony.rings import Cadence, SlaTarget
from earwitness.telephony.sla import NO_AGENT, NO_QUEUE, live_snapshot, summarise

T0 = datetime(2024, 5, 6, 1, 0, 0, tzinfo=UTC)  # 09:00 in China
CST = timezone(timedelta(hours=8))
SAMPLE = Path(__file__).parent / "data" / "queue_log" / "sample.queue_log"


def call(
    key: str,
    wait: float | None,
    outcome: CallOutcome = CallOutcome.ANSWERED,
    *,
    queue: str | None = "q",
    agent: str | None = None,
    rona: tuple[str, ...] = (),
    at: datetime = T0,
    talk: float | None = 60.0,
) -> CallRecord:
    """A record entering at ``at`` and answered/ended after ``wait`` seconds."""
    answered = outcome is CallOutcome.ANSWERED or (
        outcome is CallOutcome.IN_PROGRESS and agent is not None
    )
    answered_at = at + timedelta(seconds=wait) if answered and wait is not None else None
    if outcome is CallOutcome.IN_PROGRESS:
        ended_at = None
    elif answered_at is not None:
        ended_at = answered_at + timedelta(seconds=talk or 0)
    else:
        assert wait is not None
        ended_at = at + timedelta(seconds=wait)
    return CallRecord(
        key=key,
        caller="c",
        queue=queue,
        agent=agent if answered else None,
        entered_at=at,
        answered_at=answered_at,
        ended_at=ended_at,
        outcome=outcome,
        rona=rona,
    )


A, X, T, U = (
    CallOutcome.ANSWERED,
    CallOutcome.ABANDONED,
    CallOutcome.TIMEOUT,
    CallOutcome.UNAVAILABLE,
)

# Ten calls, target 3 rings x 5 s (cn) = 15 s. Rings in brackets.
TEN = [
    call("1", 0, A, agent="a1"),  # [0] within
    call("2", 5, A, agent="a1"),  # [1] within
    call("3", 15, A, agent="a2", rona=("a1",)),  # [3] within, a1 rang out
    call("4", 15.5, A, agent="a2"),  # [4] over
    call("5", 40, A, agent="a2", rona=("a1", "a3")),  # [8] over
    call("6", 5, X),  # [1] short abandon: out of the SL denominator
    call("7", 5.5, X),  # [2] abandon that counts against SL
    call("8", 60, T),  # [12] queue timeout
    call("9", 2, U),  # [1] queue empty
    call("10", None, CallOutcome.IN_PROGRESS),  # still waiting: not offered
]


def test_total_figures_by_hand() -> None:
    (f,) = summarise(TEN, SlaTarget(), "total")
    assert (f.group_by, f.key, f.target, f.tz) == ("total", "total", SlaTarget(), "UTC")
    assert (f.offered, f.answered, f.waiting) == (9, 5, 1)
    assert (f.abandoned, f.abandoned_first_ring, f.timeouts, f.other_unanswered) == (2, 1, 1, 1)
    assert f.answered_within_target == 3
    # SL = within / (offered - short abandons) = 3 / (9 - 1)
    assert f.service_level_pct == pytest.approx(37.5)
    assert f.abandon_rate_pct == pytest.approx(100 * 2 / 9)
    assert f.asa_s == pytest.approx((0 + 5 + 15 + 15.5 + 40) / 5)
    assert f.avg_wait_s == pytest.approx((75.5 + 5 + 5.5 + 60 + 2) / 9)
    assert f.longest_wait_s == 60
    assert f.rings_histogram == {0: 1, 1: 1, 3: 1, 4: 1, 8: 1}
    assert f.rona_count == 3
    assert f.answered_by_agent == {"a1": 2, "a2": 3}


def test_seconds_target_changes_only_what_it_should() -> None:
    # 10 s target: calls 1 and 2 within; rings still use the cadence (cn) for short abandons.
    (f,) = summarise(TEN, SlaTarget(rings=None, seconds=10))
    assert f.answered_within_target == 2
    assert f.abandoned_first_ring == 1
    assert f.service_level_pct == pytest.approx(25.0)
    # A US cadence (6 s) makes the 5.5 s abandon a first-ring one too.
    (us,) = summarise(TEN, SlaTarget(cadence=Cadence.for_country("us")))
    assert us.abandoned_first_ring == 2
    assert us.answered_within_target == 4  # 3 US rings = 18 s: 15.5 s is now within
    assert us.service_level_pct == pytest.approx(100 * 4 / 7)


def test_group_by_agent_puts_rona_on_the_agent_who_missed() -> None:
    rows = {f.key: f for f in summarise(TEN, group_by="agent")}
    assert list(rows) == sorted([NO_AGENT, "a1", "a2", "a3"])
    assert (rows["a1"].offered, rows["a1"].answered, rows["a1"].rona_count) == (2, 2, 2)
    assert (rows["a2"].offered, rows["a2"].rona_count) == (3, 0)
    assert (rows["a3"].offered, rows["a3"].rona_count, rows["a3"].service_level_pct) == (0, 1, None)
    assert rows[NO_AGENT].offered == 4 and rows[NO_AGENT].waiting == 1
    assert rows["a2"].answered_within_target == 1


def test_group_by_queue_and_missing_queue() -> None:
    calls = [call("1", 3, agent="a"), call("2", 3, X, queue=None)]
    rows = {f.key: f for f in summarise(calls, group_by="queue")}
    assert set(rows) == {"q", NO_QUEUE}
    assert rows[NO_QUEUE].abandoned == 1


def test_hour_and_day_follow_the_given_timezone() -> None:
    late = datetime(2024, 5, 6, 15, 30, tzinfo=UTC)  # 23:30 in China
    later = datetime(2024, 5, 6, 16, 10, tzinfo=UTC)  # 00:10 next day in China
    calls = [call("1", 3, agent="a", at=late), call("2", 3, agent="a", at=later)]
    hours = [f.key for f in summarise(calls, group_by="hour", tz=CST)]
    assert hours == ["2024-05-06T23:00+08:00", "2024-05-07T00:00+08:00"]
    days = [(f.key, f.tz) for f in summarise(calls, group_by="day", tz=CST)]
    assert days == [("2024-05-06", "UTC+08:00"), ("2024-05-07", "UTC+08:00")]
    assert [f.key for f in summarise(calls, group_by="day")] == ["2024-05-06"]


def test_empty_input() -> None:
    (f,) = summarise([], group_by="total")
    assert f.offered == 0
    assert f.service_level_pct is None and f.asa_s is None and f.abandon_rate_pct is None
    assert summarise([], group_by="queue") == []


def test_bad_group_by() -> None:
    with pytest.raises(ValueError):
        summarise(TEN, group_by="week")  # type: ignore[arg-type]


def test_talking_call_counts_as_answered() -> None:
    talking = call("1", 4, CallOutcome.IN_PROGRESS, agent="a")
    (f,) = summarise([talking])
    assert (f.offered, f.answered, f.answered_within_target, f.waiting) == (1, 1, 1, 0)


outcomes = st.sampled_from(list(CallOutcome))


@st.composite
def records(draw: st.DrawFn) -> CallRecord:
    outcome = draw(outcomes)
    agent = draw(st.sampled_from(["a1", "a2", None]))
    wait: float | None = draw(st.floats(0, 300, allow_nan=False))
    if outcome is CallOutcome.IN_PROGRESS and draw(st.booleans()):
        wait = None
    at = T0 + timedelta(minutes=draw(st.integers(0, 3000)))
    rona = tuple(draw(st.lists(st.sampled_from(["a1", "a2", "a3"]), max_size=3)))
    queue = draw(st.sampled_from(["q1", "q2", None]))
    key = str(draw(st.integers(0, 10**9)))
    return call(key, wait, outcome, queue=queue, agent=agent, rona=rona, at=at)


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), max_size=40), st.sampled_from(["queue", "agent", "hour", "day"]))
def test_groups_add_up_to_the_total(calls: list[CallRecord], group_by: str) -> None:
    (total,) = summarise(calls)
    rows = summarise(calls, group_by=group_by, tz=CST)  # type: ignore[arg-type]
    for name in ("offered", "answered", "abandoned", "timeouts", "waiting", "rona_count"):
        assert sum(getattr(r, name) for r in rows) == getattr(total, name), name
    assert total.offered == (
        total.answered + total.abandoned + total.timeouts + total.other_unanswered
    )
    assert sum(total.rings_histogram.values()) == total.answered
    for r in rows + [total]:
        assert r.answered_within_target <= r.answered
        assert r.service_level_pct is None or 0 <= r.service_level_pct <= 100


def test_sample_day_figures_computed_by_hand() -> None:
    calls = parse_queue_log(SAMPLE.read_bytes().splitlines()).calls
    # From the CALLS table in make_sample.py, target 3 rings x 5 s = 15 s:
    # 30 answered (waits sum 305 s; 6 over 15 s: 16, 21, 19, 25, 17, 33 -> 24 within),
    # 7 abandoned (6 ABANDON + 1 EXITWITHKEY; 3 within the first ring: 3 s, 5 s, 1 s),
    # 2 timeouts (60 s, 45 s), 1 EXITEMPTY (2 s). All waits sum 491 s.
    (f,) = summarise(calls, SlaTarget(), "total")
    assert (f.offered, f.answered, f.abandoned, f.abandoned_first_ring) == (40, 30, 7, 3)
    assert (f.timeouts, f.other_unanswered, f.answered_within_target) == (2, 1, 24)
    assert f.service_level_pct == pytest.approx(100 * 24 / 37)
    assert f.abandon_rate_pct == pytest.approx(17.5)
    assert f.asa_s == pytest.approx(305 / 30)
    assert f.avg_wait_s == pytest.approx(491 / 40)
    assert f.longest_wait_s == 60
    # ceil(wait / 5) over the answered waits
    assert f.rings_histogram == {0: 1, 1: 8, 2: 9, 3: 6, 4: 3, 5: 2, 7: 1}
    assert f.rona_count == 1
    agents = {"PJSIP/8001": 10, "PJSIP/8002": 10, "PJSIP/8003": 10}
    assert f.answered_by_agent == agents

    queues = {r.key: r for r in summarise(calls, group_by="queue")}
    # complaints: 27 offered, 20 answered (16 within), 6 abandoned (2 short), 1 timeout
    c = queues["complaints"]
    assert (c.offered, c.answered, c.answered_within_target) == (27, 20, 16)
    assert (c.abandoned, c.abandoned_first_ring, c.timeouts) == (6, 2, 1)
    assert c.service_level_pct == pytest.approx(64.0)  # 16 / 25
    # rescue: 13 offered, 10 answered (8 within), 1 short abandon, 1 timeout, 1 empty
    r = queues["rescue"]
    assert (r.offered, r.answered, r.answered_within_target, r.other_unanswered) == (13, 10, 8, 1)
    assert r.service_level_pct == pytest.approx(100 * 8 / 12)

    by_agent = {r.key: r for r in summarise(calls, group_by="agent")}
    # 8001 answered all ten within 15 s and let call 7 ring out; 8002 4 over; 8003 2 over
    assert by_agent["PJSIP/8001"].answered_within_target == 10
    assert by_agent["PJSIP/8001"].rona_count == 1
    assert by_agent["PJSIP/8002"].answered_within_target == 6
    assert by_agent["PJSIP/8003"].answered_within_target == 8
    assert by_agent[NO_AGENT].offered == 10

    hours = [(r.key, r.offered) for r in summarise(calls, group_by="hour", tz=CST)]
    assert hours == [
        ("2024-05-06T08:00+08:00", 2),
        ("2024-05-06T09:00+08:00", 8),
        ("2024-05-06T10:00+08:00", 7),
        ("2024-05-06T11:00+08:00", 5),
        ("2024-05-06T12:00+08:00", 3),
        ("2024-05-06T13:00+08:00", 5),
        ("2024-05-06T14:00+08:00", 4),
        ("2024-05-06T15:00+08:00", 3),
        ("2024-05-06T16:00+08:00", 2),
        ("2024-05-06T17:00+08:00", 1),
    ]


def test_live_snapshot() -> None:
    now = T0 + timedelta(seconds=100)
    calls = [
        call("w1", None, CallOutcome.IN_PROGRESS, at=now - timedelta(seconds=12)),
        call("w2", None, CallOutcome.IN_PROGRESS, at=now - timedelta(seconds=21), queue="r"),
        call("w3", None, CallOutcome.IN_PROGRESS, at=now + timedelta(seconds=1)),  # clock skew
        call("t1", 3, CallOutcome.IN_PROGRESS, agent="a1", at=now - timedelta(seconds=40)),
        call("done", 3, A, agent="a2", at=T0),  # finished: ignored
        call("stale", None, CallOutcome.IN_PROGRESS, at=now - timedelta(days=2)),
    ]
    states = {"a1": "talking", "a2": "idle", "a3": "ringing", "a4": "idle"}
    snap = live_snapshot(calls, now, SlaTarget(), states)
    assert (snap.at, snap.target) == (now, SlaTarget())
    assert (snap.calls_waiting, snap.calls_talking, snap.stale) == (3, 1, 1)
    assert (snap.longest_wait_s, snap.longest_waiting_key) == (21.0, "w2")
    assert snap.longest_wait_rings == 5  # 21 s with 5 s rings
    assert snap.waiting_over_target == 1  # only w2 is past 15 s
    assert snap.waiting_by_queue == {"q": 2, "r": 1}
    assert snap.agents_by_state == {"idle": 2, "ringing": 1, "talking": 1}


def test_live_snapshot_empty_and_naive_now() -> None:
    snap = live_snapshot([], T0)
    assert snap.calls_waiting == 0 and snap.longest_wait_s is None
    with pytest.raises(ValueError):
        live_snapshot([], datetime(2024, 1, 1))


# --- CallRecord validation ---------------------------------------------------------------


def test_wait_s_definition() -> None:
    assert call("a", 7, A, agent="x").wait_s == 7  # to answer
    assert call("b", 9, X).wait_s == 9  # to hang-up
    assert call("c", None, CallOutcome.IN_PROGRESS).wait_s is None  # still waiting
    assert call("d", 7, A, agent="x", talk=30).talk_s == 30


@pytest.mark.parametrize(
    "changes",
    [
        {"key": ""},
        {"entered_at": datetime(2024, 1, 1)},  # naive
        {"answered_at": T0 - timedelta(seconds=1)},  # answered before entry
        {"ended_at": T0 + timedelta(seconds=1)},  # ended before answer
        {"outcome": CallOutcome.ABANDONED},  # unanswered outcome with answered_at
        {"outcome": CallOutcome.IN_PROGRESS},  # in progress with ended_at
        {"answered_at": None},  # answered outcome without answered_at
        {"answered_at": T0 + timedelta(days=2), "ended_at": T0 + timedelta(days=2)},
        {"outcome": "answered"},  # not the enum
    ],
)
def test_record_rejects_inconsistent_data(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "key": "k",
        "caller": None,
        "queue": "q",
        "agent": "a",
        "entered_at": T0,
        "answered_at": T0 + timedelta(seconds=5),
        "ended_at": T0 + timedelta(seconds=65),
        "outcome": CallOutcome.ANSWERED,
    }
    fields.update(changes)
    with pytest.raises(ValueError):
        CallRecord(**fields)  # type: ignore[arg-type]


def test_unanswered_finished_call_needs_an_end() -> None:
    with pytest.raises(ValueError):
        CallRecord("k", None, "q", None, T0, None, None, CallOutcome.ABANDONED)
