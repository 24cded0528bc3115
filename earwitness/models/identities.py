"""Who an agent is, whatever the PBX calls them (issue 18).

One person appears under several identifiers: a queue member interface (``PJSIP/2001``),
a Local channel (``Local/2001@agents/n``), a member name in queue_log (``Lucy Zhao``).
Each identifier maps to one display name, learned from AMI QueueMember events and
queue_log ``ADDMEMBER`` lines or set by hand (``source = "manual"``, never overwritten by
what is learned), so SLA, QA and search count one agent once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, Timestamps, utcnow


class AgentIdentity(Base, Timestamps):
    __tablename__ = "agent_identities"
    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(120), index=True)
    source: Mapped[str] = mapped_column(String(20))  # ami | queue_log | manual
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
