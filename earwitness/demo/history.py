"""A week of demo call history, so the wallboard, SLA reports and agent pages look lived in.

Three queues, eight agents, arrivals shaped by hour of day and weekday, answers after 1–6
rings, abandons, ring-no-answers (RONA) and a few blind transfers — no audio (only the
three demo calls have recordings). Nothing here computes a wait or a ring: each call is
written as the AMI events Asterisk would send, fed through the live
:class:`~earwitness.telephony.tracker.CallTracker` and saved with
:func:`~earwitness.telephony.persist.save_tracked`, exactly like a call seen on a real
PBX; agent states go through :class:`~earwitness.telephony.agents.AgentBoard`. Rows
are marked ``source = "demo"`` like the rest of the demo data, and a seeded generator
makes the week the same on every load (relative to "now").
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy.orm import Session

from earwitness.telephony.agents import AgentBoard
from earwitness.telephony.ami.protocol import AmiMessage
from earwitness.telephony.persist import SlaDefaults, save_agent_state, save_tracked
from earwitness.telephony.rings import Cadence
from earwitness.telephony.tracker import CallTracker

SOURCE = "demo"
LINKEDID_PREFIX = "demo-hist-"


@dataclass(frozen=True)
class DemoAgent:
    interface: str
    name: str
    queues: tuple[str, ...]


QUEUES = ("complaints", "road-rescue", "installation")
AGENTS = (
    # the three agents of the demo calls keep their interfaces, so their pages join up
    DemoAgent("Local/Lucy Zhao@demo", "Lucy Zhao", ("complaints", "road-rescue")),
    DemoAgent("Local/陈静@demo", "陈静", ("complaints",)),
    DemoAgent("Local/Tom Wu@demo", "Tom Wu", ("complaints", "installation")),
    DemoAgent("PJSIP/8004", "王芳", ("road-rescue",)),
    DemoAgent("PJSIP/8005", "李强", ("road-rescue", "installation")),
    DemoAgent("PJSIP/8006", "Amy Sun", ("installation",)),
    DemoAgent("PJSIP/8007", "刘洋", ("complaints", "road-rescue")),
    DemoAgent("PJSIP/8008", "Kevin Ma", ("installation", "complaints")),
)
#: Mean calls per local hour on a weekday, per queue: a morning peak, lunch dip, afternoon
#: peak, quiet nights (road rescue keeps a night service).
HOURLY = {
    "complaints": (0, 0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 5, 3, 4, 5, 5, 4, 3, 2, 1, 1, 0, 0, 0),
    "road-rescue": (1, 0, 0, 0, 0, 0, 1, 2, 4, 4, 3, 3, 2, 3, 3, 4, 4, 5, 3, 2, 2, 1, 1, 1),
    "installation": (0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 3, 3, 1, 2, 3, 3, 2, 1, 0, 0, 0, 0, 0, 0),
}
WEEKEND_FACTOR = 0.5
#: Share of answered calls by the ring they were answered in (1–6 rings).
ANSWER_RINGS = (1, 2, 3, 4, 5, 6)
ANSWER_WEIGHTS = (24, 30, 22, 12, 8, 4)
ABANDON_SHARE = 0.08
RONA_SHARE = 0.06
TRANSFER_SHARE = 0.03
MEMBER_TIMEOUT_S = 15.0


def _event(name: str, **fields: str) -> AmiMessage:
    return AmiMessage([("Event", name), *fields.items()], "event", name, 0.0)


@dataclass
class _Call:
    linkedid: str
    caller: str
    queue: str
    entered_at: datetime
    events: list[tuple[datetime, AmiMessage]]


def _poisson(rng: random.Random, mean: float) -> int:
    """Arrivals in one hour (Knuth's method: fine for means this small)."""
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _caller(rng: random.Random, repeaters: list[str]) -> str:
    if repeaters and rng.random() < 0.1:
        return rng.choice(repeaters)  # a few people call more than once
    number = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    if rng.random() < 0.05:
        repeaters.append(number)
    return number


def _script(
    rng: random.Random, n: int, queue: str, caller: str, at: datetime, period_s: float
) -> _Call:
    """The AMI events of one queue call: join, agents rung, answer or abandon, hang-up."""
    linkedid = f"{LINKEDID_PREFIX}{n:05d}"
    channel = f"PJSIP/trunk-{n:08x}"
    base = {"Linkedid": linkedid, "Channel": channel, "Queue": queue}
    members = [a for a in AGENTS if queue in a.queues]
    events: list[tuple[datetime, AmiMessage]] = [
        (at, _event("QueueCallerJoin", **base, Uniqueid=linkedid, CallerIDNum=caller, Position="1"))
    ]
    first = rng.choice(members)

    def ring(agent: DemoAgent, when: datetime) -> None:
        events.append((when, _event("AgentCalled", **base, Interface=agent.interface,
                                    MemberName=agent.name)))  # fmt: skip

    ring(first, at)
    if rng.random() < ABANDON_SHARE:
        gone = at + timedelta(seconds=rng.uniform(4, 70))
        events += [
            (gone, _event("QueueCallerAbandon", **base)),
            (gone, _event("QueueCallerLeave", **base)),
            (gone, _event("Hangup", Linkedid=linkedid, Channel=channel, Cause="16")),
        ]
        return _Call(linkedid, caller, queue, at, events)
    rings = rng.choices(ANSWER_RINGS, ANSWER_WEIGHTS)[0]
    wait = (rings - 1) * period_s + rng.uniform(0.3, period_s - 0.3)
    answerer = first
    if rng.random() < RONA_SHARE and len(members) > 1:
        wait = max(wait, MEMBER_TIMEOUT_S + rng.uniform(2, 12))
        rona_at = at + timedelta(seconds=MEMBER_TIMEOUT_S)
        events.append((rona_at, _event("AgentRingNoAnswer", **base, Interface=first.interface,
                                        MemberName=first.name)))  # fmt: skip
        answerer = rng.choice([m for m in members if m is not first])
        ring(answerer, rona_at + timedelta(seconds=1))
    answered = at + timedelta(seconds=wait)
    events += [
        (answered, _event("AgentConnect", **base, Interface=answerer.interface,
                          MemberName=answerer.name, HoldTime=str(round(wait)))),
        (answered, _event("QueueCallerLeave", **base)),
    ]  # fmt: skip
    end = answered + timedelta(seconds=rng.uniform(60, 420))
    if rng.random() < TRANSFER_SHARE:
        moved = answered + timedelta(seconds=rng.uniform(30, 120))
        events.append((moved, _event("BlindTransfer", TransfereeLinkedid=linkedid,
                                     TransfereeChannel=channel, Extension="2000",
                                     Context="supervisors", Result="Success")))  # fmt: skip
        end = max(end, moved + timedelta(seconds=60))
    events += [
        (end, _event("AgentComplete", **base, Interface=answerer.interface,
                     MemberName=answerer.name)),
        (end, _event("Hangup", Linkedid=linkedid, Channel=channel, Cause="16")),
    ]  # fmt: skip
    return _Call(linkedid, caller, queue, at, events)


def week_of_calls(now: datetime, zone: tzinfo, period_s: float, seed: int = 2026) -> list[_Call]:
    """Seven local days up to ``now``; only calls that have ended by ``now``."""
    rng = random.Random(seed)
    repeaters: list[str] = []
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    calls: list[_Call] = []
    for day in range(6, -1, -1):
        start = today - timedelta(days=day)
        factor = WEEKEND_FACTOR if start.weekday() >= 5 else 1.0
        for hour in range(24):
            for queue in QUEUES:
                for _ in range(_poisson(rng, HOURLY[queue][hour] * factor)):
                    at = start + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
                    call = _script(rng, len(calls) + 1, queue, _caller(rng, repeaters),
                                   at.astimezone(now.tzinfo), period_s)  # fmt: skip
                    if call.events[-1][0] < now:
                        calls.append(call)
    return calls


def _member_events(now: datetime) -> Iterator[tuple[datetime, AmiMessage]]:
    """Today's agent states: logged in three hours ago, two on a pause now, one gone."""
    login = now - timedelta(hours=3)
    for agent in AGENTS:
        for queue in agent.queues:
            yield login, _event("QueueMemberAdded", Queue=queue, Interface=agent.interface,
                                MemberName=agent.name, Status="1", Paused="0")  # fmt: skip
    pauses = {"王芳": ("lunch", 25), "Kevin Ma": ("training", 50)}
    for agent in AGENTS:
        if agent.name in pauses:
            reason, minutes = pauses[agent.name]
            for queue in agent.queues:
                yield now - timedelta(minutes=minutes), _event(
                    "QueueMemberPause", Queue=queue, Interface=agent.interface,
                    MemberName=agent.name, Paused="1", PausedReason=reason,
                )  # fmt: skip
        if agent.name == "Amy Sun":
            for queue in agent.queues:
                yield now - timedelta(hours=1), _event(
                    "QueueMemberRemoved", Queue=queue, Interface=agent.interface,
                    MemberName=agent.name,
                )  # fmt: skip


def load_history(session: Session, defaults: SlaDefaults, now: datetime, zone: tzinfo) -> int:
    """Write the week through the tracker; returns the number of calls."""
    period_s = Cadence.for_country(defaults.cadence).period_s
    calls = week_of_calls(now, zone, period_s)
    timeline = sorted(
        ((at, n, event) for n, call in enumerate(calls) for at, event in call.events),
        key=lambda item: (item[0], item[1]),
    )
    tracker = CallTracker()
    saved = 0
    for at, _, event in timeline:
        for call in tracker.handle(event, at, "event"):
            if call.ended_at is None:
                continue
            row = save_tracked(session, call, defaults)
            row.source = SOURCE  # demo data, told apart from calls seen on a PBX
            tracker.release(call)
            saved += 1
    agents = AgentBoard()
    for at, event in sorted(_member_events(now), key=lambda item: item[0]):
        for state in agents.handle(event, at):
            save_agent_state(session, state)
    session.flush()
    return saved
