"""Agent (queue member) states for the wallboard: pure state, no sockets, no database.

Calls only show an agent while one rings or talks; a wallboard also needs who is paused
(and why), who is free, who is logged out. app_queue reports exactly that per member:
``QueueMemberStatus`` (device state), ``QueueMemberPause`` (with ``PausedReason``),
``QueueMemberAdded``/``QueueMemberRemoved``; after a reconnect the ``QueueStatus`` list
(``QueueMember`` items) gives the same facts. This module folds them into one state per
agent and reports each change, so the edge can store spans (``AgentStateSpan``) and the
time in each state per day is cut from spans by ``time_in_states``.

One state per agent, though membership and pause are per queue: an agent paused in every
queue they belong to is ``paused`` (they take no calls); paused in some only, they still
take calls and their device state decides. An agent in no queue is ``logged_out``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from earwitness.telephony.calls import Event, agent_interface

#: app_queue's member Status (AST_DEVICE_*) -> wallboard state.
DEVICE_STATES = {
    "0": "unknown",
    "1": "available",
    "2": "in_call",
    "3": "busy",
    "4": "invalid",
    "5": "unavailable",
    "6": "ringing",
    "7": "ringing",  # ringing while in use
    "8": "on_hold",
}
PAUSED = "paused"
LOGGED_OUT = "logged_out"
_MEMBER_EVENTS = frozenset(
    {"QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded", "QueueMemberRemoved"}
)


@dataclass(frozen=True)
class AgentState:
    """An agent's state from ``since`` on (``reason``: why paused, when paused)."""

    agent: str
    name: str | None
    state: str
    reason: str | None
    since: datetime


@dataclass
class _Member:
    name: str | None = None
    device: str = "unknown"
    paused: dict[str, str | None] = field(default_factory=dict)  # queue -> reason
    queues: set[str] = field(default_factory=set)
    current: AgentState | None = None

    def state(self) -> tuple[str, str | None]:
        if not self.queues:
            return LOGGED_OUT, None
        if self.queues <= set(self.paused):
            reasons = sorted({r for q in self.queues if (r := self.paused[q])})
            return PAUSED, ", ".join(reasons) or None
        return self.device, None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


class AgentBoard:
    """Feeds on queue-member events; ``handle`` returns the agents whose state changed."""

    def __init__(self) -> None:
        self.members: dict[str, _Member] = {}

    @staticmethod
    def wants(name: str) -> bool:
        return name in _MEMBER_EVENTS

    def handle(self, event: Event, at: datetime) -> list[AgentState]:
        if event.name not in _MEMBER_EVENTS:
            return []
        fields = {k: event.get(k) for k in _FIELDS}
        return self._apply(event.name, fields, at)

    def _apply(self, name: str, ev: Mapping[str, str | None], at: datetime) -> list[AgentState]:
        agent = self._fold(name, ev)
        return [] if agent is None else self._changed(agent, self.members[agent], at)

    def _fold(self, name: str, ev: Mapping[str, str | None]) -> str | None:
        """Apply one member event/list item; the agent it is about (None: not a member's)."""
        raw = ev.get("Interface") or ev.get("Location") or ev.get("StateInterface")
        queue = ev.get("Queue")
        if not raw or not queue:
            return None
        agent = agent_interface(raw)
        member = self.members.setdefault(agent, _Member())
        member.name = ev.get("MemberName") or ev.get("Name") or member.name
        if name == "QueueMemberRemoved":
            member.queues.discard(queue)
            member.paused.pop(queue, None)
            return agent
        member.queues.add(queue)
        if ev.get("Status") is not None:
            member.device = DEVICE_STATES.get(ev.get("Status") or "", "unknown")
        if ev.get("Paused") is not None:
            if _flag(ev.get("Paused")):
                member.paused[queue] = ev.get("PausedReason") or ev.get("Reason") or None
            else:
                member.paused.pop(queue, None)
        return agent

    def _changed(self, agent: str, member: _Member, at: datetime) -> list[AgentState]:
        state, reason = member.state()
        now = member.current
        if now is not None and (now.state, now.reason) == (state, reason):
            return []
        member.current = AgentState(agent, member.name, state, reason, at)
        return [member.current]

    def resync(self, members: Iterable[Mapping[str, str]], now: datetime) -> list[AgentState]:
        """Take the PBX's ``QueueMember`` list (QueueStatus) as the truth after a reconnect.

        Membership is rebuilt from the list: a member we knew that is missing from it was
        removed while the link was down."""
        listed: defaultdict[str, list[Mapping[str, str]]] = defaultdict(list)
        for item in members:
            raw = item.get("Location") or item.get("Interface")
            if raw and item.get("Queue"):
                listed[agent_interface(raw)].append(item)
        changes: list[AgentState] = []
        for agent in set(self.members) | set(listed):
            member = self.members.setdefault(agent, _Member())
            member.queues, member.paused = set(), {}
            for item in listed.get(agent, []):
                self._fold("QueueMemberStatus", item)
            changes += self._changed(agent, member, now)
        return changes

    def states(self) -> list[AgentState]:
        return sorted((m.current for m in self.members.values() if m.current), key=_by_agent)


def _by_agent(state: AgentState) -> str:
    return state.agent


_FIELDS = (
    "Queue",
    "Interface",
    "Location",
    "StateInterface",
    "MemberName",
    "Name",
    "Status",
    "Paused",
    "PausedReason",
    "Reason",
)


@dataclass(frozen=True)
class Span:
    """A stored stretch of one state (``end`` None: still in it)."""

    state: str
    start: datetime
    end: datetime | None


def time_in_states(spans: Iterable[Span], start: datetime, end: datetime) -> dict[str, float]:
    """Seconds spent in each state inside [start, end) (e.g. a local day up to now).

    Spans are clipped to the window; an open span runs to ``end``. Overlaps are not
    expected (the edge closes a span before it opens the next) and are not corrected.
    """
    if end <= start:
        return {}
    totals: defaultdict[str, float] = defaultdict(float)
    for span in spans:
        a = max(span.start, start)
        b = min(span.end or end, end)
        if b > a:
            totals[span.state] += (b - a).total_seconds()
    return dict(sorted(totals.items()))
