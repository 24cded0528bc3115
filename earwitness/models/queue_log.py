"""Where the queue_log reader stopped, so a resync after a restart reads only the gap."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, utcnow


class QueueLogCursor(Base):
    """One row per queue_log path: its inode and size when last read, and the byte offset
    after the last complete line consumed (see ``telephony.queue_log.read_since``)."""

    __tablename__ = "queue_log_cursors"

    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    inode: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    read_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
