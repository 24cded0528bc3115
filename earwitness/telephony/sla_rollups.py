"""SLA roll-ups per UTC quarter-hour: how they are computed, kept right and refreshed.

Why: ``/api/sla`` over a month of a million calls read every call (in SQL since issue 17,
still ~1-2 s on a 2-core machine for hours/days). Like Asterisk reporting tools, we keep
partial totals per 15-minute interval and queue (``models/sla_rollups.py``). At 1 M calls
a month those barely compress (~40 calls per queue-quarter spread over ~15 ring counts:
~640k rows; per agent-quarter ~1 call), so they are summed up again into UTC hours and
days, and into all-queues rows (``queue_id`` -1): a month over every queue reads ~30 day
rows per (class, rings) plus hours and quarters at its ends (``sla_sql._cover``).

What a row must hold for every ``SlaFigures`` field to stay exact:

- ring counts depend on the cadence and "within N s" on the seconds target, so interval
  rows are kept per *profile* (period, seconds in microseconds), computed with the very
  integer rule of ``rings.ring_count`` (``ceil(round(wait x 10^6) / period_us)``); the ring
  limit is applied to the histogram when reading, so "3 rings" and "4 rings" share rows.
  A profile nobody has asked for yet is built from the calls on first use, so a changed
  queue target (``admin.set_queue_target``) needs no hook: it simply reads another profile;
- abandons keep rings 1 (within the first ring: ``wait_us <= period_us``) or 2 (later);
- waits are kept as sums and maxima (means then differ from the per-record reference only
  in float summation order, like the SQL path), counts per class exactly;
- answered calls per agent live in their own target-free table (``sla_agent_intervals``).

``group_by=agent`` groups by who answered (ring-outs by who missed the call), so it reads
``sla_agent_rollups``: the same rows with the agent in place of the queue, over every queue
(~1 call per agent-quarter, ~66 over ~15 ring counts per agent-day at 1 M calls a month:
the day rows are what make a month cheap). They are kept only for the profiles that
agent reports read (``sla_agent_rollup_profiles``, usually just the default target's),
built from the calls the first time, and refreshed from the same marks as the queue rows.

How they stay right whatever writes calls (tracker, queue_log import, demo history, bulk
SQL, deletes): database triggers (migration 0019) mark every UTC quarter-hour a write to
``calls`` or to a ring-out in ``agent_attempts`` touched. Readers never trust a marked
quarter: they compute it from ``calls`` in the same query shape (so calls in progress count
exactly as before), and :func:`refresh` recomputes marked quarters and clears the marks.
Where the roll-ups cannot answer (filters by agent, caller, outcome or rings; a queue
filter with group_by agent; too many marked quarters), ``sla_sql`` uses its per-call SQL
path.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    case,
    cast,
    delete,
    extract,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from earwitness.models import (
    AgentAttempt,
    Call,
    SlaAgentInterval,
    SlaAgentRollup,
    SlaAgentRollupProfile,
    SlaDirtyInterval,
    SlaInterval,
    SlaRollupProfile,
)
from earwitness.telephony.rings import SlaTarget

QUARTER_S = 900
_US = 1_000_000
NO_SECONDS = -1  # seconds_us of a profile whose target has no seconds limit
_NO_LIMIT = 10**15  # microseconds: beyond any plausible wait
# Classes (``SlaInterval.cls``).
ANSWERED, WAITING, ABANDONED, TIMEOUT, OTHER, RONA = range(6)
# Grains (``grain`` column): bucket = UTC quarter-hour, hour or day since the epoch.
QUARTER, HOUR, DAY = range(3)
GRAIN_S = {QUARTER: 900, HOUR: 3600, DAY: 86_400}
ALL_QUEUES = -1  # queue_id of the rows that total every queue (and calls without one)
_RANGES_PER_STATEMENT = 40


@dataclass(frozen=True, order=True)
class Profile:
    """What interval rows depend on in a target: its ring period and its seconds limit."""

    period_ms: int
    seconds_us: int

    @classmethod
    def of(cls, target: SlaTarget) -> Profile:
        seconds = round(target.seconds * _US) if target.seconds is not None else NO_SECONDS
        return cls(target.cadence.period_ms, seconds)


def bucket_start(bucket: int) -> datetime:
    return datetime.fromtimestamp(bucket * QUARTER_S, UTC)


def bucket_of(at: datetime) -> int:
    """The UTC quarter-hour of ``at`` (the triggers' ``floor(epoch / 900)``)."""
    return int(at.timestamp() // QUARTER_S)


def call_time_key(dialect: str, size: int = QUARTER_S, shift: int = 0) -> ColumnElement[Any]:
    """``floor((epoch(entered_at) + shift) / size)`` in SQL; with the defaults, the call's
    UTC quarter-hour as the triggers compute it."""
    if dialect == "postgresql":
        epoch: ColumnElement[Any] = extract("epoch", Call.entered_at)
        return cast(func.floor((epoch + shift) / size), BigInteger)
    seconds = cast(func.strftime("%s", Call.entered_at), BigInteger)
    return (seconds + shift) // size  # non-negative after 1970: // floors


def call_agent_key() -> ColumnElement[Any]:
    """The ``group_by=agent`` group of a call: the agent who answered it, 0 when it was not
    answered or has no agent (``NO_AGENT``), as ``sla.summarise`` groups. One definition
    for the per-call SQL path, the agent roll-ups and the calls of marked quarters."""
    return case((Call.answered_at.is_not(None), func.coalesce(Call.agent_id, 0)), else_=0)


def runs(buckets: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted buckets as half-open runs ``[first, last + 1)``."""
    out: list[tuple[int, int]] = []
    for b in sorted(set(buckets)):
        if out and out[-1][1] == b:
            out[-1] = (out[-1][0], b + 1)
        else:
            out.append((b, b + 1))
    return out


def in_ranges(ranges: Sequence[tuple[datetime, datetime]]) -> ColumnElement[bool]:
    return or_(*(and_(Call.entered_at >= lo, Call.entered_at < hi) for lo, hi in ranges))


def call_intervals(
    keys: Sequence[ColumnElement[Any]],
    period_us: ColumnElement[Any],
    seconds_us: ColumnElement[Any],
    where: Sequence[ColumnElement[bool]],
) -> Select[Any]:
    """Interval rows computed from ``calls``: ``*keys, cls, rings, n, wait_sum, wait_max,
    within`` grouped by the keys, class and ring count (ring-outs not included).

    The one definition of what a roll-up row holds: :func:`refresh` stores its rows and
    readers compute marked quarters with it, so both always agree. Labels are unique
    (``k0``..., ``kc``, ``kr``) because PostgreSQL resolves a GROUP BY name to an input
    column first (``calls.rings`` exists)."""
    wait_us = cast(func.round(Call.wait_s * _US), BigInteger)
    rings = (wait_us + period_us - 1) // period_us
    answered = Call.answered_at.is_not(None)
    no_wait = Call.wait_s.is_(None)  # an uploaded recording's call, a caller still queued
    cls = case(
        (no_wait, WAITING),
        (answered, ANSWERED),
        (Call.outcome == "in_progress", WAITING),
        (Call.outcome == "abandoned", ABANDONED),
        (Call.outcome == "timeout", TIMEOUT),
        else_=OTHER,
    )
    ring_key = case(
        (no_wait, 0),
        (answered, rings),
        (Call.outcome == "abandoned", case((wait_us <= period_us, 1), else_=2)),
        else_=0,
    )
    within = func.sum(case((wait_us <= seconds_us, 1), else_=0))
    labels = [f"k{i}" for i in range(len(keys))]
    return (
        select(
            *(k.label(name) for k, name in zip(keys, labels, strict=True)),
            cls.label("kc"),
            ring_key.label("kr"),
            func.count().label("n"),
            func.sum(Call.wait_s).label("wait_sum"),
            func.max(Call.wait_s).label("wait_max"),
            within.label("within"),
        )
        .where(Call.kind != "outbound", *where)
        .group_by(*(literal_column(name) for name in (*labels, "kc", "kr")))
    )


def call_ronas(
    keys: Sequence[ColumnElement[Any]], where: Sequence[ColumnElement[bool]]
) -> Select[Any]:
    """Ring-outs on the calls, counted per key: ``*keys, n``.

    With ``where`` (a few quarter-hours) the result test is wrapped in ``coalesce`` so that
    SQLite drives the join from the calls in those quarters (time index, then attempts by
    call) instead of from every ring-out ever (400 ms -> 1 ms at 1 M calls)."""
    labels = [f"k{i}" for i in range(len(keys))]
    rona = (
        func.coalesce(AgentAttempt.result, "") == "rona" if where else AgentAttempt.result == "rona"
    )
    return (
        select(
            *(k.label(name) for k, name in zip(keys, labels, strict=True)),
            func.count().label("n"),
        )
        .select_from(Call)
        .join(AgentAttempt, AgentAttempt.call_id == Call.id)
        .where(Call.kind != "outbound", rona, *where)
        .group_by(*(literal_column(name) for name in labels))
    )


def call_answered_by(
    keys: Sequence[ColumnElement[Any]], where: Sequence[ColumnElement[bool]]
) -> Select[Any]:
    """Answered calls per key and answering agent: ``*keys, agent_id, n`` (the calls the
    reference puts in ``answered_by_agent``: answered, with a wait and an agent)."""
    labels = [f"k{i}" for i in range(len(keys))]
    return (
        select(
            *(k.label(name) for k, name in zip(keys, labels, strict=True)),
            Call.agent_id.label("ka"),
            func.count().label("n"),
        )
        .where(
            Call.kind != "outbound",
            Call.answered_at.is_not(None),
            Call.wait_s.is_not(None),
            Call.agent_id.is_not(None),
            *where,
        )
        .group_by(*(literal_column(name) for name in (*labels, "ka")))
    )


def _bucket_ranges(buckets: Iterable[int]) -> list[list[tuple[datetime, datetime]]]:
    spans = [(bucket_start(a), bucket_start(b)) for a, b in runs(buckets)]
    return [
        spans[i : i + _RANGES_PER_STATEMENT] for i in range(0, len(spans), _RANGES_PER_STATEMENT)
    ]


def grain_ranges(
    column: ColumnElement[Any], spans: Sequence[tuple[int, int]]
) -> ColumnElement[bool]:
    """``column`` in any of the half-open ``[lo, hi)`` spans."""
    return or_(*(and_(column >= lo, column < hi) for lo, hi in spans))


def _quarters_from_calls(
    conn: Connection,
    profile: Profile,
    chunks: list[list[tuple[datetime, datetime]]] | None,
    agents: bool = False,
) -> None:
    """Insert the profile's per-queue (``agents``: per-agent) quarter-hour rows for the
    given time ranges (None: every call)."""
    dialect = conn.dialect.name
    group: ColumnElement[Any] = call_agent_key() if agents else func.coalesce(Call.queue_id, 0)
    keys = [call_time_key(dialect), group]
    # Ring-outs count for the agent who missed the call, else for the call's queue.
    rona_keys: list[ColumnElement[Any]] = (
        [keys[0], AgentAttempt.__table__.c.agent_id] if agents else keys
    )
    table = SlaAgentRollup if agents else SlaInterval
    period = literal(profile.period_ms * 1000, BigInteger)
    seconds = literal(
        profile.seconds_us if profile.seconds_us != NO_SECONDS else _NO_LIMIT, BigInteger
    )
    fixed: list[ColumnElement[Any]] = [
        literal(profile.period_ms),
        literal(profile.seconds_us, BigInteger),
        literal(QUARTER),
    ]
    columns = ["period_ms", "seconds_us", "grain", "bucket", _dimension(agents), "cls", "rings"]
    for where in [[in_ranges(c)] for c in chunks] if chunks is not None else [[]]:
        rows = call_intervals(keys, period, seconds, where).subquery()
        conn.execute(
            insert(table).from_select(
                [*columns, "n", "wait_sum", "wait_max", "within"],
                select(*fixed, *rows.c),
            )
        )
        ronas = call_ronas(rona_keys, where).subquery()
        conn.execute(
            insert(table).from_select(
                [*columns, "n", "within"],
                select(
                    *fixed, ronas.c.k0, ronas.c.k1, literal(RONA), literal(0), ronas.c.n, literal(0)
                ),
            )
        )


def _agent_quarters_from_calls(
    conn: Connection, chunks: list[list[tuple[datetime, datetime]]]
) -> None:
    keys = [call_time_key(conn.dialect.name), func.coalesce(Call.queue_id, 0)]
    for chunk in chunks:
        rows = call_answered_by(keys, [in_ranges(chunk)]).subquery()
        conn.execute(
            insert(SlaAgentInterval).from_select(
                ["grain", "bucket", "queue_id", "agent_id", "n"],
                select(literal(QUARTER), *rows.c),
            )
        )


def _dimension(agents: bool) -> str:
    return "agent_id" if agents else "queue_id"


def _table(profile: Profile | None, agents: bool = False) -> Table:
    """``sla_intervals``; ``agents``: ``sla_agent_rollups``; ``profile`` None: the
    answered-by-agent table (``sla_agent_intervals``)."""
    model = SlaAgentInterval if profile is None else SlaAgentRollup if agents else SlaInterval
    return typing.cast(Table, model.__table__)


def _derive(
    conn: Connection,
    profile: Profile | None,
    grain: int,
    spans: Sequence[tuple[int, int]] | None,
    agents: bool = False,
) -> None:
    """Rows of ``grain`` from the finer rows below it, for the ``grain`` buckets in
    ``spans`` (None: all). For the quarter grain: the all-queues rows (queue_id -1) from
    the per-queue ones (the agent rows, ``agents``, have no queue: nothing to do).
    ``profile`` None: the answered-by-agent table."""
    if agents and grain == QUARTER:
        return
    table = _table(profile, agents)
    c = table.c
    bucket: ColumnElement[Any] = c.bucket
    queue: ColumnElement[Any] = c[_dimension(agents)]
    only: list[ColumnElement[bool]] = []
    if grain == QUARTER:
        source_grain, queue = QUARTER, literal(ALL_QUEUES)
        only.append(c.queue_id >= 0)
    else:
        source_grain = grain - 1
        bucket = c.bucket // (4 if grain == HOUR else 24)
    where = [c.grain == source_grain, *only]
    if profile is not None:
        where += [c.period_ms == profile.period_ms, c.seconds_us == profile.seconds_us]
    if spans is not None:  # on the source's own column, so its primary key is used
        factor = 1 if grain == QUARTER else 4 if grain == HOUR else 24
        where.append(grain_ranges(c.bucket, [(lo * factor, hi * factor) for lo, hi in spans]))
    if profile is not None:
        keys = [c.cls, c.rings]
        values = [
            func.sum(c.n),
            func.sum(c.wait_sum),
            func.max(c.wait_max),
            func.sum(c.within),
        ]
        head = [literal(profile.period_ms), literal(profile.seconds_us, BigInteger)]
        names = ["period_ms", "seconds_us", "grain", "bucket", _dimension(agents), "cls"]
        names += ["rings", "n", "wait_sum", "wait_max", "within"]
    else:
        keys, values, head = [c.agent_id], [func.sum(c.n)], []
        names = ["grain", "bucket", "queue_id", "agent_id", "n"]
    query = (
        select(*head, literal(grain), bucket.label("kb"), queue.label("kq"), *keys, *values)
        .where(*where)
        .group_by(literal_column("kb"), literal_column("kq"), *keys)
    )
    conn.execute(insert(table).from_select(names, query))


def _rebuild(
    conn: Connection, profile: Profile | None, marked: Sequence[int] | None, agents: bool = False
) -> None:
    """Recompute ``profile``'s rows (``agents``: its per-agent rows; None: the answered-by
    table) for the marked quarters and the hours and days that hold them (None:
    everything, for a new profile)."""
    table = _table(profile, agents)
    c = table.c
    mine = (
        [c.period_ms == profile.period_ms, c.seconds_us == profile.seconds_us]
        if profile is not None
        else []
    )
    per_grain: dict[int, list[tuple[int, int]] | None] = {
        QUARTER: runs(marked) if marked is not None else None,
        HOUR: runs(b // 4 for b in marked) if marked is not None else None,
        DAY: runs(b // 96 for b in marked) if marked is not None else None,
    }
    for grain, spans in per_grain.items():
        if spans is None:
            continue  # a new profile: nothing to delete
        for span in spans:  # one range per statement: a primary-key range, never a scan
            conn.execute(
                delete(table).where(*mine, c.grain == grain, grain_ranges(c.bucket, [span]))
            )
    chunks = _bucket_ranges(marked) if marked is not None else None
    if profile is not None:
        _quarters_from_calls(conn, profile, chunks, agents)
    else:
        _agent_quarters_from_calls(conn, chunks or [])
    for grain, spans in per_grain.items():
        if spans is None:
            _derive(conn, profile, grain, None, agents)
            continue
        for span in spans:
            _derive(conn, profile, grain, [span], agents)


def _take_marks(conn: Connection) -> list[int]:
    """The marked quarters, unmarked in this transaction.

    A writer's trigger marks a quarter that is already marked with a no-op, so clearing a
    mark while that writer is still open would lose its call. PostgreSQL: the EXCLUSIVE
    table lock waits for every open transaction that has marked (they hold ROW EXCLUSIVE
    until they end) and holds new ones back until this refresh commits. SQLite: the first
    delete takes the database write lock, and calls are read after it."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE sla_dirty_intervals IN EXCLUSIVE MODE"))
    marked = list(conn.scalars(select(SlaDirtyInterval.bucket)))
    for i in range(0, len(marked), 500):
        part = marked[i : i + 500]
        conn.execute(delete(SlaDirtyInterval).where(SlaDirtyInterval.bucket.in_(part)))
    return marked


def kept_profiles(conn: Connection | Any, agents: bool = False) -> set[Profile]:
    """The profiles whose queue rows (``agents``: agent rows) are kept; ``conn``: a
    Connection or a Session."""
    model = SlaAgentRollupProfile if agents else SlaRollupProfile
    return {Profile(p, s) for p, s in conn.execute(select(model.period_ms, model.seconds_us))}


def refresh(
    conn: Connection,
    add: Iterable[Profile] = (),
    fold: bool = True,
    add_agents: Iterable[Profile] = (),
) -> int:
    """Recompute every marked quarter (and its hour and day) for every profile (unless
    ``fold`` is False), and build the ``add`` profiles (``add_agents``: their agent rows)
    that are not kept yet from all calls; returns the number of quarters recomputed.

    Runs in the caller's transaction (``engine.begin()``); safe beside live writers (see
    ``_take_marks``). A new profile is built from the calls as they are now: quarters
    still marked are read from the calls anyway until the next fold."""
    marked = _take_marks(conn) if fold else []
    kept, kept_agents = kept_profiles(conn), kept_profiles(conn, agents=True)
    if marked:
        for profile in sorted(kept):
            _rebuild(conn, profile, marked)
        _rebuild(conn, None, marked)
        for profile in sorted(kept_agents):
            _rebuild(conn, profile, marked, agents=True)
    for agents, new in ((False, set(add) - kept), (True, set(add_agents) - kept_agents)):
        for profile in sorted(new):
            conn.execute(
                insert(SlaAgentRollupProfile if agents else SlaRollupProfile).values(
                    period_ms=profile.period_ms,
                    seconds_us=profile.seconds_us,
                    built_at=datetime.now(UTC),
                )
            )
            _rebuild(conn, profile, None, agents)
        if new and conn.dialect.name == "postgresql":
            # A build adds ~1 M rows at 1 M calls: without fresh statistics (autovacuum off
            # or not round yet) the planner estimates 1 row and reads a period with marked
            # quarters (several bucket ranges) by filtering every row of the grain instead
            # of a bitmap OR of ranges: 0.96 s instead of 0.04 s for agents at 1 M calls.
            conn.execute(text(f"ANALYZE {_table(next(iter(new)), agents).name}"))
    return len(marked)


def try_refresh(
    conn_source: Any,
    add: Iterable[Profile] = (),
    fold: bool = True,
    wait_ms: int = 500,
    add_agents: Iterable[Profile] = (),
) -> bool:
    """:func:`refresh` in a transaction of its own that waits at most ``wait_ms`` for locks
    (a reader must never hang on a writer, least of all on its own caller's open write);
    False when it could not run now, and the readers then compute the quarters from calls.

    ``conn_source``: an Engine (``session.get_bind()``)."""
    try:
        with conn_source.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL lock_timeout = {int(wait_ms)}"))
            else:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
            try:
                refresh(conn, add, fold, add_agents)
            finally:
                if conn.dialect.name != "postgresql":
                    conn.exec_driver_sql("PRAGMA busy_timeout = 30000")
        return True
    except SQLAlchemyError:
        return False
