"""A call as the tracker sees it, and the small pieces both tracker and persistence share.

Kept apart from the state machine (``tracker.py``) so that readers of calls — the
database layer, the live service, replay tools — need not import the event logic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from earwitness.telephony.records import CallOutcome, CallRecord

TimeSource = Literal["event", "receipt", "resync"]
_STRENGTH = {"event": 0, "receipt": 1, "resync": 2}
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(;\d)?$")


class Event(Protocol):
    """What the tracker needs of an AMI event (``AmiMessage`` satisfies it)."""

    name: str

    def get(self, key: str, default: str | None = None) -> str | None: ...


def agent_interface(channel_or_interface: str) -> str:
    """Normalise ``Local/agent1@agents/n``, ``Local/agent1@agents-0000001;1``,
    ``PJSIP/1001-00000a3f`` to one agent identity (``Local/agent1@agents``, ``PJSIP/1001``)."""
    value = channel_or_interface.strip()
    value = _CHANNEL_SUFFIX.sub("", value)
    return value.removesuffix("/n")


@dataclass
class Attempt:
    """One agent rung for the call."""

    agent: str
    name: str | None
    rang_at: datetime
    ended_at: datetime | None = None
    result: str = "ringing"  # ringing|answered|rona|cancelled


@dataclass
class QueueVisit:
    """One stay of the caller in one queue (an overflow call has several).

    ``result``: waiting, answered, timeout (the queue gave up and the dialplan went on),
    abandoned (the caller hung up in it), unavailable (joinempty/leaveempty and the like),
    transferred (left after an answer elsewhere, e.g. transferred into this queue and out).
    """

    queue: str
    joined_at: datetime
    left_at: datetime | None = None
    result: str = "waiting"

    def wait_s(self, now: datetime | None = None) -> float | None:
        """Seconds spent in this queue; None while waiting unless ``now`` is given."""
        end = self.left_at or now
        return None if end is None else max(0.0, (end - self.joined_at).total_seconds())


@dataclass
class Transfer:
    """One transfer of the customer: who moved them, to whom, when, and whether it was taken.

    ``kind`` is ``blind`` (BlindTransfer), ``attended`` (AttendedTransfer) or ``redirect``
    (the customer left the bridge for a new leg with no transfer event, e.g. AMI Redirect).
    ``target`` is ``exten@context`` for blind transfers, else the target's agent identity.
    ``answered_at``/``answered_by`` are set once the target answered (an attended target
    answered the consultation, so it is answered when the transfer completes).
    """

    kind: str
    at: datetime
    transferer: str | None
    target: str
    result: str = "Success"
    answered_at: datetime | None = None
    answered_by: str | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


@dataclass
class EventNote:
    at: datetime
    time_source: TimeSource
    name: str
    channel: str | None
    data: dict[str, str]


#: Linkedid prefix of the calls earwitness originates itself (follow-up surveys and
#: call-backs, ``ChannelId`` chosen at Originate): they are ``outbound``, not calls waiting to
#: be answered, so the service-level figures leave them out.
ORIGINATED_PREFIX = "ew-"
#: Kinds of call that start with a Dial rather than a queue join.
DIALLED_KINDS = ("direct", "outbound")


@dataclass
class TrackedCall:
    """A call as far as the events so far tell."""

    linkedid: str
    kind: str | None = None  # queue|direct|outbound once it rings; None = not (yet) a call
    caller: str | None = None
    caller_name: str | None = None
    caller_uniqueid: str | None = None  # the channel in the queue: queue_log's callid
    queue: str | None = None
    agent: str | None = None
    agent_name: str | None = None
    entered_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: CallOutcome = CallOutcome.IN_PROGRESS
    hangup_cause: str | None = None
    transferred_to: str | None = None
    time_source: TimeSource = "event"
    asterisk_hold_s: float | None = None
    last_event_at: datetime | None = None
    channels: set[str] = field(default_factory=set)
    attempts: list[Attempt] = field(default_factory=list)
    visits: list[QueueVisit] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    merged_into: str | None = None  # a consultation folded into the customer's call
    notes: list[EventNote] = field(default_factory=list)  # not yet persisted
    _abandoned: bool = False
    _left_queue: bool = False
    _dial_status: str | None = None
    _consult: tuple[str, datetime] | None = None  # who answered an attended consultation, when
    _queue_status: CallOutcome | None = None
    _event_count: int = 0

    @property
    def is_call(self) -> bool:
        return self.kind is not None and self.entered_at is not None

    def record(self) -> CallRecord:
        """The plain record the SLA maths consumes."""
        assert self.entered_at is not None
        return CallRecord(
            key=self.linkedid,
            caller=self.caller,
            queue=self.queue,
            agent=self.agent,
            entered_at=self.entered_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
            outcome=self.outcome,
            rona=tuple(a.agent for a in self.attempts if a.result == "rona"),
            transferred_to=self.transferred_to,
            queues=tuple(v.queue for v in self.visits),
        )

    def _weaken(self, source: TimeSource) -> None:
        if _STRENGTH[source] > _STRENGTH[self.time_source]:
            self.time_source = source
