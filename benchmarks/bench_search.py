"""Transcript search at call-centre scale, per query class, vs a plain ``LIKE '%...%'`` scan.

Corpus: :mod:`benchmarks.datagen` (zh/en complaint-call sentences with plates, order numbers,
minutes and amounts, a fifth of the Chinese traditional; 20 segments per call, calls over a
month in time order). Segment count: ``EARWITNESS_BENCH_SEARCH_SEGMENTS`` (default
1,000,000). The data set is generated once and reused: SQLite file
``EARWITNESS_BENCH_SEARCH_DB`` (default ``/tmp/ew-bench-search-<n>.db``); PostgreSQL when
``EARWITNESS_BENCH_SEARCH_PG`` names a server URL (schema ``ew_bench_search_<n>`` there;
a multiple of 1 M is copied from the 1 M schema, see :func:`_pg_copies`);
``EARWITNESS_BENCH_SEARCH_SQLITE=0`` skips SQLite (the 10 M PostgreSQL run).

Per query class (plates, order numbers, one- and two-character Chinese, very common words,
phrases, fuzzy, plus an AND and a NOT query), each measured in the same run on the same table:

- ours: ``earwitness.search.search`` as the API calls it (relevance, page of 20, capped total,
  highlights; above 10 000 matches the newest 1 000 ranked by ``window_score``);
- baseline: what a script would do — ``count(*) ... WHERE text LIKE '%q%'`` plus the newest
  20 (``ORDER BY id DESC LIMIT 20``); it knows nothing of traditional/simplified or 五十/50;
- also shown: the pre-issue-17 path (``count_cap=None``: score and count every match).

``ratio`` = baseline p50 / our p50 (> 1: ours faster). Run: ``python -m benchmarks search``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.datagen import generate_segments, index_segments  # noqa: E402
from earwitness.db import Database  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402
from earwitness.models import Segment  # noqa: E402
from earwitness.runtime import settle_process  # noqa: E402
from earwitness.search import SearchOptions, search  # noqa: E402
from earwitness.search.backends import ensure_pg_trgm_index  # noqa: E402
from earwitness.search.normalize import to_simplified  # noqa: E402

SEGMENTS = int(os.environ.get("EARWITNESS_BENCH_SEARCH_SEGMENTS", "1000000"))
SQLITE_PATH = os.environ.get("EARWITNESS_BENCH_SEARCH_DB", f"/tmp/ew-bench-search-{SEGMENTS}.db")
PG_URL = os.environ.get("EARWITNESS_BENCH_SEARCH_PG", "")
# "0": PostgreSQL only (the 10 M run: no 10 M SQLite file is generated)
WITH_SQLITE = os.environ.get("EARWITNESS_BENCH_SEARCH_SQLITE", "1") != "0"
ROUNDS = int(os.environ.get("EARWITNESS_BENCH_SEARCH_ROUNDS", "20"))
BASE_ROUNDS = 7
OLD_ROUNDS = int(os.environ.get("EARWITNESS_BENCH_SEARCH_OLD_ROUNDS", "3"))
# (class, our query, the LIKE substring a script would use)
CLASSES = [
    ("plate", "京A12345", "京A12345"),
    ("order_no", "8801234567", "8801234567"),
    ("zh_1char", "京", "京"),
    ("zh_2char", "迟到", "迟到"),
    ("common_zh", "您", "您"),
    ("common_en", "the", "the"),
    ("phrase", '"call you back"', "call you back"),
    ("fuzzy", "京A12346~", "京A12346"),
    ("and_jieba", "司机迟到", "司机迟到"),
    ("not", "投诉 -退款", "投诉"),
]


# a comma-separated subset of the classes' names, e.g. "and_jieba,not" (default: all)
ONLY = {c for c in os.environ.get("EARWITNESS_BENCH_SEARCH_CLASSES", "").split(",") if c}


def _pg_schema_url(server: str) -> str:
    schema = f"ew_bench_search_{SEGMENTS}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}"


# Copied in order, each copy's ids after the previous one's and its times 30 days later.
_COPY_TABLES = ["calls", "recordings", "transcripts", "segments", "search_segments"]
_ID_OF = {"call_id": "calls", "recording_id": "recordings", "transcript_id": "transcripts",
          "segment_id": "segments"}  # fmt: skip


def _pg_copies(db: Database, base_schema: str, copies: int) -> None:
    """Fill ``db`` (an empty PostgreSQL schema) with ``copies`` copies of a generated base
    schema, in SQL: 10 M segments from the 1 M set in minutes instead of an hour of
    Python folding. Copy k is the base month shifted by k x 30 days with ids above copy k-1,
    so ids still follow call time; plates and order numbers recur k times as often, as they
    would in a ten-month archive."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        for table in ("queues", "agents"):
            conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM {base_schema}.{table}")
        top = {
            t: int(conn.exec_driver_sql(f"SELECT max(id) FROM {base_schema}.{t}").scalar() or 0)
            for t in _COPY_TABLES[:-1]
        }
        for table in _COPY_TABLES:
            columns = conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = :s AND table_name = :t AND is_generated = 'NEVER' "
                    "ORDER BY ordinal_position"
                ),
                {"s": base_schema, "t": table},
            ).all()
            for k in range(copies):
                exprs = []
                for name, kind in columns:
                    if name == "id":
                        exprs.append(f"id + {k * top[table]}")
                    elif name in _ID_OF:
                        exprs.append(f"{name} + {k * top[_ID_OF[name]]}")
                    elif name == "linkedid":
                        exprs.append(f"linkedid || '~{k}'")
                    elif kind.startswith("timestamp"):
                        exprs.append(f"{name} + interval '{30 * k} days'")
                    else:
                        exprs.append(name)
                names = ", ".join(n for n, _ in columns)
                conn.exec_driver_sql(
                    f"INSERT INTO {table} ({names}) SELECT {', '.join(exprs)} "
                    f"FROM {base_schema}.{table} ORDER BY 1"
                )


def prepared(url: str) -> tuple[Database, str]:
    """The benchmark database, generated on first use (then reused): (db, what was done).
    On PostgreSQL a multiple of an existing 1 M set (``ew_bench_search_1000000``) is made by
    copying it (:func:`_pg_copies`)."""
    db = Database(url)
    upgrade(db.engine)
    with db.engine.connect() as conn:
        have = conn.scalar(sa.select(sa.func.count()).select_from(Segment)) or 0
    if have == SEGMENTS:
        return db, "reused"
    if have:
        raise SystemExit(f"{url} holds {have} segments, not {SEGMENTS}: delete it first")
    base = "ew_bench_search_1000000"
    copies = SEGMENTS // 1_000_000 if SEGMENTS % 1_000_000 == 0 else 0
    if not db.is_sqlite and copies > 1:
        with db.engine.connect() as conn:
            found = conn.scalar(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": base}
            )
        if not found:
            raise SystemExit(f"generate the 1 M set first (schema {base}), then copy it")
    started = time.perf_counter()
    if not db.is_sqlite:  # bulk load without the GIN indexes, then build them once
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX IF EXISTS search_fts_tokens_tsv")
            conn.exec_driver_sql("DROP INDEX IF EXISTS search_fts_norm_trgm")
    if not db.is_sqlite and copies > 1:
        _pg_copies(db, base, copies)
    else:
        generate_segments(db, SEGMENTS, seed=7)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    if db.is_sqlite or copies <= 1:  # (the copies carry their search rows)
        index_segments(db)  # on SQLite the FTS5 tables follow through the triggers
    with db.session() as session:
        if db.is_sqlite:
            session.execute(sa.text("INSERT INTO search_fts(search_fts) VALUES ('optimize')"))
            session.execute(
                sa.text("INSERT INTO search_fts_words(search_fts_words) VALUES ('optimize')")
            )
        else:
            session.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
            session.execute(
                sa.text(
                    "CREATE INDEX search_fts_tokens_tsv ON search_segments "
                    "USING gin (search_fts_tsv)"
                )
            )
            ensure_pg_trgm_index(session)
        session.commit()
    if not db.is_sqlite:  # what autovacuum does to a loaded table: visibility map, stats
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _COPY_TABLES:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    indexed = time.perf_counter() - started
    return db, f"generated in {generated:.0f} s, indexed in {indexed:.0f} s"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timings(fn: Callable[[], Any], rounds: int) -> tuple[list[float], Any]:
    out, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - start)
    return out, result


def ms(values: list[float]) -> str:
    return "/".join(f"{pct(values, q) * 1000:.1f}" for q in (0.5, 0.95, 0.99))


def measure(db: Database, label: str) -> list[str]:
    # As ``earwitness serve`` runs once set up: without it, a full collection over the
    # set-up's objects (and the old path's garbage) landed inside some timed searches.
    settle_process()
    lines: list[str] = []
    worst_p95, slowest_ratio = 0.0, float("inf")
    for name, q, like in CLASSES:
        if ONLY and name not in ONLY:
            continue
        pattern = "%" + to_simplified(like) + "%"

        def ours(q: str = q, cap: bool = True) -> Any:
            with db.session() as s:
                opts = SearchOptions() if cap else SearchOptions(count_cap=None)
                return search(s, q, options=opts)

        def scan(p: str = pattern) -> tuple[int, Any]:
            with db.engine.connect() as conn:
                where = Segment.text.like(p)
                count = conn.scalar(sa.select(sa.func.count()).select_from(Segment).where(where))
                rows = conn.execute(
                    sa.select(Segment.id, Segment.text)
                    .where(where)
                    .order_by(Segment.id.desc())
                    .limit(20)
                ).all()
                return int(count or 0), rows

        def old_path(q: str = q) -> Any:
            return ours(q, cap=False)

        ours(q)  # warm the page cache and jieba once, as a running server is
        # interleaved, so that a burst of load from elsewhere hits all three alike
        new_t: list[float] = []
        base_t: list[float] = []
        old_t: list[float] = []
        result = found = old = None
        for i in range(ROUNDS):
            more, result = timings(ours, 1)
            new_t += more
            if len(base_t) < BASE_ROUNDS and i % max(1, ROUNDS // BASE_ROUNDS) == 0:
                more, found = timings(scan, 1)
                base_t += more
            if len(old_t) < OLD_ROUNDS and i % max(1, ROUNDS // max(1, OLD_ROUNDS)) == 1:
                more, old = timings(old_path, 1)
                old_t += more
        assert result is not None and found is not None
        ratio = pct(base_t, 0.5) / pct(new_t, 0.5)
        worst_p95 = max(worst_p95, pct(new_t, 0.95))
        slowest_ratio = min(slowest_ratio, ratio)
        total = f"{result.total}{'' if result.total_exact else '+'}"
        lines.append(
            f"search_{label}[{name}]: ours {ms(new_t)} ms, baseline {ms(base_t)} ms, "
            f"ratio {ratio:.1f} (p50/p95/p99; {q!r}: {total} hits vs LIKE {found[0]}; "
            + (
                f"pre-issue-17 path {pct(old_t, 0.5) * 1000:.0f} ms p50, {old.total} hits; "
                if old_t and old is not None
                else ""
            )
            + f"load {os.getloadavg()[0]:.1f})"
        )
    lines.insert(
        0,
        f"search_{label}: ours {worst_p95 * 1000:.1f} ms worst-class p95, lowest ratio "
        f"{slowest_ratio:.1f} over {len(lines)} classes ({SEGMENTS:,} segments; "
        f"{ROUNDS} runs ours, {BASE_ROUNDS} LIKE, {OLD_ROUNDS} old path per class)",
    )
    return lines


def common_share(db: Database) -> str:
    with db.engine.connect() as conn:
        n = conn.scalar(
            sa.select(sa.func.count()).select_from(Segment).where(Segment.text.like("%您%"))
        )
    return f"  您 is in {100 * (n or 0) / SEGMENTS:.1f} % of the segments"


def run() -> list[str]:
    lines: list[str] = []
    if WITH_SQLITE:
        db, how = prepared(f"sqlite:///{SQLITE_PATH}")
        lines.append(f"  sqlite data set {SQLITE_PATH}: {how}")
        lines.append(common_share(db))
        lines.extend(measure(db, "sqlite"))
        db.dispose()
    if PG_URL:
        pg, how = prepared(_pg_schema_url(PG_URL))
        lines.append(f"  postgresql data set: {how}")
        lines.extend(measure(pg, "postgresql"))
        pg.dispose()
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
