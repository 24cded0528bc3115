"""SLA figures over call records: pure aggregation, no I/O, parameters recorded in results.

Service level formula (one of several in use; this is the one every earwitness figure uses)::

    service_level_pct = 100 x answered within target
                        / (offered - abandoned_first_ring)

where ``offered`` = answered + abandoned + timeouts + other unanswered (busy, unavailable,
failed) and ``abandoned_first_ring`` = abandoned before the 2nd ring started (wait <= one
cadence period). So the denominator is "answered + abandoned after the first ring +
every other caller who was not served": a timeout or an empty queue is a failure of
service, not something to leave out.

Common variants, and why not them:
- Asterisk ``app_queue`` ``ServicelevelPerf`` = completed within ``servicelevel`` seconds /
  completed (answered) calls: ignores abandons entirely, so a queue nobody answers can
  show 100 %.
- Asterisk ``ServicelevelPerf2`` = (completed in SL + abandoned in SL) / (completed +
  abandoned): counts a quick abandon as a success.
- Contact-centre convention of excluding "short abandons" (hang-ups inside a few seconds,
  usually misdials or callers who change their mind) from the denominator: that is what we
  do, with the window set to the first ring so it follows the cadence in the target.

``abandon_rate_pct`` = 100 x abandoned / offered (short abandons included; they are also
reported separately). ``asa_s`` (average speed of answer) is over answered calls only;
``avg_wait_s`` and ``longest_wait_s`` are over all offered calls (waits to hang-up for the
unanswered). Calls still waiting are not offered yet: they are counted in ``waiting`` only.
A figure with no calls under it is None, never 0 or 100.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Literal

from earwitness.telephony.records import MAX_WAIT_S, CallOutcome, CallRecord
from earwitness.telephony.rings import SlaTarget, ring_count

GroupBy = Literal["queue", "agent", "hour", "day", "total"]
GROUP_BYS: tuple[GroupBy, ...] = ("queue", "agent", "hour", "day", "total")

NO_QUEUE = "(no queue)"
NO_AGENT = "(no agent)"
TOTAL_KEY = "total"


@dataclass(frozen=True)
class SlaFigures:
    """SLA figures for one group of calls, with the parameters that produced them."""

    group_by: str
    key: str
    target: SlaTarget
    tz: str
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    abandoned_first_ring: int
    timeouts: int
    other_unanswered: int
    waiting: int
    service_level_pct: float | None
    asa_s: float | None
    avg_wait_s: float | None
    longest_wait_s: float | None
    abandon_rate_pct: float | None
    rings_histogram: dict[int, int] = field(default_factory=dict)
    rona_count: int = 0
    answered_by_agent: dict[str, int] = field(default_factory=dict)


@dataclass
class _Group:
    answered_waits: list[float] = field(default_factory=list)
    unanswered_waits: list[float] = field(default_factory=list)
    within_target: int = 0
    abandoned: int = 0
    abandoned_first_ring: int = 0
    timeouts: int = 0
    other_unanswered: int = 0
    waiting: int = 0
    rings: Counter[int] = field(default_factory=Counter)
    rona: int = 0
    by_agent: Counter[str] = field(default_factory=Counter)

    def add(self, call: CallRecord, target: SlaTarget) -> None:
        wait = call.wait_s
        if wait is None:  # still waiting: not offered yet
            self.waiting += 1
            return
        rings = ring_count(wait, target.cadence)
        if call.answered:
            self.answered_waits.append(wait)
            self.rings[rings] += 1
            self.within_target += target.met(wait)
            if call.agent is not None:
                self.by_agent[call.agent] += 1
            return
        self.unanswered_waits.append(wait)
        if call.outcome is CallOutcome.ABANDONED:
            self.abandoned += 1
            self.abandoned_first_ring += rings <= 1
        elif call.outcome is CallOutcome.TIMEOUT:
            self.timeouts += 1
        else:
            self.other_unanswered += 1

    def figures(self, group_by: str, key: str, target: SlaTarget, tz: str) -> SlaFigures:
        answered = len(self.answered_waits)
        waits = self.answered_waits + self.unanswered_waits
        offered = len(waits)
        sl_base = offered - self.abandoned_first_ring
        return SlaFigures(
            group_by=group_by,
            key=key,
            target=target,
            tz=tz,
            offered=offered,
            answered=answered,
            answered_within_target=self.within_target,
            abandoned=self.abandoned,
            abandoned_first_ring=self.abandoned_first_ring,
            timeouts=self.timeouts,
            other_unanswered=self.other_unanswered,
            waiting=self.waiting,
            service_level_pct=_pct(self.within_target, sl_base),
            asa_s=_mean(self.answered_waits),
            avg_wait_s=_mean(waits),
            longest_wait_s=max(waits) if waits else None,
            abandon_rate_pct=_pct(self.abandoned, offered),
            rings_histogram=dict(sorted(self.rings.items())),
            rona_count=self.rona,
            answered_by_agent=dict(sorted(self.by_agent.items())),
        )


@dataclass
class Tally:
    """Mergeable totals for one group: what ``_Group`` keeps as lists, kept as sums.

    The SQL path (``sla_sql``) aggregates calls in the database into many small tallies
    (per UTC quarter-hour, per rings value...) and adds them up here, so a month of a
    million calls never becomes a million Python objects. ``figures`` gives the same
    ``SlaFigures`` as ``_Group`` for the same calls (means up to float summation order).
    """

    answered: int = 0
    answered_wait_s: float = 0.0
    unanswered: int = 0
    unanswered_wait_s: float = 0.0
    longest_wait_s: float | None = None
    within_target: int = 0
    abandoned: int = 0
    abandoned_first_ring: int = 0
    timeouts: int = 0
    other_unanswered: int = 0
    waiting: int = 0
    rona: int = 0
    rings: Counter[int] = field(default_factory=Counter)
    by_agent: Counter[str] = field(default_factory=Counter)

    def add_waits(self, answered: bool, count: int, wait_sum: float, wait_max: float) -> None:
        """``count`` offered calls whose waits sum to ``wait_sum`` and peak at ``wait_max``."""
        if answered:
            self.answered += count
            self.answered_wait_s += wait_sum
        else:
            self.unanswered += count
            self.unanswered_wait_s += wait_sum
        if self.longest_wait_s is None or wait_max > self.longest_wait_s:
            self.longest_wait_s = wait_max

    def figures(self, group_by: str, key: str, target: SlaTarget, tz: str) -> SlaFigures:
        offered = self.answered + self.unanswered
        all_waits = self.answered_wait_s + self.unanswered_wait_s
        return SlaFigures(
            group_by=group_by,
            key=key,
            target=target,
            tz=tz,
            offered=offered,
            answered=self.answered,
            answered_within_target=self.within_target,
            abandoned=self.abandoned,
            abandoned_first_ring=self.abandoned_first_ring,
            timeouts=self.timeouts,
            other_unanswered=self.other_unanswered,
            waiting=self.waiting,
            service_level_pct=_pct(self.within_target, offered - self.abandoned_first_ring),
            asa_s=self.answered_wait_s / self.answered if self.answered else None,
            avg_wait_s=all_waits / offered if offered else None,
            longest_wait_s=self.longest_wait_s if offered else None,
            abandon_rate_pct=_pct(self.abandoned, offered),
            rings_histogram=dict(sorted(self.rings.items())),
            rona_count=self.rona,
            answered_by_agent=dict(sorted(self.by_agent.items())),
        )


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _key_function(group_by: GroupBy, tz: tzinfo) -> Callable[[CallRecord], str]:
    if group_by == "queue":
        return lambda c: c.queue or NO_QUEUE
    if group_by == "agent":
        return lambda c: c.agent if c.answered and c.agent else NO_AGENT
    if group_by == "hour":
        return lambda c: (
            c.entered_at.astimezone(tz)
            .replace(minute=0, second=0, microsecond=0)
            .isoformat(timespec="minutes")
        )
    if group_by == "day":
        return lambda c: c.entered_at.astimezone(tz).date().isoformat()
    if group_by == "total":
        return lambda c: TOTAL_KEY
    raise ValueError(f"group_by must be one of {GROUP_BYS}, got {group_by!r}")


def summarise(
    calls: Iterable[CallRecord],
    target: SlaTarget | None = None,
    group_by: GroupBy = "total",
    tz: tzinfo = UTC,
) -> list[SlaFigures]:
    """SLA figures per group, sorted by key (hour/day keys sort chronologically).

    Groups: ``queue`` (``NO_QUEUE`` for calls without one); ``agent`` (the agent who
    answered; unanswered calls go to ``NO_AGENT``; RONA counts go to each agent who let the
    call ring out, creating that agent's row if needed, so ``offered`` still sums to the
    total); ``hour`` (ISO local hour of entry in ``tz``, e.g. ``2024-05-06T09:00+08:00``);
    ``day`` (ISO local date of entry); ``total`` (always exactly one row, even with no calls).
    Elsewhere ``rona_count`` is the number of ring-outs on the group's calls.
    """
    target = target or SlaTarget()
    key_of = _key_function(group_by, tz)
    groups: defaultdict[str, _Group] = defaultdict(_Group)
    if group_by == "total":
        groups.setdefault(TOTAL_KEY, _Group())  # one row even for no calls
    for call in calls:
        groups[key_of(call)].add(call, target)
        if group_by == "agent":
            for missed in call.rona:
                groups[missed].rona += 1
        else:
            groups[key_of(call)].rona += len(call.rona)
    tz_name = str(tz)
    return [groups[k].figures(group_by, k, target, tz_name) for k in sorted(groups)]


@dataclass(frozen=True)
class LiveSnapshot:
    """The queue right now: who is waiting, for how long, and whether they already lost SLA."""

    at: datetime
    target: SlaTarget
    calls_waiting: int
    calls_talking: int
    longest_wait_s: float | None
    longest_wait_rings: int | None
    longest_waiting_key: str | None
    waiting_over_target: int
    waiting_by_queue: dict[str, int]
    agents_by_state: dict[str, int]
    stale: int = 0


def live_snapshot(
    calls_in_progress: Iterable[CallRecord],
    now: datetime,
    target: SlaTarget | None = None,
    agent_states: Mapping[str, str] | None = None,
) -> LiveSnapshot:
    """Summarise calls still in progress at ``now``; finished records are ignored.

    ``agent_states`` is a plain agent -> state mapping (e.g. "ringing", "talking", "idle")
    from whoever tracks agents; it is only counted. A call that entered after ``now`` (event
    clock slightly ahead) counts as waiting 0 s. A record waiting longer than the plausible
    maximum is a lost hang-up, counted in ``stale`` and kept out of the wait figures.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    target = target or SlaTarget()
    waiting = talking = over = stale = 0
    longest: tuple[float, str] | None = None
    by_queue: Counter[str] = Counter()
    for call in calls_in_progress:
        if call.outcome is not CallOutcome.IN_PROGRESS:
            continue
        if call.answered:
            talking += 1
            continue
        wait = max(0.0, (now - call.entered_at).total_seconds())
        if wait > MAX_WAIT_S:
            stale += 1
            continue
        waiting += 1
        by_queue[call.queue or NO_QUEUE] += 1
        over += not target.met(wait)
        if longest is None or wait > longest[0]:
            longest = (wait, call.key)
    states = Counter((agent_states or {}).values())
    return LiveSnapshot(
        at=now,
        target=target,
        calls_waiting=waiting,
        calls_talking=talking,
        longest_wait_s=longest[0] if longest else None,
        longest_wait_rings=ring_count(longest[0], target.cadence) if longest else None,
        longest_waiting_key=longest[1] if longest else None,
        waiting_over_target=over,
        waiting_by_queue=dict(sorted(by_queue.items())),
        agents_by_state=dict(sorted(states.items())),
        stale=stale,
    )
