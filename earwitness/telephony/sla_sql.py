"""SLA figures aggregated in the database: a month of a million calls in one scan.

The reference path (:func:`sla_groups_python`, what ``/api/sla`` did before issue 17) loads
every call of the period as a ``CallRecord`` and sums them in Python (``sla.summarise``):
correct, but it reads each row into several objects and costs seconds at a million calls.
:func:`sla_groups` asks the database for small partial totals instead and adds those up in
``sla.Tally``; it returns the same ``SlaFigures`` for every ``group_by``:

- ring counts stay exact: the database computes ``ceil(round(wait_s x 10^6) / period_us)``
  in integers, the very rule of ``rings.ring_count``, with the cadence of the target in
  force (each queue's own for ``group_by=queue``), so the stored ``calls.rings`` (counted at
  the cadence of the day the call was saved) is never trusted for a target that changed;
- targets in seconds are compared in whole microseconds like ``SlaTarget.met``;
- hours and days are local to ``tz``: the database groups by UTC quarter-hour (every zone in
  use today is offset by whole quarter-hours, so a quarter-hour lies in one local hour) and
  Python maps each quarter to its local hour or day, DST included; a zone that is not (old
  local mean times) falls back to the reference path;
- calls earwitness placed itself (``kind = outbound``) are left out, calls still waiting
  count in ``waiting`` only, and ring-outs (RONA) go to the agent who missed the call for
  ``group_by=agent``, to the call's group otherwise — all as in ``sla.summarise``.

Means are sums divided by counts, so they can differ from the reference in the last bits
of a float (summation order); every count, histogram, maximum and percentage is identical.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Text,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from earwitness.models import (
    Agent,
    AgentAttempt,
    Call,
    Queue,
    SlaAgentInterval,
    SlaAgentRollup,
    SlaDirtyInterval,
    SlaInterval,
)
from earwitness.telephony import sla_rollups as rollups
from earwitness.telephony.persist import SlaDefaults, target_for
from earwitness.telephony.queries import CallFilter, call_records, filtered_calls, target_of
from earwitness.telephony.records import MAX_WAIT_S
from earwitness.telephony.rings import SlaTarget
from earwitness.telephony.sla import NO_AGENT, NO_QUEUE, TOTAL_KEY, GroupBy, SlaFigures, Tally
from earwitness.telephony.sla import summarise as summarise_records

_US = 1_000_000
_QUARTER_S = 900
_NO_LIMIT = 10**15  # microseconds: beyond any plausible wait (MAX_WAIT_S is 8.6e10 us)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # bound of the time buckets' packed width
# Call classes in the packed group key.
_ANSWERED, _WAITING, _ABANDONED, _TIMEOUT, _OTHER = range(5)


def sla_groups_python(
    session: Session,
    f: CallFilter | None,
    group_by: GroupBy,
    zone: ZoneInfo,
    defaults: SlaDefaults,
    queue: str | None = None,
) -> list[SlaFigures]:
    """The reference: every call loaded as a record and summed in Python (pre-issue-17).

    ``f`` None means the user may see no calls. ``group_by=queue`` measures each queue
    against its own target (``queue`` adds that queue even without calls, which then has
    no row); other groupings use the target of ``queue``, else the default."""
    records = call_records(session, f) if f is not None else []
    if group_by != "queue":
        return summarise_records(records, target_of(session, queue, defaults), group_by, zone)
    groups: list[SlaFigures] = []
    for name in sorted({r.queue for r in records if r.queue} | ({queue} if queue else set())):
        in_queue = [r for r in records if r.queue == name]
        groups += summarise_records(in_queue, target_of(session, name, defaults), "queue", zone)
    no_queue = [r for r in records if not r.queue]
    if no_queue:
        groups += summarise_records(no_queue, target_of(session, None, defaults), "queue", zone)
    return groups


def sla_groups(
    session: Session,
    f: CallFilter | None,
    group_by: GroupBy,
    zone: ZoneInfo,
    defaults: SlaDefaults,
    queue: str | None = None,
) -> list[SlaFigures]:
    """Same arguments and answer as :func:`sla_groups_python`: from the quarter-hour
    roll-ups (``sla_rollups``) where they can answer, else aggregated over the calls in SQL
    (:func:`sla_groups_sql`)."""
    if f is None or (group_by in ("hour", "day") and not _quarter_aligned(zone, f)):
        return sla_groups_python(session, f, group_by, zone, defaults, queue)
    rolled = _from_rollups(session, f, group_by, zone, defaults, queue)
    if rolled is not None:
        return rolled
    return sla_groups_sql(session, f, group_by, zone, defaults, queue)


def sla_groups_sql(
    session: Session,
    f: CallFilter | None,
    group_by: GroupBy,
    zone: ZoneInfo,
    defaults: SlaDefaults,
    queue: str | None = None,
) -> list[SlaFigures]:
    """Same answer as :func:`sla_groups_python`, aggregated over every call in SQL."""
    if f is None or (group_by in ("hour", "day") and not _quarter_aligned(zone, f)):
        return sla_groups_python(session, f, group_by, zone, defaults, queue)
    if group_by == "queue":
        return _by_queue(session, f, zone, defaults)
    target = target_of(session, queue, defaults)
    key_col, name_of, key_max = _grouping(session, f, group_by, zone)
    tallies = _tallies(session, f, key_col, name_of, {None: target}, group_by, key_max)
    if group_by == "total":
        tallies.setdefault(TOTAL_KEY, Tally())
    return [tallies[k].figures(group_by, k, target, str(zone)) for k in sorted(tallies)]


def _by_queue(
    session: Session, f: CallFilter, zone: ZoneInfo, defaults: SlaDefaults
) -> list[SlaFigures]:
    queues = session.scalars(select(Queue)).all()
    targets: dict[Any, SlaTarget] = {q.id: target_for(q, defaults) for q in queues}
    targets[None] = target_for(None, defaults)
    names = {q.id: q.name for q in queues}
    by_name = {q.name: targets[q.id] for q in queues}
    key_max = max(names, default=0)
    key_col = func.coalesce(Call.queue_id, 0)
    tallies = _tallies(session, f, key_col, names.get, targets, "queue", key_max)
    zone_name = str(zone)
    named = sorted(k for k in tallies if k != NO_QUEUE)
    out = [tallies[k].figures("queue", k, by_name[k], zone_name) for k in named]
    if NO_QUEUE in tallies:  # the reference lists calls without a queue last
        out.append(tallies[NO_QUEUE].figures("queue", NO_QUEUE, targets[None], zone_name))
    return out


def _grouping(
    session: Session, f: CallFilter, group_by: GroupBy, zone: ZoneInfo
) -> tuple[ColumnElement[Any], Callable[[Any], str | None], int]:
    """The SQL group column (an integer >= 0), how one of its values becomes the group's
    key, and the largest value it can take."""
    if group_by == "total":
        return literal(0, BigInteger), lambda _v: TOTAL_KEY, 0
    if group_by == "agent":
        labels = {a.id: a.name or a.interface for a in session.scalars(select(Agent))}
        return rollups.call_agent_key(), labels.get, max(labels, default=0)
    # A zone with one offset over the whole period (no DST change in it): group by the
    # local hour/day itself. Otherwise by UTC quarter-hour, mapped to local time here.
    offset = _fixed_offset(zone, f)
    size = (3600 if group_by == "hour" else 86_400) if offset is not None else _QUARTER_S
    shift = offset or 0
    if session.get_bind().dialect.name == "postgresql":
        epoch: ColumnElement[Any] = extract("epoch", Call.entered_at)
        bucket: ColumnElement[Any] = cast(func.floor((epoch + shift) / size), BigInteger)
    else:
        seconds = cast(func.strftime("%s", Call.entered_at), BigInteger)
        bucket = (seconds + shift) // size  # non-negative after 1970: // floors
    fmt = _hour_key if group_by == "hour" else _day_key
    latest = int(_LATEST.timestamp()) + shift
    return (
        bucket,
        lambda b: fmt(datetime.fromtimestamp(int(b) * size - shift, UTC), zone),
        latest // size,
    )


def _fixed_offset(zone: ZoneInfo, f: CallFilter) -> int | None:
    """The zone's UTC offset in seconds if it is the same all through ``f``'s period."""
    if f.start is None or f.end is None or f.end - f.start > timedelta(days=400):
        return None
    offsets = set()
    at = f.start
    while at < f.end + timedelta(hours=1):
        offset = at.astimezone(zone).utcoffset()
        offsets.add(offset.total_seconds() if offset is not None else None)
        at += timedelta(hours=1)
    only = offsets.pop() if len(offsets) == 1 else None
    return int(only) if only is not None and only == int(only) else None


def _offsets(zone: ZoneInfo, start: datetime, end: datetime) -> set[int]:
    """Every UTC offset (whole seconds; 1 for a fractional one) of ``zone`` in the period."""
    found = set()
    at = start
    while at < end + timedelta(hours=1):
        offset = at.astimezone(zone).utcoffset()
        seconds = offset.total_seconds() if offset is not None else 0.5
        found.add(int(seconds) if seconds == int(seconds) else 1)
        at += timedelta(hours=1)
    return found


def _hour_key(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    return local.isoformat(timespec="minutes")


def _day_key(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).date().isoformat()


def _quarter_aligned(zone: ZoneInfo, f: CallFilter) -> bool:
    """True when every UTC offset of ``zone`` near the period is whole quarter-hours."""
    probes = [f.start, f.end] if f.start and f.end else []
    if not probes:  # no bounds: check the offsets of the last century and this one
        probes = [datetime(y, m, 1, tzinfo=UTC) for y in range(1950, 2101, 5) for m in (1, 7)]
    for at in probes:
        for delta in (timedelta(0), timedelta(days=200)):
            offset = (at + delta).astimezone(zone).utcoffset()
            if offset is None or offset.total_seconds() % _QUARTER_S:
                return False
    return True


def _tallies(
    session: Session,
    f: CallFilter,
    key_col: ColumnElement[Any],
    name_of: Callable[[Any], str | None],
    targets: dict[Any, SlaTarget],
    group_by: GroupBy,
    key_max: int,
) -> dict[str, Tally]:
    """Partial totals per (group value, class, rings[, agent]) from SQL, merged per group.

    ``key_col`` is a non-negative integer per call (0: no queue / no agent), at most
    ``key_max``. ``targets`` maps each value of ``key_col`` (``None`` for the rest) to its
    target when the target differs by group (queues); otherwise it holds one under ``None``.

    The group columns are packed into ONE integer: SQLite groups by sorting, and sorting a
    million single integers costs half of sorting a million 4-column records."""
    wait_us = cast(func.round(Call.wait_s * _US), BigInteger)
    period_us = _per_key(key_col, targets, lambda t: t.cadence.period_ms * 1000)
    seconds_us = _per_key(
        key_col,
        targets,
        lambda t: round(t.seconds * _US) if t.seconds is not None else _NO_LIMIT,
    )
    rings = (wait_us + period_us - 1) // period_us
    answered = Call.answered_at.is_not(None)
    # No wait yet (an uploaded recording's call, a call still queued): not offered, as the
    # reference path counts it; first, so that a NULL wait never reaches the packed key.
    no_wait = Call.wait_s.is_(None)
    cls = case(
        (no_wait, _WAITING),
        (answered, _ANSWERED),
        (Call.outcome == "in_progress", _WAITING),
        (Call.outcome == "abandoned", _ABANDONED),
        (Call.outcome == "timeout", _TIMEOUT),
        else_=_OTHER,
    )
    # Rings matter for answered calls (histogram, target) and for abandons (first ring).
    ring_key = case(
        (no_wait, 0),
        (answered, rings),
        (Call.outcome == "abandoned", case((wait_us <= period_us, 1), else_=2)),  # rings <= 1
        else_=0,
    )
    shortest = min(t.cadence.period_ms for t in targets.values()) * 1000
    ring_bits = (-(-round(MAX_WAIT_S * _US) // shortest) + 2).bit_length()
    agent_max = session.scalar(select(func.max(Agent.id))) or 0
    agent_bits = (agent_max + 1).bit_length()
    # answered_by_agent in the same scan when the agent fits in the packed key (not for
    # hour/day: there it would multiply the groups; a second, narrower query is cheaper).
    with_agent = group_by in ("queue", "total") and (
        key_max.bit_length() + 3 + ring_bits + agent_bits <= 62
    )
    packed = (cast(key_col, BigInteger) * 8 + cls) * (1 << ring_bits) + ring_key
    if with_agent:
        agent = case((answered, func.coalesce(Call.agent_id, 0)), else_=0)
        packed = packed * (1 << agent_bits) + agent
    has_seconds = any(t.seconds is not None for t in targets.values())
    in_seconds = func.sum(case((wait_us <= seconds_us, 1), else_=0)) if has_seconds else None
    columns: list[Any] = [
        packed.label("p"),
        func.count().label("n"),
        func.sum(Call.wait_s).label("s"),
        func.max(Call.wait_s).label("m"),
    ]
    if in_seconds is not None:
        columns.append(in_seconds.label("w"))
    query = (
        filtered_calls(f)
        .where(Call.kind != "outbound")
        .with_only_columns(*columns)
        .group_by(literal_column("p"))
    )

    tallies: defaultdict[str, Tally] = defaultdict(Tally)
    names: dict[Hashable, str] = {}
    labels: dict[int, str] = {}
    if with_agent or group_by == "agent":
        labels = {a.id: a.name or a.interface for a in session.scalars(select(Agent))}

    def key_name(value: Any) -> str:
        if value not in names:
            name = name_of(value)
            names[value] = name if name is not None else _missing(group_by)
        return names[value]

    for row in session.execute(query):
        p, n, total_wait, longest = int(row[0]), int(row[1]), row[2], row[3]
        who = 0
        if with_agent:
            p, who = divmod(p, 1 << agent_bits)
        rest, r = divmod(p, 1 << ring_bits)
        value, c = divmod(rest, 8)
        tally = tallies[key_name(value)]
        if c == _WAITING:
            tally.waiting += n
            continue
        tally.add_waits(c == _ANSWERED, n, float(total_wait), float(longest))
        if c == _ANSWERED:
            tally.rings[r] += n
            target = targets.get(value, targets[None])
            if target.rings is None or r <= target.rings:
                tally.within_target += int(row[4]) if has_seconds else n
            if with_agent and who:
                tally.by_agent[labels[who]] += n
            elif group_by == "agent" and value:
                tally.by_agent[labels[value]] += n
        elif c == _ABANDONED:
            tally.abandoned += n
            tally.abandoned_first_ring += n if r <= 1 else 0
        elif c == _TIMEOUT:
            tally.timeouts += n
        else:
            tally.other_unanswered += n
    if group_by in ("hour", "day"):
        _add_by_agent(session, f, key_col, tallies, key_name)
    _add_rona(session, f, key_col, group_by, tallies, key_name)
    return dict(tallies)


def _add_by_agent(
    session: Session,
    f: CallFilter,
    key_col: ColumnElement[Any],
    tallies: defaultdict[str, Tally],
    key_name: Callable[[Any], str],
) -> None:
    """Answered calls per answering agent in each group (``answered_by_agent``), grouped
    by one packed integer (group value, agent id) and labelled here: no join, no strings."""
    labels = {a.id: a.name or a.interface for a in session.scalars(select(Agent))}
    bits = (max(labels, default=0) + 1).bit_length()
    packed = cast(key_col, BigInteger) * (1 << bits) + Call.agent_id
    query = (
        filtered_calls(f)
        .where(Call.kind != "outbound", Call.answered_at.is_not(None), Call.agent_id.is_not(None))
        .with_only_columns(packed.label("p"), func.count())
        .group_by(literal_column("p"))
    )
    for p, n in session.execute(query):
        value, agent_id = divmod(int(p), 1 << bits)
        tallies[key_name(value)].by_agent[labels[agent_id]] += int(n)


def _missing(group_by: GroupBy) -> str:
    return NO_AGENT if group_by == "agent" else NO_QUEUE if group_by == "queue" else TOTAL_KEY


def _per_key(
    key_col: ColumnElement[Any], targets: dict[Any, SlaTarget], value: Callable[[SlaTarget], int]
) -> ColumnElement[Any]:
    """A constant when every group has one target, else ``CASE key WHEN ... END``."""
    default = value(targets[None])
    per = {k: value(t) for k, t in targets.items() if k is not None and value(t) != default}
    if not per:
        return literal(default, BigInteger)
    return case(per, value=key_col, else_=literal(default, BigInteger))


def _add_rona(
    session: Session,
    f: CallFilter,
    key_col: ColumnElement[Any],
    group_by: GroupBy,
    tallies: defaultdict[str, Tally],
    key_name: Callable[[Any], str],
) -> None:
    """Ring-outs: on the agent who missed the call (``agent``), else on the call's group."""
    base = (
        filtered_calls(f)
        .where(Call.kind != "outbound")
        .join(AgentAttempt, AgentAttempt.call_id == Call.id)
        .where(AgentAttempt.result == "rona")
    )
    if group_by == "agent":
        missed = AgentAttempt.agent_id
        query = base.with_only_columns(missed, func.count()).group_by(missed)
    else:
        query = base.with_only_columns(key_col, func.count()).group_by(key_col)
    for value, n in session.execute(query):
        tallies[key_name(value)].rona += int(n)


# --- From the quarter-hour roll-ups -------------------------------------------------------

#: Marked (changed) quarters a read computes from the calls itself; above this it first
#: tries to refresh the roll-ups, and answers from the calls when it cannot.
_MAX_MARKED = 96
#: A read refreshes first when more quarters than this are marked in all (live traffic
#: keeps the current quarter or two marked: cheaper to read them from the calls).
_REFRESH_AT = 8
_Q_US = rollups.QUARTER_S * _US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_rollups(
    session: Session,
    f: CallFilter,
    group_by: GroupBy,
    zone: ZoneInfo,
    defaults: SlaDefaults,
    queue: str | None,
) -> list[SlaFigures] | None:
    """The figures from the roll-ups plus the calls of marked quarters and of the period's
    partial quarters at either end; None when the roll-ups cannot answer this request.

    ``group_by=agent`` reads ``sla_agent_rollups``, which total every queue: with a queue
    filter (``?queue=``, or a user limited to some queues) it answers from the calls."""
    if f.agent or f.outcome or f.caller or f.min_rings is not None:
        return None
    agents = group_by == "agent"
    if agents and (f.queue or f.queues):
        return None
    b0 = None if f.start is None else -(-((f.start - _EPOCH) // _MICRO) // _Q_US)
    b1 = None if f.end is None else ((f.end - _EPOCH) // _MICRO) // _Q_US
    if b0 is not None and b1 is not None and b0 >= b1:
        return None  # under a quarter-hour of whole quarters: the calls are few
    queues = session.scalars(select(Queue)).all()
    allowed: set[int] | None = None
    if f.queue:
        allowed = {q.id for q in queues if q.name == f.queue}
    if f.queues:
        allowed = (allowed if allowed is not None else {q.id for q in queues}) & {
            q.id for q in queues if q.name in f.queues
        }
    # The target of each queue id (0: no queue); one for all unless grouped by queue.
    if group_by == "queue":
        targets = {q.id: target_for(q, defaults) for q in queues}
        targets[0] = target_for(None, defaults)
        common: SlaTarget | None = None
    else:
        common = target_of(session, queue, defaults)
        targets = {q.id: common for q in queues} | {0: common}
    visible = [q for q in targets if allowed is None or q in allowed]
    by_profile: dict[rollups.Profile, list[int]] = defaultdict(list)
    for q in visible:
        by_profile[rollups.Profile.of(targets[q])].append(q)

    kept, marked = _rollup_state(session, agents)
    if not set(by_profile) <= kept or len(marked) > _REFRESH_AT:
        new = set(by_profile) - kept
        rollups.try_refresh(
            session.get_bind(),
            () if agents else new,
            fold=len(marked) > _REFRESH_AT,
            add_agents=new if agents else (),
        )
        kept, marked = _rollup_state(session, agents)
    if not set(by_profile) <= kept:
        return None
    if b0 is None or b1 is None:  # open period: from the first call's quarter to the last's
        first, last = session.execute(
            select(func.min(Call.entered_at), func.max(Call.entered_at))
        ).one()
        if first is None:
            return None  # no calls at all
        b0 = rollups.bucket_of(first) if b0 is None else b0
        b1 = rollups.bucket_of(last) + 1 if b1 is None else b1
        if b0 >= b1:
            return None
    marked = [b for b in marked if b0 <= b < b1]
    if len(marked) > _MAX_MARKED:
        return None

    # Calls read directly: the marked quarters and the partial quarters at the ends.
    raw = [(rollups.bucket_start(a), rollups.bucket_start(b)) for a, b in rollups.runs(marked)]
    if f.start is not None and rollups.bucket_start(b0) != f.start:
        raw.append((f.start, rollups.bucket_start(b0)))
    if f.end is not None and rollups.bucket_start(b1) != f.end:
        raw.append((rollups.bucket_start(b1), f.end))

    dialect = session.get_bind().dialect.name
    size, shift, time_name = _time_buckets(zone, f, group_by)
    names = {q.id: q.name for q in queues}
    labels = {a.id: a.name or a.interface for a in session.scalars(select(Agent))}
    # An hour (day) row serves hour/day groups when it is no longer than a group and every
    # local hour (day) boundary of the period is a UTC hour (day) boundary: all offsets are
    # whole hours (days). Under DST (size 900) the key is the quarter where the row starts,
    # mapped to local time.
    offsets = (
        _offsets(zone, rollups.bucket_start(b0), rollups.bucket_start(b1))
        if group_by in ("hour", "day")
        else set()
    )
    group_s = 3600 if group_by == "hour" else 86_400
    grains = [
        g
        for g, seconds in rollups.GRAIN_S.items()
        if group_by in ("total", "queue", "agent")
        or (group_s % seconds == 0 and all(o % seconds == 0 for o in offsets))
    ]
    pieces = _cover(b0, b1, marked, grains)
    every_queue = group_by != "queue" and allowed is None

    known: dict[int, str] = {}

    def name_of(value: int) -> str:
        """The group's key, memoised: an hour's name is formatted once, not per row."""
        if value not in known:
            if group_by == "total":
                known[value] = TOTAL_KEY
            elif group_by == "queue":
                known[value] = names.get(value, NO_QUEUE) if value else NO_QUEUE
            elif agents:  # as ``_tallies`` names it: 0 (and an unknown id) is NO_AGENT
                label = labels.get(value)
                known[value] = label if label is not None else NO_AGENT
            else:
                known[value] = time_name(value)
        return known[value]

    def key_over(
        bucket: ColumnElement[Any], queue_id: ColumnElement[Any], grain: int
    ) -> ColumnElement[Any]:
        if group_by == "total":
            return literal(0, BigInteger)
        if group_by == "queue":
            return queue_id
        seconds = rollups.GRAIN_S[grain]
        return bucket if seconds == size and not shift else (bucket * seconds + shift) // size

    def row_per_group(grain: int) -> bool:
        """True when a roll-up row of ``grain`` maps to one group alone (all-queues rows as
        long as a group): (group, agent) is then unique without summing, and grouping by
        ``bucket`` follows the primary key instead of sorting ~140k rows by an expression."""
        return every_queue and group_by in ("hour", "day") and rollups.GRAIN_S[grain] == size

    rows: list[Any] = []
    by_agent: list[Any] = []
    # Roll-up answers per agent as one JSON object per group: a month of hours is ~140k
    # (hour, agent) pairs; fetching them as rows and adding them up in Python was most of
    # group_by=hour (~0.6 of 1 s), 720 objects parsed by json.loads cost ~0.1 s.
    agent_maps: list[Any] = []
    iv, ag = SlaInterval.__table__.c, SlaAgentInterval.__table__.c
    if agents:  # the same columns, the agent in place of the queue
        iv = SlaAgentRollup.__table__.c
    # SQLite: one bucket range per statement, a primary-key range scan each (an OR of
    # ranges can make it scan every row of the grain). PostgreSQL: one statement per grain
    # (a bitmap OR of index ranges); per range, marked quarters cost ~5 ms each.
    chunks = (
        [(g, spans) for g, spans in pieces.items()]
        if dialect == "postgresql"
        else [(g, [span]) for g, spans in pieces.items() for span in spans]
    )
    for grain, span in chunks:
        for profile, ids in by_profile.items():
            cond = [
                iv.period_ms == profile.period_ms,
                iv.seconds_us == profile.seconds_us,
                iv.grain == grain,
                rollups.grain_ranges(iv.bucket, span),
            ]
            if not agents:
                cond.append(
                    iv.queue_id == rollups.ALL_QUEUES if every_queue else iv.queue_id.in_(ids)
                )
            key = (iv.agent_id if agents else key_over(iv.bucket, iv.queue_id, grain)).label("g")
            rows += session.execute(
                select(
                    key,
                    iv.cls,
                    iv.rings,
                    func.sum(iv.n),
                    func.sum(iv.wait_sum),
                    func.max(iv.wait_max),
                    func.sum(iv.within),
                )
                .where(*cond)
                .group_by(literal_column("g"), iv.cls, iv.rings)
            ).all()
        if agents:
            continue  # answered_by_agent: the group's own answered rows (below)
        agent_where = [
            ag.grain == grain,
            rollups.grain_ranges(ag.bucket, span),
            ag.queue_id == rollups.ALL_QUEUES if every_queue else ag.queue_id.in_(visible),
        ]
        agent_key = key_over(ag.bucket, ag.queue_id, grain)
        if row_per_group(grain):  # (bucket, agent) is unique: aggregate in key order
            agent_query = (
                select(agent_key, _json_counts(dialect, ag.agent_id, ag.n))
                .where(*agent_where)
                .group_by(ag.bucket)
            )
        else:
            per_agent = (
                select(agent_key.label("g"), ag.agent_id.label("a"), func.sum(ag.n).label("n"))
                .where(*agent_where)
                .group_by(literal_column("g"), ag.agent_id)
                .subquery()
            )
            agent_query = select(
                per_agent.c.g, _json_counts(dialect, per_agent.c.a, per_agent.c.n)
            ).group_by(per_agent.c.g)
        agent_maps += session.execute(agent_query).all()
    if raw:
        call_queue = func.coalesce(Call.queue_id, 0)
        call_key = key_over(rollups.call_time_key(dialect), call_queue, rollups.QUARTER)
        rona_key = call_key
        if group_by in ("hour", "day"):
            call_key = rona_key = rollups.call_time_key(dialect, size, shift)
        elif agents:
            call_key, rona_key = rollups.call_agent_key(), AgentAttempt.__table__.c.agent_id
        where = [rollups.in_ranges(raw)]
        if allowed is not None:
            where.append(Call.queue_id.in_(visible))
        per_queue: dict[Any, SlaTarget] = {None: targets[0], **targets}
        period_us = _per_key(call_queue, per_queue, lambda t: t.cadence.period_ms * 1000)
        seconds_us = _per_key(
            call_queue,
            per_queue,
            lambda t: round(t.seconds * _US) if t.seconds is not None else _NO_LIMIT,
        )
        rows += session.execute(
            rollups.call_intervals([call_key], period_us, seconds_us, where)
        ).all()
        rows += [
            (g, rollups.RONA, 0, n, None, None, 0)
            for g, n in session.execute(rollups.call_ronas([rona_key], where))
        ]
        if not agents:
            by_agent += session.execute(rollups.call_answered_by([call_key], where)).all()

    tallies: defaultdict[str, Tally] = defaultdict(Tally)
    group_target: dict[str, SlaTarget] = {}
    for g, c, r, n, total_wait, longest, within in rows:
        name = name_of(int(g))
        tally = tallies[name]
        target = common if common is not None else targets[int(g)]
        group_target[name] = target
        n = int(n)
        if c == rollups.RONA:
            tally.rona += n
        elif c == rollups.WAITING:
            tally.waiting += n
        else:
            tally.add_waits(c == rollups.ANSWERED, n, float(total_wait), float(longest))
            if c == rollups.ANSWERED:
                tally.rings[int(r)] += n
                if target.rings is None or r <= target.rings:
                    tally.within_target += int(within)
                if agents and g:  # as ``_tallies``: an agent's row counts its own answers
                    tally.by_agent[labels[int(g)]] += n
            elif c == rollups.ABANDONED:
                tally.abandoned += n
                tally.abandoned_first_ring += n if r <= 1 else 0
            elif c == rollups.TIMEOUT:
                tally.timeouts += n
            else:
                tally.other_unanswered += n
    by_label = {str(a): label for a, label in labels.items()}
    unique_labels = len(set(labels.values())) == len(labels)
    for g, counted in agent_maps:
        counts = tallies[name_of(int(g))].by_agent
        per_id: dict[str, int] = json.loads(counted) if isinstance(counted, str) else counted
        if unique_labels:  # one C-level update instead of a Python loop per agent
            counts.update(
                dict(zip(map(by_label.__getitem__, per_id), per_id.values(), strict=True))
            )
        else:
            for agent_id, n in per_id.items():
                counts[by_label[agent_id]] += n
    # Rows (calls of marked quarters) come grouped by g: look the group up once per run.
    current, counts = None, Counter[str]()
    for g, agent_id, n in by_agent:
        if g != current:
            current, counts = g, tallies[name_of(int(g))].by_agent
        counts[labels[agent_id]] += int(n)

    zone_name = str(zone)
    if group_by == "queue":
        by_name = {names[q]: targets[q] for q in names} | {NO_QUEUE: targets[0]}
        named = sorted(k for k in tallies if k != NO_QUEUE)
        out = [tallies[k].figures("queue", k, by_name[k], zone_name) for k in named]
        if NO_QUEUE in tallies:  # the reference lists calls without a queue last
            out.append(tallies[NO_QUEUE].figures("queue", NO_QUEUE, targets[0], zone_name))
        return out
    assert common is not None
    if group_by == "total":
        tallies.setdefault(TOTAL_KEY, Tally())
    return [tallies[k].figures(group_by, k, common, zone_name) for k in sorted(tallies)]


_MICRO = timedelta(microseconds=1)


def _json_counts(
    dialect: str, key: ColumnElement[Any], n: ColumnElement[Any]
) -> ColumnElement[Any]:
    """An aggregate: the group's ``{key: n}`` as JSON text. Keys must be unique within a
    group (SQLite writes a repeated key twice and ``json.loads`` keeps only the last)."""
    if dialect == "postgresql":
        return cast(func.json_object_agg(key, n), Text)
    return func.json_group_object(key, n)


def _cover(
    b0: int, b1: int, marked: list[int], grains: list[int]
) -> dict[int, list[tuple[int, int]]]:
    """The quarters ``[b0, b1)`` less the marked ones, as the fewest roll-up rows: whole
    UTC days, then whole hours, then single quarters (each grain only if in ``grains``);
    spans per grain, in that grain's units."""
    chosen: dict[int, list[int]] = {g: [] for g in grains}
    q = b0
    while q < b1:
        for grain, width in ((rollups.DAY, 96), (rollups.HOUR, 4)):
            if (
                grain in chosen
                and q % width == 0
                and q + width <= b1
                and bisect_left(marked, q) == bisect_left(marked, q + width)
            ):
                chosen[grain].append(q // width)
                q += width
                break
        else:
            if bisect_left(marked, q) == bisect_left(marked, q + 1):
                chosen[rollups.QUARTER].append(q)
            q += 1
    return {g: rollups.runs(b) for g, b in chosen.items() if b}


def _rollup_state(session: Session, agents: bool = False) -> tuple[set[rollups.Profile], list[int]]:
    """The profiles kept (``agents``: for the agent rows) and the marked quarters, as this
    session sees them now."""
    kept = rollups.kept_profiles(session, agents)
    return kept, sorted(session.scalars(select(SlaDirtyInterval.bucket)))


def _time_buckets(
    zone: ZoneInfo, f: CallFilter, group_by: GroupBy
) -> tuple[int, int, Callable[[int], str]]:
    """For hour/day: the SQL bucket size and shift (seconds) and how a bucket becomes its
    local key: the local hour/day itself when the zone has one offset over the period,
    else UTC quarter-hours mapped here (DST). Other groupings: quarter-hours, unused."""
    if group_by not in ("hour", "day"):
        return rollups.QUARTER_S, 0, str
    offset = _fixed_offset(zone, f)
    size = (3600 if group_by == "hour" else 86_400) if offset is not None else _QUARTER_S
    shift = offset or 0
    fmt = _hour_key if group_by == "hour" else _day_key
    return size, shift, lambda b: fmt(datetime.fromtimestamp(b * size - shift, UTC), zone)


def prepare_rollups(session: Session, defaults: SlaDefaults, wait_ms: int = 5_000) -> bool:
    """Build the roll-ups every queue's current target reads (and the agent rows of the
    default target, what ``group_by=agent`` without ``?queue=`` reads) and fold the marked
    quarters, before the server answers its first report.

    Why at start: after the upgrade that added the roll-ups (every existing quarter marked)
    or a bulk import, the first ``/api/sla`` would otherwise rebuild a whole history inside
    one request (35-64 s at a million calls on a 2-core machine). False when a writer held
    the locks past ``wait_ms``; reports then build on first use, as before."""
    wanted = {rollups.Profile.of(target_for(q, defaults)) for q in session.scalars(select(Queue))}
    agent_wanted = {rollups.Profile.of(target_for(None, defaults))}
    wanted |= agent_wanted
    kept, marked = _rollup_state(session)
    kept_agents = rollups.kept_profiles(session, agents=True)
    if wanted <= kept and agent_wanted <= kept_agents and len(marked) <= _REFRESH_AT:
        return True
    session.rollback()  # end this session's read snapshot before the refresh writes
    return rollups.try_refresh(
        session.get_bind(),
        wanted - kept,
        fold=len(marked) > _REFRESH_AT,
        wait_ms=wait_ms,
        add_agents=agent_wanted - kept_agents,
    )
