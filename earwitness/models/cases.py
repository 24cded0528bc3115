"""Complaint cases, what was done on them, and which calls belong to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from earwitness.models.base import Base, Timestamps, utcnow

case_calls = Table(
    "case_calls",
    Base.metadata,
    Column("case_id", ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("call_id", ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True),
)


class Case(Base, Timestamps):
    """A complaint case (seeds 000-004): urgency A/B/C, escalation tier 1-3, owner."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    complainant_phone: Mapped[str | None] = mapped_column(String(40), index=True)
    complainant_name: Mapped[str | None] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(40), default="other")
    root_cause: Mapped[str | None] = mapped_column(String(40))
    urgency: Mapped[str] = mapped_column(String(1), default="B")
    tier: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(20), default="registered")
    owner: Mapped[str | None] = mapped_column(String(120))
    # First-ask responsibility (seed 001): who took the first call; kept after hand-overs.
    first_owner: Mapped[str | None] = mapped_column(String(120))
    source_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    reopened_count: Mapped[int] = mapped_column(default=0)
    summary: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    actions: Mapped[list[CaseAction]] = relationship(
        back_populates="case", order_by="CaseAction.id", cascade="all, delete-orphan"
    )


class CaseAction(Base):
    """Anything done on a case: status change, hand-over, call-back, promise, note."""

    __tablename__ = "case_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case: Mapped[Case] = relationship(back_populates="actions")
