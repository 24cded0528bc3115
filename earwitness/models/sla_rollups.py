"""SLA roll-ups: partial totals per UTC quarter-hour, hour and day, so a month is read as
a few thousand rows instead of a million calls (issue 17). ``telephony/sla_rollups.py``
fills and reads them; database triggers (migration 0019) mark the quarter-hours that a
write to ``calls`` or ``agent_attempts`` touched, whoever wrote it (tracker, imports, demo,
bulk SQL).

No foreign keys: ``queue_id`` 0 stands for calls without a queue, and the rows are a cache
that is recomputed from ``calls`` (deleting a queue or agent only makes a quarter dirty).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from earwitness.models.base import Base, utcnow


class SlaRollupProfile(Base):
    """A ring cadence and seconds target that ``sla_intervals`` is kept for.

    Ring counts and "within N seconds" depend on the target, so the interval rows are kept
    per (period, seconds) pair in use; a queue whose target changes reads another profile,
    built from the calls the first time it is asked for. The ring limit itself is not part
    of the profile: it is applied to the rings histogram when the figures are read."""

    __tablename__ = "sla_rollup_profiles"
    period_ms: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Microseconds of the seconds target; -1 when the target has none.
    seconds_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaInterval(Base):
    """Calls of one UTC interval and queue, by class and ring count, for one profile.

    ``grain`` 0/1/2: ``bucket`` counts quarter-hours, hours or days since the epoch (hours
    and days are sums of the quarters, so a month reads ~30 day rows per class and ring
    count, and hours/quarters only at its ends). ``queue_id`` -1 rows total all queues
    (and calls without one): what a report over every queue reads, 8x fewer rows.

    ``cls``: 0 answered, 1 still waiting, 2 abandoned, 3 timeout, 4 other unanswered,
    5 ring-outs (``n`` = RONA attempts on the quarter's calls). ``rings`` is the ring count
    at the profile's period for answered calls, 1/2 (first ring or later) for abandons, else
    0. ``within`` counts the answered calls that met the profile's seconds target (all of
    them when it has none)."""

    __tablename__ = "sla_intervals"
    __table_args__ = {"sqlite_with_rowid": False}
    period_ms: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seconds_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    queue_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cls: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    rings: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer)
    wait_sum: Mapped[float | None] = mapped_column(Float)
    wait_max: Mapped[float | None] = mapped_column(Float)
    within: Mapped[int] = mapped_column(Integer)


class SlaAgentInterval(Base):
    """Answered calls per UTC interval (``grain``/``bucket`` as in ``SlaInterval``), queue
    (-1: all) and answering agent; target-free, so one set for every profile."""

    __tablename__ = "sla_agent_intervals"
    __table_args__ = {"sqlite_with_rowid": False}
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    queue_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer)


class SlaAgentRollupProfile(Base):
    """A profile (as in ``SlaRollupProfile``) that ``sla_agent_rollups`` is kept for.

    Apart from the queue profiles because ``group_by=agent`` reads one target only (the
    default, or the queue's in ``?queue=``): building agent rows for every queue's profile
    would multiply the start-up build (~1 M rows per profile at 1 M calls) for nothing."""

    __tablename__ = "sla_agent_rollup_profiles"
    period_ms: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seconds_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaAgentRollup(Base):
    """``SlaInterval`` with the agent in place of the queue: what ``group_by=agent`` reads.

    ``agent_id`` is the agent who answered (0: unanswered, or answered without an agent)
    for the call classes, and the agent who let the call ring out for ``cls`` 5 (RONA),
    exactly the groups of ``sla.summarise``. Every queue together (the per-queue split would
    multiply the rows; a queue filter reads the calls). Same grains, classes, rings and
    ``within`` as ``SlaInterval``, kept per ``SlaAgentRollupProfile``."""

    __tablename__ = "sla_agent_rollups"
    __table_args__ = {"sqlite_with_rowid": False}
    period_ms: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seconds_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    grain: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cls: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    rings: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(Integer)
    wait_sum: Mapped[float | None] = mapped_column(Float)
    wait_max: Mapped[float | None] = mapped_column(Float)
    within: Mapped[int] = mapped_column(Integer)


class SlaDirtyInterval(Base):
    """A UTC quarter-hour whose calls changed since its roll-up rows were computed.

    Written by triggers only; readers compute these quarters from ``calls`` and the next
    refresh recomputes their rows and deletes the mark."""

    __tablename__ = "sla_dirty_intervals"
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
