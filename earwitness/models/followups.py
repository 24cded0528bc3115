"""Follow-ups of resolved cases (seed 000: within 48 h, by phone or SMS, satisfaction 1-5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from earwitness.models.base import Base, Timestamps
from earwitness.models.cases import Case


class FollowUp(Base, Timestamps):
    """One follow-up of a case: its channel, its tries so far, and the customer's answer.

    Each try is also a case action (``follow_up_attempt``), so the timeline and the
    audit show every call and message; this row is the state the scheduler works from.
    """

    __tablename__ = "follow_ups"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # survey | agent | sms
    # scheduled | calling | retry_wait | answered | unreachable | failed
    state: Mapped[str] = mapped_column(String(20), default="scheduled")
    phone: Mapped[str | None] = mapped_column(String(40), index=True)
    agent: Mapped[str | None] = mapped_column(String(120))
    tries: Mapped[int] = mapped_column(default=0)
    max_tries: Mapped[int] = mapped_column(default=3)
    due_at: Mapped[datetime | None]
    next_try_at: Mapped[datetime | None]
    last_result: Mapped[str | None] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[int | None]
    answered_at: Mapped[datetime | None]
    # linkedids of the calls placed for it (also linked to the case once tracked)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case: Mapped[Case] = relationship()
