"""Transcript search on the embedded default (SQLite FTS5) vs a plain ``LIKE '%...%'`` scan.

Corpus: generated zh/en complaint-call sentences (templates of the seeds' domain — late
drivers, plates, refunds, call-backs — with random plates, minutes, amounts and order
numbers, a fifth in traditional characters as Whisper writes them), 20 segments per
call. Segment count: ``EARWITNESS_BENCH_SEARCH_SEGMENTS`` (default 1,000,000).

- ours: ``earwitness.search.search`` with the API's defaults (relevance order, first page
  of 20, total count, highlights) after the index was built;
- baseline: what a script would do on the same table in the same run —
  ``SELECT count(*) ... WHERE text LIKE '%q%'`` plus ``... ORDER BY id DESC LIMIT 20``;
  it knows nothing of traditional/simplified or 五十/50, so it finds less.

Each typical query runs ``ROUNDS`` times; p50/p95 over all runs. ``ratio`` = baseline p50 /
our p50 (>1: ours faster). Also reported: index build time and on-disk index size.
Run: ``python benchmarks/bench_search.py`` or ``python -m benchmarks search``.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from earwitness.db import Database  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402
from earwitness.models import Call, Recording, Segment, Transcript  # noqa: E402
from earwitness.search import SearchOptions, search  # noqa: E402
from earwitness.search.indexer import index_rows  # noqa: E402
from earwitness.search.normalize import to_simplified  # noqa: E402

SEGMENTS = int(os.environ.get("EARWITNESS_BENCH_SEARCH_SEGMENTS", "1000000"))
PER_CALL = 20
ROUNDS = 5
# (our query, the LIKE substring a script would use)
QUERIES = [
    ("退款", "退款"),
    ("京", "京"),
    ("迟到", "迟到"),
    ("京A12345", "京A12345"),
    ("8801234567", "8801234567"),
    ("refund", "refund"),
    ('"call you back"', "call you back"),
    ("司机迟到", "司机迟到"),
    ("投诉 -退款", "投诉"),
]

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


def build(db: Database, n: int) -> None:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    calls = n // PER_CALL
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(Call),
            [
                {
                    "id": i + 1,
                    "linkedid": f"b{i}",
                    "source": "demo",
                    "caller": f"138{rng.randint(10**7, 10**8 - 1)}",
                    "entered_at": start + timedelta(minutes=7 * i),
                    "outcome": "answered",
                }
                for i in range(calls)
            ],
        )
        conn.execute(
            sa.insert(Recording),
            [{"id": i + 1, "call_id": i + 1, "state": "ingested"} for i in range(calls)],
        )
        conn.execute(
            sa.insert(Transcript),
            [{"id": i + 1, "recording_id": i + 1, "model": "bench"} for i in range(calls)],
        )
        batch: list[dict[str, object]] = []
        for i in range(calls * PER_CALL):
            text, lang = sentence(rng)
            batch.append(
                {
                    "id": i + 1,
                    "transcript_id": i // PER_CALL + 1,
                    "role": "agent" if i % 2 else "customer",
                    "language": lang,
                    "start_s": (i % PER_CALL) * 4.0,
                    "end_s": (i % PER_CALL) * 4.0 + 3.5,
                    "text": text,
                }
            )
            if len(batch) == 50_000:
                conn.execute(sa.insert(Segment), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(Segment), batch)


def index_all(db: Database) -> float:
    """The reindex path without per-recording deletes (the table starts empty)."""
    from earwitness.models import SearchSegment

    started = time.perf_counter()
    with db.engine.begin() as conn:
        rows = conn.execute(
            sa.select(Segment.id, Segment.text, Transcript.recording_id)
            .join(Transcript, Transcript.id == Segment.transcript_id)
            .order_by(Segment.id)
        ).all()
        batch: list[dict[str, object]] = []
        for sid, text, rid in rows:
            batch.extend(index_rows(rid, [(sid, text)]))
            if len(batch) == 20_000:
                conn.execute(sa.insert(SearchSegment), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(SearchSegment), batch)
        conn.execute(sa.text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
        conn.execute(sa.text("INSERT INTO search_fts_words(search_fts_words) VALUES ('optimize')"))
    return time.perf_counter() - started


def db_bytes(db: Database) -> int:
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
        size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
    return int((pages - free) * size)


def timed(fn: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()  # type: ignore[operator]
    return time.perf_counter() - start, result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ew-bench-search-") as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db.engine)
        build(db, SEGMENTS)
        before = db_bytes(db)
        build_s = index_all(db)
        index_size = db_bytes(db) - before
        ours: list[float] = []
        base: list[float] = []
        detail: list[str] = []
        for q, like in QUERIES:
            pattern = "%" + to_simplified(like) + "%"
            ours_q: list[float] = []
            base_q: list[float] = []
            for _ in range(ROUNDS):
                with db.session() as s:
                    seconds, result = timed(lambda s=s, q=q: search(s, q, options=SearchOptions()))
                ours_q.append(seconds)
                with db.engine.connect() as conn:
                    seconds, found = timed(
                        lambda conn=conn, p=pattern: (
                            conn.execute(
                                sa.select(sa.func.count())
                                .select_from(Segment)
                                .where(Segment.text.like(p))
                            ).scalar(),
                            conn.execute(
                                sa.select(Segment.id, Segment.text)
                                .where(Segment.text.like(p))
                                .order_by(Segment.id.desc())
                                .limit(20)
                            ).all(),
                        )
                    )
                base_q.append(seconds)
            ours.extend(ours_q)
            base.extend(base_q)
            detail.append(
                f"  {q!r}: ours p50 {statistics.median(ours_q) * 1000:.1f} ms "
                f"({result.total} hits), LIKE p50 {statistics.median(base_q) * 1000:.1f} ms "  # type: ignore[attr-defined]
                f"({found[0]} hits)"  # type: ignore[index]
            )
        db.dispose()
    p50, b50 = statistics.median(ours), statistics.median(base)
    return [
        f"search: ours {p50 * 1000:.1f} ms, baseline {b50 * 1000:.1f} ms, ratio {b50 / p50:.1f} "
        f"(p50 over {len(QUERIES)} typical queries x {ROUNDS}, {SEGMENTS:,} segments)",
        f"  p95: ours {pct(ours, 0.95) * 1000:.1f} ms, baseline {pct(base, 0.95) * 1000:.1f} ms",
        f"  index build {build_s:.1f} s ({SEGMENTS / build_s:,.0f} segments/s), "
        f"index size {index_size / 1e6:.0f} MB",
        *detail,
    ]


if __name__ == "__main__":
    print("\n".join(run()))
