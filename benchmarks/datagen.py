"""Call-centre data at scale for the benchmarks: calls, then transcripts and the search index.

One month of a busy complaint line, deterministic per ``seed``:

- :func:`generate_calls` — ``n`` calls over 30 days (daytime peaks), 8 queues, 200 agents,
  outcomes answered/abandoned/timeout, waits, rings, callers (mobile numbers, a few
  repeat callers), written with bulk inserts;
- :func:`generate_segments` — ``n`` transcript segments spread over the first calls
  (``per_call`` each, one recording and one transcript per call): a zh/en mix of the
  complaint domain (late drivers, plates 京A12345, order numbers, refunds, call-backs),
  a fifth of the Chinese in traditional characters as Whisper writes them;
- :func:`index_segments` — fills ``search_segments`` (the FTS5 triggers / PostgreSQL GIN
  indexes follow) the way ``reindex`` would, without the per-recording deletes.

Every function takes a :class:`~earwitness.db.Database`, a database URL or an open
:class:`~sqlalchemy.orm.Session` (then it writes inside that session's transaction and the
caller commits). Generate big sets once into /tmp and reuse them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from earwitness.db import Database
from earwitness.models import Agent, Call, Queue, Recording, SearchSegment, Segment, Transcript
from earwitness.search.indexer import index_rows

Target = Database | Session | str

MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 30
QUEUES = ["complaints", "rescue", "refunds", "vip", "night", "en-line", "escalation", "fleet"]
N_AGENTS = 200
BATCH = 20_000

ZH = [
    "司机迟到了{m}分钟，我要投诉",
    "车牌是京{plate}，到现在还没到",
    "我们会在{m}分钟内给您回电",
    "您的订单号是{order}，我们已经记录",
    "请给我退款{amount}元",
    "定位一直在漂移，司机走错了方向",
    "非常抱歉给您带来不便，我们马上处理",
    "救援车在机场高速上，预计{m}分钟到达",
    "我上周已经打过电话了，还是没人处理",
    "工作人员态度很差，我要找你们领导",
    "好的，我帮您升级为特急A级",
    "请问您现在的位置是哪里",
    "您好，请问有什么可以帮您",
    "好的，我明白了",
    "嗯，对",
    "麻烦您再说一遍车牌号",
]
EN = [
    "The driver was {m} minutes late and nobody called me",
    "I want a refund of {amount} dollars",
    "We will call you back within {m} minutes",
    "Your order number is {order}",
    "The plate number was {plate}",
    "I am sorry for the inconvenience, let me check",
    "This is the third time I am calling about this",
    "Can you confirm your location please",
    "OK, thank you",
]

# Plates and order numbers recur a few times each, as they do across one complaint's calls.
_POOL = random.Random(11)
PLATES = ["A12345"] + [
    f"{_POOL.choice('ABCDEFGHJK')}{_POOL.randint(10000, 99999)}" for _ in range(5000)
]
ORDERS = ["8801234567"] + [f"{_POOL.randint(10**9, 10**10 - 1)}" for _ in range(50_000)]


@lru_cache(maxsize=1)
def _s2t() -> Any:
    from opencc import OpenCC

    return OpenCC("s2t")


def sentence(rng: random.Random) -> tuple[str, str]:
    """One segment's text and language."""
    fill = {
        "m": rng.choice([5, 10, 15, 20, 30, 45, 50, 80]),
        "plate": rng.choice(PLATES),
        "order": rng.choice(ORDERS),
        "amount": rng.choice([20, 50, 100, 200, 500]),
    }
    if rng.random() < 0.7:
        text = rng.choice(ZH).format(**fill)
        if rng.random() < 0.2:
            text = _s2t().convert(text)
        return text, "zh"
    return rng.choice(EN).format(**fill), "en"


@contextmanager
def _connection(target: Target) -> Iterator[sa.Connection]:
    if isinstance(target, Session):
        yield target.connection()
        return
    db = Database(target) if isinstance(target, str) else target
    try:
        with db.engine.begin() as conn:
            yield conn
    finally:
        if isinstance(target, str):
            db.dispose()


def _next_id(conn: sa.Connection, column: Any) -> int:
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(column), 0))) or 0) + 1


def _ensure_people(conn: sa.Connection) -> tuple[list[int], list[int]]:
    """The generator's queues and agents (created once, reused by later calls)."""
    have = {n: i for i, n in conn.execute(sa.select(Queue.id, Queue.name))}
    missing = [{"name": n, "sla_seconds": 20.0} for n in QUEUES if n not in have]
    if missing:
        conn.execute(sa.insert(Queue), missing)
        have = {n: i for i, n in conn.execute(sa.select(Queue.id, Queue.name))}
    interfaces = [f"PJSIP/gen{i:03d}" for i in range(N_AGENTS)]
    known = {
        i: a
        for i, a in conn.execute(
            sa.select(Agent.interface, Agent.id).where(Agent.interface.in_(interfaces))
        )
    }
    new = [{"interface": i, "name": f"Agent {i[-3:]}"} for i in interfaces if i not in known]
    if new:
        conn.execute(sa.insert(Agent), new)
        known = {
            i: a
            for i, a in conn.execute(
                sa.select(Agent.interface, Agent.id).where(Agent.interface.in_(interfaces))
            )
        }
    return [have[n] for n in QUEUES], [known[i] for i in interfaces]


def _entered_at(rng: random.Random) -> datetime:
    """A moment in the month, weighted to daytime (08-22 local = 00-14 UTC) as a line is."""
    day = rng.randrange(DAYS)
    hour = int(rng.triangular(0, 24, 5)) if rng.random() < 0.85 else rng.randrange(24)
    return MONTH_START + timedelta(
        days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.random() * 60
    )


def call_rows(n: int, seed: int, queues: list[int], agents: list[int], first_id: int) -> Iterator[
    dict[str, Any]
]:  # fmt: skip
    """The calls as insert rows (pure: same seed, same calls), ids in time order as a live
    system writes them."""
    rng = random.Random(seed)
    repeaters = [f"1{rng.randint(3 * 10**9, 9 * 10**9)}" for _ in range(max(1, n // 50))]
    times = sorted(_entered_at(rng) for _ in range(n))
    for k in range(n):
        entered = times[k]
        wait = round(rng.expovariate(1 / 25.0), 1)
        roll = rng.random()
        outcome = "answered" if roll < 0.85 else "abandoned" if roll < 0.97 else "timeout"
        answered = entered + timedelta(seconds=wait) if outcome == "answered" else None
        talk = rng.uniform(30, 600) if answered else 0.0
        caller = (
            rng.choice(repeaters) if rng.random() < 0.2 else f"1{rng.randint(3 * 10**9, 9 * 10**9)}"
        )
        yield {
            "id": first_id + k,
            "linkedid": f"gen-{seed}-{k}",
            "source": "demo",
            "kind": "queue",
            "caller": caller,
            "queue_id": queues[int(rng.triangular(0, len(queues), 0))],
            "agent_id": rng.choice(agents) if answered else None,
            "entered_at": entered,
            "answered_at": answered,
            "ended_at": (answered or entered + timedelta(seconds=wait)) + timedelta(seconds=talk),
            "wait_s": wait,
            "rings": max(1, int(wait // 5)),
            "outcome": outcome,
            "time_source": "event",
        }


def _insert_batched(conn: sa.Connection, table: Any, rows: Iterator[dict[str, Any]]) -> int:
    count, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            conn.execute(sa.insert(table), batch)
            count, batch = count + len(batch), []
    if batch:
        conn.execute(sa.insert(table), batch)
        count += len(batch)
    return count


def generate_calls(target: Target, n: int, seed: int = 0) -> range:
    """Insert ``n`` calls (with their queues and agents); returns the new calls' ids."""
    with _connection(target) as conn:
        queues, agents = _ensure_people(conn)
        first = _next_id(conn, Call.id)
        _insert_batched(conn, Call, call_rows(n, seed, queues, agents, first))
    return range(first, first + n)


def generate_segments(
    target: Target, n: int, seed: int = 0, *, per_call: int = 20, calls: range | None = None
) -> range:
    """Insert ``n`` transcript segments, ``per_call`` per call, one recording and transcript
    per call. Uses ``calls`` (ids) when given, else generates the calls it needs. Returns
    the new segments' ids."""
    n_calls = -(-n // per_call)
    if calls is None:
        calls = generate_calls(target, n_calls, seed)
    if len(calls) < n_calls:
        raise ValueError(f"{n} segments at {per_call} per call need {n_calls} calls")
    rng = random.Random(seed + 1)
    with _connection(target) as conn:
        rec0, tr0, seg0 = (_next_id(conn, c) for c in (Recording.id, Transcript.id, Segment.id))
        _insert_batched(
            conn,
            Recording,
            (
                {"id": rec0 + k, "call_id": calls[k], "state": "ingested", "format": "wav"}
                for k in range(n_calls)
            ),
        )
        _insert_batched(
            conn,
            Transcript,
            (
                {"id": tr0 + k, "recording_id": rec0 + k, "model": "datagen", "language": "zh"}
                for k in range(n_calls)
            ),
        )

        def segments() -> Iterator[dict[str, Any]]:
            for i in range(n):
                text, lang = sentence(rng)
                at = (i % per_call) * 4.0
                yield {
                    "id": seg0 + i,
                    "transcript_id": tr0 + i // per_call,
                    "channel": i % 2,
                    "role": "agent" if i % 2 else "customer",
                    "language": lang,
                    "start_s": at,
                    "end_s": at + 3.5,
                    "text": text,
                }

        _insert_batched(conn, Segment, segments())
    return range(seg0, seg0 + n)


def index_segments(target: Target, segments: range | None = None) -> int:
    """Index the given (else all not yet indexed) segments as ``reindex`` would; returns the
    number of rows written."""
    query = sa.select(Segment.id, Segment.text, Transcript.recording_id).join(
        Transcript, Transcript.id == Segment.transcript_id
    )
    if segments is not None:
        query = query.where(Segment.id >= segments.start, Segment.id < segments.stop)
    else:
        query = query.where(~Segment.id.in_(sa.select(SearchSegment.segment_id)))
    with _connection(target) as conn:
        rows = conn.execute(query.order_by(Segment.id)).all()

        def indexed() -> Iterator[dict[str, Any]]:
            for sid, text, rid in rows:
                yield from index_rows(rid, [(sid, text)])

        return _insert_batched(conn, SearchSegment, indexed())
