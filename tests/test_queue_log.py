"""queue_log import: the sample day comes back exactly as scripted; garbage never crashes."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from earwitness.telephony.queue_log import parse_line, parse_queue_log
from earwitness.telephony.records import CallOutcome

SAMPLE_DIR = Path(__file__).parent / "data" / "queue_log"


def _load_make_sample() -> ModuleType:
    name = "queue_log_make_sample"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SAMPLE_DIR / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


make_sample = _load_make_sample()
KIND_OUTCOME = {
    "A": CallOutcome.ANSWERED,
    "B": CallOutcome.ANSWERED,
    "X": CallOutcome.ABANDONED,
    "K": CallOutcome.ABANDONED,
    "T": CallOutcome.TIMEOUT,
    "E": CallOutcome.UNAVAILABLE,
}


def _sample_bytes() -> list[bytes]:
    return (SAMPLE_DIR / "sample.queue_log").read_bytes().splitlines(keepends=True)


def test_committed_sample_matches_its_generator() -> None:
    assert (SAMPLE_DIR / "sample.queue_log").read_text(encoding="utf-8") == make_sample.render()


def test_sample_day_every_call_matches_the_script() -> None:
    result = parse_queue_log(_sample_bytes())
    assert result.skipped == [] and result.warnings == []
    # 128 lines: 17 housekeeping (1 QUEUESTART + 6 ADDMEMBER + 2 PAUSE + 2 UNPAUSE +
    # 6 REMOVEMEMBER); 30 answered calls x 3 lines + 1 RINGNOANSWER + 10 unanswered x 2.
    assert result.lines_read == 128
    assert result.events_ignored == 17
    assert result.events_used == 111
    by_key = {c.key: c for c in result.calls}
    assert len(by_key) == len(make_sample.CALLS) == 40
    for truth in make_sample.CALLS:
        call = by_key[truth.callid]
        entered = datetime.fromtimestamp(truth.entered_epoch, UTC)
        assert call.entered_at == entered
        assert call.queue == truth.queue
        assert call.caller == truth.caller
        assert call.outcome is KIND_OUTCOME[truth.kind], truth
        assert call.wait_s == truth.wait, truth
        if truth.kind in "AB":
            assert call.agent == f"PJSIP/{truth.agent}"
            assert call.talk_s == truth.talk
        else:
            assert call.agent is None and call.answered_at is None
            assert call.ended_at == entered + timedelta(seconds=truth.wait)
        assert call.rona == ((f"PJSIP/{truth.rona}",) if truth.rona else ())
        assert call.transferred_to == ("6000@escalation" if truth.kind == "B" else None)
    assert [c.entered_at for c in result.calls] == sorted(c.entered_at for c in result.calls)
    assert result.last_event_at == datetime.fromisoformat("2024-05-06T17:45:00+08:00")


# A hand-written log. Call 1700000000.1: enters 10:00:00Z... (epoch 1700000000 is
# 2023-11-14T22:13:20Z), agent/1 rings out at +15 s, agent/2 answers at +20 s, talks 60 s.
# Call .2 abandons after 7 s. Call .3 times out of "a" after 30 s, re-enters "b" and is
# answered there 4 s later, then transferred attended. Call .4 is still waiting at EOF.
HAND_LOG = """\
1700000000|1700000000.1|a|NONE|ENTERQUEUE||555-0101|1
1700000015|1700000000.1|a|agent/1|RINGNOANSWER|15000
1700000020|1700000000.1|a|agent/2|CONNECT|20|1700000005.9|5
1700000080|1700000000.1|a|agent/2|COMPLETEAGENT|20|60|1
1700000100|1700000100.2|a|NONE|ENTERQUEUE||555-0102|1
1700000107|1700000100.2|a|NONE|ABANDON|1|1|7
1700000200|1700000200.3|a|NONE|ENTERQUEUE||555-0103|1
1700000230|1700000200.3|a|NONE|EXITWITHTIMEOUT|1|1|30
1700000231|1700000200.3|b|NONE|ENTERQUEUE||555-0103|1
1700000235|1700000200.3|b|agent/3|CONNECT|4|1700000232.7|3
1700000300|1700000200.3|b|agent/3|ATTENDEDTRANSFER|BRIDGE|bridge-77|4|65|1
1700000400|1700000400.4|a|NONE|ENTERQUEUE||555-0104|1
"""


def test_hand_written_log() -> None:
    result = parse_queue_log(HAND_LOG.splitlines())
    assert result.skipped == [] and result.warnings == []
    calls = {c.key: c for c in result.calls}
    assert list(calls) == ["1700000000.1", "1700000100.2", "1700000200.3", "1700000200.3#2",
                           "1700000400.4"]  # fmt: skip
    first = calls["1700000000.1"]
    assert (first.outcome, first.wait_s, first.talk_s) == (CallOutcome.ANSWERED, 20.0, 60.0)
    assert (first.agent, first.rona, first.caller) == ("agent/2", ("agent/1",), "555-0101")
    assert calls["1700000100.2"].outcome is CallOutcome.ABANDONED
    assert calls["1700000100.2"].wait_s == 7.0
    timed_out, second_visit = calls["1700000200.3"], calls["1700000200.3#2"]
    assert (timed_out.queue, timed_out.outcome, timed_out.wait_s) == ("a", "timeout", 30.0)
    assert (second_visit.queue, second_visit.outcome, second_visit.wait_s) == ("b", "answered", 4)
    assert second_visit.transferred_to == "BRIDGE:bridge-77"
    waiting = calls["1700000400.4"]
    assert waiting.outcome is CallOutcome.IN_PROGRESS and waiting.wait_s is None


def test_log_starting_mid_call_rebuilds_times_from_the_event_data() -> None:
    lines = [
        # answered 12 s after entry, completes after 30 s of talk: entry = 1000 - 30 - 12
        "1000|1.1|q|agent/1|COMPLETECALLER|12|30|1",
        # connect with holdtime 9: entry = 2000 - 9
        "2000|2.2|q|agent/2|CONNECT|9|2.3|2",
        # abandon after waiting 6 s
        "3000|3.3|q|NONE|ABANDON|2|1|6",
        # exit with key: waittime is the 4th field
        "4000|4.4|q|NONE|EXITWITHKEY|5|1|1|11",
    ]
    calls = {c.key: c for c in parse_queue_log(lines).calls}
    assert calls["1.1"].entered_at == datetime.fromtimestamp(958, UTC)
    assert calls["1.1"].answered_at == datetime.fromtimestamp(970, UTC)
    assert calls["2.2"].entered_at == datetime.fromtimestamp(1991, UTC)
    assert calls["2.2"].outcome is CallOutcome.IN_PROGRESS and calls["2.2"].wait_s == 9
    assert calls["3.3"].wait_s == 6 and calls["3.3"].outcome is CallOutcome.ABANDONED
    assert calls["4.4"].wait_s == 11 and calls["4.4"].outcome is CallOutcome.ABANDONED


def test_garbage_is_reported_by_line_and_never_crashes() -> None:
    lines: list[bytes] = [
        b"1700000000|9.1|q|NONE|ENTERQUEUE||\xe5\xbc\xa0\xff|1\n",  # 1 bad UTF-8: kept, warned
        b"\n",  # 2 blank: ignored silently
        b"garbage without pipes\n",  # 3
        b"notanumber|9.2|q|NONE|ENTERQUEUE||x|1\n",  # 4
        b"99999999999999|9.3|q|NONE|ENTERQUEUE||x|1\n",  # 5 year > 2200
        b"nan|9.3|q|NONE|ENTERQUEUE||x|1\n",  # 6
        b"1700000001|9.4|q|agent/1|CONNECT|99999999999999999999|x|1\n",  # 7 absurd hold
        b"1700000002|9.5|q|NONE|FROBNICATE|1\n",  # 8 unknown event
        b"1700000003|NONE|q|NONE|ABANDON|1|1|3\n",  # 9 call event without callid
        b"1700000004|9.6|q|NONE|ENTERQUEUE\x00\x00|x\n",  # 10 NUL padding
        b"1700000005|9.7|q|agent/1|RINGNOANSWER|1000\n",  # 11 RONA of a call never seen
        b"1700000006|9.1|q|agent/1|CONNECT|6|9.8|2\r\n",  # 12 answers line 1's call (CRLF)
        b"1700000007|9.1|q|agent/1|CONNECT|7|9.8|2\n",  # 13 second CONNECT
        b"1700000060|9.1|q|agent/1|COMPLETEAGENT|6|54|1\n",  # 14 ends it
        b"1700000061|9.1|q|agent/1|COMPLETECALLER|6|55|1\n",  # 15 after the end: warned
        b"1700000100|9.9|q|NONE|ENTERQUEUE||y|1\n",  # 16
        b"1700000090|9.9|q|agent/2|CONNECT|0|9.10|0\n",  # 17 clock went back: answer < entry
        b"1700000200|9.9|q",  # 18 truncated last line, no newline
    ]
    result = parse_queue_log(lines)
    skipped = {p.line_no: p.reason for p in result.skipped}
    assert set(skipped) == {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 18}
    assert "too few fields" in skipped[3] and "too few fields" in skipped[18]
    assert "timestamp" in skipped[4] and "timestamp" in skipped[6]
    assert "out of range" in skipped[5] and "holdtime" in skipped[7]
    assert "unknown event" in skipped[8] and "NUL" in skipped[10]
    assert "second CONNECT" in skipped[13]
    assert {p.line_no for p in result.warnings} == {1, 15, 17}
    assert result.lines_read == 18
    calls = {c.key: c for c in result.calls}
    good = calls["9.1"]
    assert good.caller is not None and good.caller.startswith("张")  # valid bytes survive
    assert (good.outcome, good.wait_s, good.talk_s) == (CallOutcome.ANSWERED, 6.0, 54.0)
    # Line 17's answer is clamped to the entry time (and warned) instead of a negative wait.
    assert calls["9.9"].wait_s == 0 and calls["9.9"].outcome is CallOutcome.IN_PROGRESS


def test_parse_line_fields() -> None:
    ev = parse_line("1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000", 7)
    assert ev.line_no == 7
    assert ev.at == datetime(2013, 4, 23, 12, 32, 20, tzinfo=UTC)
    assert (ev.callid, ev.queue, ev.agent, ev.event, ev.data) == (
        "1366720340.303267",
        "MYQUEUE",
        "SIP/8007",
        "RINGNOANSWER",
        ("1000",),
    )


def test_text_lines_with_bom_and_newlines() -> None:
    lines = [
        "\ufeff1700000000|5.1|q|NONE|ENTERQUEUE||c|1\n",
        "1700000009|5.1|q|NONE|ABANDON|1|1|9\n",
    ]
    result = parse_queue_log(lines)
    assert result.skipped == []
    assert result.calls[0].wait_s == 9


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=30))
def test_random_bytes_never_crash(lines: list[bytes]) -> None:
    result = parse_queue_log(lines)
    assert result.lines_read == len(lines)
    assert all(1 <= p.line_no <= len(lines) for p in result.skipped + result.warnings)


field_values = st.sampled_from(
    ["", "NONE", "0", "1", "5", "-3", "1e9", "99999999999", "q", "agent/1", "1.5", " 7"]
)
events = st.sampled_from(
    [
        "ENTERQUEUE",
        "CONNECT",
        "RINGNOANSWER",
        "COMPLETEAGENT",
        "COMPLETECALLER",
        "ABANDON",
        "EXITWITHKEY",
        "EXITWITHTIMEOUT",
        "EXITEMPTY",
        "TRANSFER",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
        "PAUSE",
        "BOGUS",
    ]  # fmt: skip
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1_700_000_000, 1_700_000_300),
            st.sampled_from(["1.1", "1.2", "NONE"]),
            events,
            st.lists(field_values, max_size=6),
        ),
        max_size=25,
    )
)
def test_plausible_but_shuffled_events_never_crash(
    rows: list[tuple[int, str, str, list[str]]],
) -> None:
    lines = [f"{t}|{cid}|q|agent/1|{ev}|{'|'.join(data)}" for t, cid, ev, data in rows]
    result = parse_queue_log(lines)
    for call in result.calls:  # every record that came out is internally consistent
        assert call.wait_s is None or call.wait_s >= 0


def test_visit_without_end_event_is_reported_when_the_call_re_enters() -> None:
    lines = [
        "100|7.1|a|NONE|ENTERQUEUE||c|1",  # never ends in "a" (log gap)
        "200|7.1|b|NONE|ENTERQUEUE||c|1",  # 2: re-enters elsewhere: "a" visit dropped
        "205|7.1|b|NONE|ABANDON|1|1|5",
    ]
    result = parse_queue_log(lines)
    assert [(p.line_no, "dropped" in p.reason) for p in result.warnings] == [(2, True)]
    assert [(c.key, c.queue, c.outcome) for c in result.calls] == [
        ("7.1#2", "b", CallOutcome.ABANDONED)
    ]
