"""Calls as the PBX saw them: queues, agents, calls, their raw events and ring attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from earwitness.models.recordings import Recording

from earwitness.models.base import Base, Timestamps, utcnow


class Queue(Base, Timestamps):
    """A call queue; its SLA target may be in rings or seconds."""

    __tablename__ = "queues"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    sla_rings: Mapped[int | None]
    sla_seconds: Mapped[float | None]
    cadence: Mapped[str] = mapped_column(String(40), default="cn")


class Agent(Base, Timestamps):
    """An agent as the PBX names it (queue member interface) plus a display name."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    interface: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str | None] = mapped_column(String(120))


class Call(Base, Timestamps):
    """One complaint call, keyed by Asterisk's linkedid so transfers stay one call."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("source", "linkedid"),
        Index("ix_calls_entered_at", "entered_at"),
        Index("ix_calls_caller", "caller"),
        # The wallboard reads calls in progress: without this it scans the history (issue 17).
        Index("ix_calls_outcome_entered_at", "outcome", "entered_at"),
        # Covers the SLA aggregation (telephony/sla_sql.py): a month is read from the index
        # alone instead of one table lookup per call (1.8 s -> 0.3 s at 1 M on SQLite).
        Index(
            "ix_calls_sla",
            "entered_at",
            "kind",
            "outcome",
            "queue_id",
            "agent_id",
            "answered_at",
            "wait_s",
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(20), default="ami")  # ami|queue_log|demo|upload
    kind: Mapped[str] = mapped_column(String(20), default="queue")  # queue|direct|outbound
    caller: Mapped[str | None] = mapped_column(String(80))
    caller_name: Mapped[str | None] = mapped_column(String(120))
    # Uniqueid of the caller's channel in the queue: the callid queue_log writes.
    caller_uniqueid: Mapped[str | None] = mapped_column(String(80), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    entered_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wait_s: Mapped[float | None]
    rings: Mapped[int | None]
    cadence: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20), default="in_progress")
    hangup_cause: Mapped[str | None] = mapped_column(String(80))
    transferred_to: Mapped[str | None] = mapped_column(String(120))
    time_source: Mapped[str] = mapped_column(String(10), default="event")  # event|receipt
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    queue: Mapped[Queue | None] = relationship(lazy="joined")
    agent: Mapped[Agent | None] = relationship(lazy="joined")
    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[AgentAttempt]] = relationship(
        back_populates="call", order_by="AgentAttempt.id", cascade="all, delete-orphan"
    )
    visits: Mapped[list[QueueVisit]] = relationship(
        back_populates="call", order_by="QueueVisit.id", cascade="all, delete-orphan"
    )
    transfers: Mapped[list[CallTransfer]] = relationship(
        back_populates="call", order_by="CallTransfer.id", cascade="all, delete-orphan"
    )
    recordings: Mapped[list[Recording]] = relationship(
        primaryjoin="Call.id == foreign(Recording.call_id)", viewonly=True
    )


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@event.listens_for(Call, "before_insert")
@event.listens_for(Call, "before_update")
def _derive_wait(_mapper: Any, _connection: Any, call: Call) -> None:
    """``wait_s`` is what the call's own times say (``CallRecord.wait_s``: to the answer, else
    to the hang-up). The SLA is aggregated from this column in SQL, so a row written without
    it (a hand-made row, an import that set only the times) must carry it all the same."""
    if call.wait_s is None and call.entered_at is not None:
        until = call.answered_at or call.ended_at
        if until is not None:
            call.wait_s = (_utc(until) - _utc(call.entered_at)).total_seconds()


class CallEvent(Base):
    """A PBX event that shaped a call, kept for the call's history and for audits."""

    __tablename__ = "call_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    time_source: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(60))
    channel: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    call: Mapped[Call] = relationship(back_populates="events")


class AgentAttempt(Base):
    """One agent being rung for a call: answered, rang out (RONA) or cancelled."""

    __tablename__ = "agent_attempts"
    # Agents ringing now (the wallboard) without scanning every attempt ever (issue 17).
    __table_args__ = (Index("ix_agent_attempts_result", "result"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    rang_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    result: Mapped[str] = mapped_column(String(20), default="ringing")  # answered|rona|cancelled
    call: Mapped[Call] = relationship(back_populates="attempts")
    agent: Mapped[Agent] = relationship(lazy="joined")


class QueueVisit(Base):
    """One stay of a caller in one queue; an overflow call has one per queue it passed.

    The call itself belongs to the answering queue (else the last one); these rows keep
    the path and the wait in each queue."""

    __tablename__ = "call_queue_visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id"))
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    wait_s: Mapped[float | None]
    # waiting|answered|timeout|abandoned|unavailable|...
    result: Mapped[str] = mapped_column(String(20), default="waiting")
    call: Mapped[Call] = relationship(back_populates="visits")
    queue: Mapped[Queue] = relationship(lazy="joined")


class CallTransfer(Base):
    """A transfer of the customer: who moved them, to whom, when, and whether it was taken."""

    __tablename__ = "call_transfers"
    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # blind|attended
    at: Mapped[datetime]
    transferer: Mapped[str | None] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(120))
    result: Mapped[str] = mapped_column(String(40), default="Success")
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(120))
    call: Mapped[Call] = relationship(back_populates="transfers")


class AgentStateSpan(Base):
    """An agent (queue member) in one state from ``started_at`` until ``ended_at``.

    Spans, not counters: the time in each state for any day (in any time zone) is cut
    from them, and an open span (``ended_at`` None) is the agent's state now."""

    __tablename__ = "agent_state_spans"
    __table_args__ = (Index("ix_agent_state_spans_agent_started", "agent_id", "started_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(120))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    agent: Mapped[Agent] = relationship(lazy="joined")
