"""Timing metrics on speech intervals built by hand: the right answer is known exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from earwitness.qa.timing import TimingParams, conversation_metrics, merge, total


def test_agent_cutting_in_is_an_interruption_with_its_time_and_overlap() -> None:
    customer = [(1.0, 9.0)]
    agent = [(8.2, 12.0)]  # starts 0.8 s before the customer stops
    m = conversation_metrics(agent, customer)
    cuts = m.agent_interruptions()
    assert len(cuts) == 1
    assert cuts[0].at_s == 8.2 and cuts[0].overlap_s == pytest.approx(0.8)
    assert m.overtalk_s == pytest.approx(0.8)
    assert m.as_dict()["params"] == {"interruption_min_overlap_ms": 300, "non_talk_min_ms": 3000}


def test_short_overlap_and_backchannel_below_threshold_are_not_interruptions() -> None:
    customer = [(1.0, 9.0)]
    assert conversation_metrics([(8.8, 12.0)], customer).agent_interruptions() == []  # 0.2 s
    # the threshold is a parameter: at 100 ms the same overlap counts
    strict = TimingParams(interruption_min_overlap_ms=100)
    assert len(conversation_metrics([(8.8, 12.0)], customer, params=strict).interruptions) == 1
    # agent starting exactly when the customer stops is turn-taking
    assert conversation_metrics([(9.0, 12.0)], customer).interruptions == []


def test_customer_interrupting_agent_is_counted_apart() -> None:
    m = conversation_metrics([(0.0, 6.0)], [(4.0, 8.0)])
    assert [(i.by, i.of, i.at_s) for i in m.interruptions] == [("customer", "agent", 4.0)]
    assert m.as_dict()["agent_interruptions"] == 0
    assert m.as_dict()["customer_interruptions"] == 1


def test_non_talk_time_longest_silence_and_threshold() -> None:
    agent = [(0.5, 4.0), (20.0, 25.0)]
    customer = [(5.0, 8.0), (9.0, 10.0)]
    m = conversation_metrics(agent, customer, duration_s=27.0)
    # gaps: 0–0.5, 4–5, 8–9, 10–20 (10 s), 25–27 (2 s); only ≥ 3 s counts as non-talk
    assert [(s.start_s, s.end_s) for s in m.non_talk] == [(10.0, 20.0)]
    assert m.non_talk_s == pytest.approx(10.0)
    assert m.longest_silence is not None and m.longest_silence.duration_s == pytest.approx(10.0)
    relaxed = conversation_metrics(
        agent, customer, duration_s=27.0, params=TimingParams(non_talk_min_ms=1000)
    )
    assert relaxed.non_talk_s == pytest.approx(14.0)


def test_response_latency_talk_ratio_and_speaking_rate() -> None:
    customer = [(0.0, 4.0), (10.0, 14.0)]
    agent = [(5.5, 9.0), (13.5, 20.0)]  # 1.5 s after the first turn; cuts into the second
    m = conversation_metrics(agent, customer, tokens={"agent": 20, "customer": 16})
    assert [(r.customer_index, r.latency_s) for r in m.responses] == [(0, 1.5), (1, 0.0)]
    assert m.talk_s == {"agent": 10.0, "customer": 8.0}
    assert m.talk_ratio_agent == pytest.approx(10 / 18)
    assert m.speaking_rate == {"agent": 120.0, "customer": 120.0}


def test_backchannel_inside_customer_turn_is_not_the_answer() -> None:
    customer = [(0.0, 10.0)]
    agent = [(4.0, 4.2), (11.0, 13.0)]  # "mm" mid-turn, then the answer
    m = conversation_metrics(agent, customer)
    assert [(r.latency_s) for r in m.responses] == [pytest.approx(1.0)]
    assert m.interruptions == []  # "mm" ends long before the customer stops: 0.2 s overlap


intervals = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0.05, 10)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=15,
)


@settings(max_examples=80, deadline=None)
@given(intervals, intervals)
def test_time_accounting_adds_up(
    agent: list[tuple[float, float]], customer: list[tuple[float, float]]
) -> None:
    """agent talk + customer talk − overtalk + all silence = call duration."""
    m = conversation_metrics(agent, customer, params=TimingParams(non_talk_min_ms=0))
    union = total([*agent, *customer])
    assert m.talk_s["agent"] + m.talk_s["customer"] - m.overtalk_s == pytest.approx(union, abs=1e-6)
    assert union + m.non_talk_s == pytest.approx(m.duration_s, abs=1e-6)
    assert m.overtalk_s <= min(m.talk_s.values()) + 1e-9
    assert all(b[0] > a[1] for a, b in zip(merge(agent), merge(agent)[1:], strict=False))
