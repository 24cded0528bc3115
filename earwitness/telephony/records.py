"""Plain call records: what the live tracker and the queue_log import both produce.

The SLA maths (``sla.py``) only ever sees these, so it cannot tell a call seen live on
AMI from one read back out of a year-old ``queue_log``. Records validate themselves on
construction: a record that exists has a tz-aware, non-negative, bounded wait, so the
aggregation code never has to defend against clock nonsense.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

#: Longest plausible wait between a caller starting to ring and answer/hang-up. No queue
#: holds a caller for a day; a longer "wait" means a lost hang-up event or a clock jump,
#: and must be rejected at the edge rather than drag an SLA figure.
MAX_WAIT_S = 86_400.0


class CallOutcome(StrEnum):
    """How a call ended, from the caller's point of view."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"  # caller hung up (or left with a key) while waiting
    TIMEOUT = "timeout"  # the queue gave up on the caller (queue timeout)
    BUSY = "busy"
    UNAVAILABLE = "unavailable"  # nobody could take it (e.g. queue empty)
    FAILED = "failed"
    IN_PROGRESS = "in_progress"  # still ringing/waiting, or answered and still talking


#: Outcomes of a finished call that no agent answered.
UNANSWERED_OUTCOMES = frozenset(
    {
        CallOutcome.ABANDONED,
        CallOutcome.TIMEOUT,
        CallOutcome.BUSY,
        CallOutcome.UNAVAILABLE,
        CallOutcome.FAILED,
    }
)


@dataclass(frozen=True)
class CallRecord:
    """One caller's attempt to reach an agent (one queue visit for queue_log imports).

    ``entered_at`` is when ringing started for the caller (queue entry / dial begin): the
    moment the ring clock starts. ``answered_at`` is set whenever an agent answered, also
    for a call that is still ``IN_PROGRESS`` (talking). A finished unanswered call must have
    ``ended_at``, because its wait is measured to the hang-up.
    """

    key: str
    caller: str | None
    queue: str | None
    agent: str | None
    entered_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: CallOutcome
    rona: tuple[str, ...] = ()
    transferred_to: str | None = None
    #: Every queue the caller passed through, in order (``queue`` is the one that owns the
    #: call: the answering queue, else the last one). Empty for direct calls.
    queues: tuple[str, ...] = ()
    #: When each ring-out in ``rona`` rang and stopped, where the source says (queue_log's
    #: RINGNOANSWER line time and ring duration); same order as ``rona``, or empty.
    rona_times: tuple[tuple[datetime, datetime], ...] = ()

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("call record needs a non-empty key")
        if not isinstance(self.outcome, CallOutcome):
            raise ValueError(f"outcome must be a CallOutcome, got {self.outcome!r}")
        for name in ("entered_at", "answered_at", "ended_at"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware, got {value!r}")
        self._check_order()
        self._check_outcome()

    def _check_order(self) -> None:
        limit = timedelta(seconds=MAX_WAIT_S)
        if self.answered_at is not None:
            if self.answered_at < self.entered_at:
                raise ValueError(f"{self.key}: answered before it entered")
            if self.answered_at - self.entered_at > limit:
                raise ValueError(f"{self.key}: wait longer than {MAX_WAIT_S:.0f} s")
        if self.ended_at is not None:
            start = self.answered_at or self.entered_at
            if self.ended_at < start:
                raise ValueError(f"{self.key}: ended before it entered/was answered")
            if self.answered_at is None and self.ended_at - self.entered_at > limit:
                raise ValueError(f"{self.key}: wait longer than {MAX_WAIT_S:.0f} s")

    def _check_outcome(self) -> None:
        if self.outcome is CallOutcome.ANSWERED and self.answered_at is None:
            raise ValueError(f"{self.key}: outcome answered needs answered_at")
        if self.outcome in UNANSWERED_OUTCOMES:
            if self.answered_at is not None:
                raise ValueError(f"{self.key}: outcome {self.outcome} but answered_at is set")
            if self.ended_at is None:
                raise ValueError(f"{self.key}: finished unanswered call needs ended_at")
        if self.outcome is CallOutcome.IN_PROGRESS and self.ended_at is not None:
            raise ValueError(f"{self.key}: in progress but ended_at is set")

    @property
    def answered(self) -> bool:
        """True once an agent picked up (talking or finished)."""
        return self.answered_at is not None

    @property
    def finished(self) -> bool:
        return self.outcome is not CallOutcome.IN_PROGRESS

    @property
    def wait_s(self) -> float | None:
        """Seconds the caller waited: to answer, else to hang-up; None while still waiting."""
        if self.answered_at is not None:
            return (self.answered_at - self.entered_at).total_seconds()
        if self.ended_at is not None:
            return (self.ended_at - self.entered_at).total_seconds()
        return None

    @property
    def talk_s(self) -> float | None:
        """Seconds from answer to end; None if unanswered or still talking."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds()
