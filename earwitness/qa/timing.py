"""Conversation metrics from per-channel speech timing — pure functions, no text, no I/O.

Why timing and not text: whether an agent cut a customer off, or left the line silent, is a
property of *when* each side spoke. On a stereo recording each channel is one speaker, so
these numbers are exact up to the voice-activity precision, and they do not depend on how
well the speech recogniser understood the words.

Definitions (they follow Amazon Connect Contact Lens where it has one; every threshold is a
parameter in milliseconds and is recorded in the result):

talk time
    Length of the union of a role's speech intervals. *Talk ratio* = agent talk time /
    (agent + customer talk time).
interruption
    One party cutting the other off mid-sentence: party B starts speaking while party A's
    speech interval is running, and both then speak at once for at least
    ``interruption_min_overlap_ms`` (shorter overlaps are back-channels such as "mm", or
    turn-taking jitter). Its *duration* is how long both spoke at once.
overtalk
    Total time in which both channels carry speech (union of all overlaps).
non-talk time
    Time within the call in which neither channel carries speech, counted in stretches of at
    least ``non_talk_min_ms`` (shorter pauses are ordinary turn-taking). The *longest
    silence* is reported whatever its length.
response latency
    For each customer interval that the agent answers: agent start − customer end, when the
    agent starts after the customer stopped and before the customer speaks again; 0 when the
    agent took the turn while the customer was still speaking.
speaking rate
    Tokens (English words, Chinese characters) per minute of the role's talk time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

Interval = tuple[float, float]


@dataclass(frozen=True)
class TimingParams:
    """Thresholds of the timing metrics, in milliseconds (Contact Lens convention)."""

    interruption_min_overlap_ms: int = 300
    non_talk_min_ms: int = 3000

    def record(self) -> dict[str, Any]:
        # flat fields: dataclasses.asdict (recursive deep copy) was ~4 % of every audit
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Interruption:
    """``by`` started at ``at_s`` while ``of`` was speaking; both spoke for ``overlap_s``."""

    by: str
    of: str
    at_s: float
    overlap_s: float


@dataclass(frozen=True)
class Silence:
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Response:
    """The agent's answer to customer interval ``customer_index`` after ``latency_s``."""

    customer_index: int
    customer_end_s: float
    agent_start_s: float
    latency_s: float


@dataclass
class TimingMetrics:
    """Every timing metric of one call plus the parameters that produced it."""

    duration_s: float
    talk_s: dict[str, float]
    talk_ratio_agent: float | None
    interruptions: list[Interruption]
    overtalk_s: float
    non_talk: list[Silence]
    non_talk_s: float
    longest_silence: Silence | None
    responses: list[Response]
    speaking_rate: dict[str, float | None]
    params: TimingParams = field(default_factory=TimingParams)

    def agent_interruptions(self) -> list[Interruption]:
        return [i for i in self.interruptions if i.by == "agent"]

    def as_dict(self) -> dict[str, Any]:
        """Flat numbers for scorecards and checks, plus the event lists for explanations."""
        latencies = [r.latency_s for r in self.responses]
        agent_cuts = self.agent_interruptions()
        return {
            "duration_s": round(self.duration_s, 3),
            "talk_s": {k: round(v, 3) for k, v in self.talk_s.items()},
            "talk_ratio_agent": _r(self.talk_ratio_agent),
            "agent_interruptions": len(agent_cuts),
            "agent_interruption_s": round(sum(i.overlap_s for i in agent_cuts), 3),
            "customer_interruptions": len(self.interruptions) - len(agent_cuts),
            "overtalk_s": round(self.overtalk_s, 3),
            "non_talk_s": round(self.non_talk_s, 3),
            "non_talk_count": len(self.non_talk),
            "longest_silence_s": round(self.longest_silence.duration_s, 3)
            if self.longest_silence
            else 0.0,
            "mean_response_latency_s": _r(sum(latencies) / len(latencies) if latencies else None),
            "max_response_latency_s": _r(max(latencies) if latencies else None),
            "speaking_rate_per_min": {k: _r(v) for k, v in self.speaking_rate.items()},
            "interruptions": [
                {
                    "by": i.by,
                    "of": i.of,
                    "at_s": round(i.at_s, 3),
                    "overlap_s": round(i.overlap_s, 3),
                }
                for i in self.interruptions
            ],
            "non_talk": [_silence(s) for s in self.non_talk],
            "longest_silence": _silence(self.longest_silence) if self.longest_silence else None,
            "responses": [
                {
                    "customer_index": r.customer_index,
                    "customer_end_s": r.customer_end_s,
                    "agent_start_s": r.agent_start_s,
                    "latency_s": round(r.latency_s, 3),
                }
                for r in self.responses
            ],  # fmt: skip
            "params": self.params.record(),
        }


def _silence(s: Silence) -> dict[str, float]:
    return {"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def merge(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of intervals (touching ones joined); empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def total(intervals: Sequence[Interval]) -> float:
    return sum(end - start for start, end in merge(intervals))


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Union-of-a ∩ union-of-b, by a linear sweep over both merged lists."""
    ma, mb = merge(a), merge(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(ma) and j < len(mb):
        start, end = max(ma[i][0], mb[j][0]), min(ma[i][1], mb[j][1])
        if start < end:
            out.append((start, end))
        if ma[i][1] < mb[j][1]:
            i += 1
        else:
            j += 1
    return out


def interruptions(
    by: Sequence[Interval], of: Sequence[Interval], names: tuple[str, str], min_overlap_ms: int
) -> list[Interruption]:
    """Starts of ``by`` inside a running interval of ``of``, both then talking ≥ min_overlap."""
    min_overlap = min_overlap_ms / 1000.0
    found: list[Interruption] = []
    running = merge(of)
    j = 0
    for start, end in merge(by):
        while j < len(running) and running[j][1] <= start:
            j += 1
        if j == len(running):
            break
        o_start, o_end = running[j]
        overlap = min(end, o_end) - start
        if o_start < start and overlap >= min_overlap:
            found.append(Interruption(names[0], names[1], start, overlap))
    return found


def silences(
    speech: Sequence[Interval], duration_s: float, min_ms: int
) -> tuple[list[Silence], Silence | None]:
    """Gaps with no speech on any channel within [0, duration]: those ≥ min_ms, and the longest."""
    gaps: list[Silence] = []
    cursor = 0.0
    for start, end in merge(speech):
        if start > cursor:
            gaps.append(Silence(cursor, start))
        cursor = max(cursor, end)
    if duration_s > cursor:
        gaps.append(Silence(cursor, duration_s))
    longest = max(gaps, key=lambda s: s.duration_s, default=None)
    return [g for g in gaps if g.duration_s * 1000.0 >= min_ms], longest


def responses(customer: Sequence[Interval], agent: Sequence[Interval]) -> list[Response]:
    """How long the agent took to answer each customer interval it answered (see module doc)."""
    cust = sorted(customer)
    ag = merge(agent)
    out: list[Response] = []
    j = 0
    for index, (c_start, c_end) in enumerate(cust):
        next_customer = cust[index + 1][0] if index + 1 < len(cust) else float("inf")
        while j < len(ag) and ag[j][0] <= c_start:  # agent already talking: not an answer
            j += 1
        k = j
        while k < len(ag) and ag[k][1] <= c_end:  # agent back-channel inside the customer turn
            k += 1
        if k == len(ag):
            continue
        a_start = ag[k][0]
        if a_start < c_end:
            out.append(Response(index, c_end, a_start, 0.0))
        elif a_start < next_customer:
            out.append(Response(index, c_end, a_start, a_start - c_end))
    return out


def answer_wait(end_s: float, agent: Sequence[Interval], until_s: float) -> float | None:
    """Silence after a customer's question: from its end to the agent's next speech (0 when
    the agent is already talking), or the time to ``until_s`` when the agent says nothing
    before then (the customer speaks again, or the call ends)."""
    for start, stop in merge(agent):
        if stop > end_s and start < until_s:
            return max(0.0, start - end_s)
    return max(0.0, until_s - end_s) if until_s > end_s else None


def conversation_metrics(
    agent: Sequence[Interval],
    customer: Sequence[Interval],
    *,
    duration_s: float | None = None,
    tokens: dict[str, int] | None = None,
    params: TimingParams | None = None,
) -> TimingMetrics:
    """All timing metrics of one call from each role's speech intervals (seconds).

    ``duration_s`` defaults to the end of the last speech; ``tokens`` (words or characters
    per role) gives the speaking rate.
    """
    params = params or TimingParams()
    both = [*agent, *customer]
    end = max((e for _, e in both), default=0.0)
    duration = max(duration_s or 0.0, end)
    talk = {"agent": total(agent), "customer": total(customer)}
    talk_sum = talk["agent"] + talk["customer"]
    min_ms = params.interruption_min_overlap_ms
    cuts = interruptions(agent, customer, ("agent", "customer"), min_ms)
    cuts += interruptions(customer, agent, ("customer", "agent"), min_ms)
    cuts.sort(key=lambda i: i.at_s)
    quiet, longest = silences(both, duration, params.non_talk_min_ms)
    rate: dict[str, float | None] = {}
    for role, seconds in talk.items():
        count = (tokens or {}).get(role)
        rate[role] = count * 60.0 / seconds if count is not None and seconds > 0 else None
    return TimingMetrics(
        duration_s=duration,
        talk_s=talk,
        talk_ratio_agent=talk["agent"] / talk_sum if talk_sum > 0 else None,
        interruptions=cuts,
        overtalk_s=total(intersect(agent, customer)),
        non_talk=quiet,
        non_talk_s=sum(s.duration_s for s in quiet),
        longest_silence=longest,
        responses=responses(customer, agent),
        speaking_rate=rate,
        params=params,
    )
