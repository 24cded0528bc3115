"""SLA and wallboard at call-centre scale (issue 17, part B), side by side in one run.

- ``sla_<db>_<group_by>``: ``/api/sla``'s work for one month of 1 M calls (500-agent centre
  scale, ``benchmarks.datagen.generate_calls``, plus ring-outs on 5 % of the calls) on
  SQLite and PostgreSQL: ``telephony.sla_sql.sla_groups`` (ours: the quarter-hour roll-ups
  of ``telephony.sla_rollups``, the per-agent ones for ``group_by=agent``) vs the
  per-record Python path it replaces (``sla_groups_python``, baseline), both followed by
  the JSON encoding the route does. The per-call SQL path of before the roll-ups
  (``sla_groups_sql``, what ``group_by=agent`` ran until the agent roll-ups: its line
  ``sla_<db>_agent_vs_per_call`` takes it as the baseline) runs 3 times per ``group_by``
  between ours, for comparison, and the answers of all three are compared. First the
  start-up build (``prepare_rollups``, as ``Runtime.start_services``; 0 s once built) and
  the build of one profile's agent rows from all the calls (rolled back) are timed. Then
  4 calls change (4 marked quarters): reads with those quarters taken from the calls, and
  the refresh that folds them in, are timed.
  Ours runs ``REPEAT`` times per ``group_by`` (p50/p95/p99); the baseline costs about a
  minute per run at 1 M, so it runs once per database, for ``group_by=queue`` (the
  endpoint's default), and its one time stands for p50 = p95 = p99. Answers are compared
  (counts exactly, means to 1e-9).
- ``live_<db>``: the wallboard's data (``/api/live``: calls in progress, agents ringing and
  talking, the member board) with 60 calls in progress over 1 M calls of history (ours:
  with the issue-17 indexes) vs the same query with those indexes dropped (baseline:
  what it was), plus the same call on a 1,000-call history to show it does not grow.

The data sets are generated once and reused: SQLite ``/tmp/ew_bench_sla_1m.sqlite`` and the
PostgreSQL schema ``ew_bench_sla_1m`` (db ``test``); ``EW_BENCH_SLA_DROP=1`` deletes both
at the end. ``EW_BENCH_SLA_CALLS`` sets the size (default 1,000,000).
Run: ``python -m benchmarks sla``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from benchmarks.datagen import MONTH_START, generate_calls  # noqa: E402
from earwitness.api.routes.calls import sla_json  # noqa: E402
from earwitness.config import load_settings  # noqa: E402
from earwitness.db import Database  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402
from earwitness.models import AgentAttempt, AgentStateSpan, Call, SlaAgentRollup  # noqa: E402
from earwitness.runtime import Runtime  # noqa: E402
from earwitness.telephony import sla_rollups  # noqa: E402
from earwitness.telephony.persist import SlaDefaults  # noqa: E402
from earwitness.telephony.queries import CallFilter  # noqa: E402
from earwitness.telephony.sla import GROUP_BYS  # noqa: E402
from earwitness.telephony.sla_sql import (  # noqa: E402
    prepare_rollups,
    sla_groups,
    sla_groups_python,
    sla_groups_sql,
    target_of,
)
from earwitness.timezones import zone_named  # noqa: E402

PG = os.environ.get("EARWITNESS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
N_CALLS = int(os.environ.get("EW_BENCH_SLA_CALLS", "1000000"))
SQLITE_PATH = Path(f"/tmp/ew_bench_sla_{N_CALLS // 1000}k.sqlite")
PG_SCHEMA = f"ew_bench_sla_{N_CALLS // 1000}k"
REPEAT = 7
SQL_REPEAT = 3
LIVE_REPEAT = 30
ZONE = "Asia/Shanghai"
DEFAULTS = SlaDefaults()
LIVE_INDEXES = {
    "ix_calls_outcome_entered_at": ("calls", "outcome, entered_at"),
    "ix_agent_attempts_result": ("agent_attempts", "result"),
}


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, ours: list[float], base: list[float]) -> str:
    parts = []
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        o, b = pct(ours, q), pct(base, q)
        parts.append(
            f"{label} ours {o * 1000:.1f} ms, baseline {b * 1000:.1f} ms, ratio {b / o:.1f}"
        )
    return f"{name}: ours {pct(ours, 0.5) * 1000:.1f} ms p50, baseline " + (
        f"{pct(base, 0.5) * 1000:.1f} ms p50, ratio {pct(base, 0.5) / pct(ours, 0.5):.1f} "
        f"({'; '.join(parts)}; n={len(ours)}/{len(base)})"
    )


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def pg_url(schema: str) -> str:
    return f"{PG}?options=-csearch_path%3D{schema}"


def ensure_data(url: str) -> None:
    """Migrate and fill once: 1 M calls, 5 % with a ring-out, 60 calls in progress."""
    db = Database(url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as conn:
            have = conn.scalar(sa.select(sa.func.count()).select_from(Call)) or 0
        if have >= N_CALLS:
            return
        t0 = time.perf_counter()
        ids = generate_calls(db, N_CALLS, seed=17)
        with db.engine.begin() as conn:
            agents = [a for (a,) in conn.execute(sa.text("SELECT id FROM agents ORDER BY id"))]
            rows = [
                {
                    "call_id": cid,
                    "agent_id": agents[cid % len(agents)],
                    "rang_at": MONTH_START,
                    "ended_at": MONTH_START,
                    "result": "rona",
                }
                for cid in ids[::20]
            ]
            for i in range(0, len(rows), 20_000):
                conn.execute(sa.insert(AgentAttempt), rows[i : i + 20_000])
            _in_progress(conn, agents, datetime.now(UTC))
        print(f"  generated {N_CALLS} calls in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        db.dispose()


def _in_progress(conn: sa.Connection, agents: list[int], now: datetime) -> None:
    """60 calls in progress (40 waiting, 20 talking), 10 agents ringing, member states."""
    first = (conn.scalar(sa.select(sa.func.max(Call.id))) or 0) + 1
    calls = []
    for k in range(60):
        entered = now - timedelta(seconds=5 + k)
        calls.append(
            {
                "id": first + k,
                "linkedid": f"live-{now.timestamp()}-{k}",
                "source": "ami",
                "kind": "queue",
                "caller": f"1390000{k:04d}",
                "queue_id": 1,
                "agent_id": agents[k] if k >= 40 else None,
                "entered_at": entered,
                "answered_at": entered + timedelta(seconds=3) if k >= 40 else None,
                "wait_s": 3.0 if k >= 40 else None,
                "outcome": "in_progress",
                "time_source": "event",
            }
        )
    conn.execute(sa.insert(Call), calls)
    conn.execute(
        sa.insert(AgentAttempt),
        [
            {"call_id": first + k, "agent_id": agents[100 + k], "rang_at": now, "result": "ringing"}
            for k in range(10)
        ],
    )
    conn.execute(
        sa.insert(AgentStateSpan),
        [
            {"agent_id": a, "state": "available", "started_at": now - timedelta(hours=2)}
            for a in agents
        ],
    )


def month() -> CallFilter:
    zone = zone_named(ZONE)
    start = datetime(2026, 11, 1, tzinfo=zone)
    return CallFilter(start=start.astimezone(UTC), end=datetime(2026, 12, 1, tzinfo=zone))


def encoded(groups: list[Any]) -> list[Any]:
    """The groups, after the JSON encoding the route does (its cost is part of the work)."""
    json.dumps([sla_json(g) for g in groups], ensure_ascii=False, separators=(",", ":"))
    return groups


def check_same(new: list[Any], old: list[Any]) -> None:
    assert [g.key for g in new] == [g.key for g in old], "different groups"
    for a, b in zip(new, old, strict=True):
        da, db = asdict(a), asdict(b)
        for name in ("asa_s", "avg_wait_s"):
            x, y = da.pop(name), db.pop(name)
            assert (x is None and y is None) or abs(x - y) <= 1e-9 * max(1.0, abs(y)), name
        assert da == db, f"group {a.key} differs"


def bench_sla(kind: str, url: str) -> list[str]:
    """Ours (roll-ups), the per-call SQL path before them (``sla_groups_sql``, 3 runs per
    ``group_by``, interleaved with ours) and the Python baseline (once, ``queue``)."""
    db = Database(url)
    zone = zone_named(ZONE)
    f = month()
    out: list[str] = []
    try:
        with db.session() as session:
            t0 = time.perf_counter()
            prepare_rollups(session, DEFAULTS, wait_ms=60_000)
            out.append(
                f"  sla_{kind}: start-up build (prepare_rollups: marks folded, queue profiles "
                f"and the default target's agent rows) {time.perf_counter() - t0:.1f} s"
            )
            out.append(agent_build(kind, db, session))
            t0 = time.perf_counter()
            for group_by in ("queue", "total", "agent"):
                sla_groups(session, f, group_by, zone, DEFAULTS)
            out.append(
                f"  sla_{kind}: first reads after the start-up build (queue, total, agent) "
                f"{time.perf_counter() - t0:.1f} s"
            )
            runs: list[tuple[str, list[float], list[float]]] = []
            for group_by in GROUP_BYS:
                ours: list[float] = []
                sql: list[float] = []
                new = old_sql = None
                for i in range(REPEAT):
                    t, new = timed(
                        lambda g=group_by: encoded(sla_groups(session, f, g, zone, DEFAULTS)), 1
                    )
                    ours += t
                    if i < SQL_REPEAT:
                        t, old_sql = timed(
                            lambda g=group_by: encoded(
                                sla_groups_sql(session, f, g, zone, DEFAULTS)
                            ),
                            1,
                        )
                        sql += t
                check_same(new or [], old_sql or [])
                runs.append((group_by, ours, sql))
                if group_by == "queue":
                    baseline, old = timed(
                        lambda: encoded(sla_groups_python(session, f, "queue", zone, DEFAULTS)), 1
                    )
                    check_same(new or [], old)
                    offered = sum(g.offered for g in (new or []))
            for g, ours, sql in runs:
                out.append(line(f"sla_{kind}_{g}", ours, baseline))
                if g == "agent":  # what group_by=agent ran before its roll-ups
                    out.append(line(f"sla_{kind}_agent_vs_per_call", ours, sql))
                out.append(
                    f"  sla_{kind}_{g}: per-call SQL path (before roll-ups) "
                    f"{pct(sql, 0.5) * 1000:.1f} ms p50, {pct(sql, 0.95) * 1000:.1f} ms p95 "
                    f"(n={len(sql)}, {pct(sql, 0.5) / pct(ours, 0.5):.1f}x ours)"
                )
            out.append(
                f"  sla_{kind}: {offered} offered calls in the month, baseline = group_by=queue"
            )
        out += bench_marked(kind, db, f)
        return out
    finally:
        db.dispose()


def agent_build(kind: str, db: Database, session: Any) -> str:
    """One profile's agent rows built from every call (a target no queue uses), timed and
    rolled back: what a first agent report for a new target, or the start-up build of the
    default target's agent rows, costs."""
    profile = sla_rollups.Profile.of(target_of(session, None, DEFAULTS))
    other = sla_rollups.Profile(profile.period_ms + 1, profile.seconds_us)
    session.rollback()
    with db.engine.connect() as conn:
        t0 = time.perf_counter()
        sla_rollups.refresh(conn, fold=False, add_agents=[other])
        took = time.perf_counter() - t0
        rows = conn.scalar(
            sa.select(sa.func.count())
            .select_from(SlaAgentRollup)
            .where(
                SlaAgentRollup.period_ms == other.period_ms,
                SlaAgentRollup.seconds_us == other.seconds_us,
            )
        )
        conn.rollback()
    return (
        f"  sla_{kind}: agent rows of one profile built from all calls {took:.1f} s ({rows} rows)"
    )


def bench_marked(kind: str, db: Database, f: CallFilter) -> list[str]:
    """Live writes: 4 calls in 4 quarter-hours of the month change (abandoned -> timeout);
    reads compute those quarters from the calls until the refresh, which is timed too."""
    zone = zone_named(ZONE)
    with db.engine.begin() as conn:
        ids = list(
            conn.scalars(
                sa.select(Call.id)
                .where(Call.outcome == "abandoned", Call.entered_at >= f.start)
                .order_by(Call.id)
                .limit(4000)
            )
        )[::1000]
        conn.execute(sa.update(Call).where(Call.id.in_(ids)).values(outcome="timeout"))
    out = []
    with db.session() as session:
        for group_by in ("total", "day", "agent"):
            times, new = timed(
                lambda g=group_by: encoded(sla_groups(session, f, g, zone, DEFAULTS)), REPEAT
            )
            check_same(new, sla_groups_sql(session, f, group_by, zone, DEFAULTS))
            out.append(
                f"  sla_{kind}_{group_by}: with {len(ids)} marked quarters "
                f"{pct(times, 0.5) * 1000:.1f} ms p50, {pct(times, 0.95) * 1000:.1f} ms p95"
            )
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        quarters = sla_rollups.refresh(conn)
    out.append(
        f"  sla_{kind}: refresh of {quarters} marked quarters (3 grains, every profile, "
        "queue and agent rows) "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms"
    )
    return out


def live_times(url: str, repeat: int) -> list[float]:
    settings = load_settings(
        data_dir=Path("/tmp/ew_bench_sla_data"), database_url=url, demo="never", timezone=ZONE
    )
    from earwitness.api.routes.calls import _live

    runtime = Runtime.open(settings)
    try:
        _live(runtime)  # warm
        times, snapshot = timed(lambda: _live(runtime), repeat)
        assert snapshot["calls_talking"] >= 20  # waiting ones go stale after a day
        return times
    finally:
        runtime.close()


def bench_live(kind: str, url: str, small_url: str) -> list[str]:
    ours = live_times(url, LIVE_REPEAT)
    small = live_times(small_url, LIVE_REPEAT)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in LIVE_INDEXES:
                conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
        base = live_times(url, max(3, LIVE_REPEAT // 10))
    finally:
        with engine.begin() as conn:
            for name, (table, cols) in LIVE_INDEXES.items():
                conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({cols})"))
        engine.dispose()
    return [
        line(f"live_{kind}", ours, base),
        f"  live_{kind}: same call on a 1,000-call history {pct(small, 0.5) * 1000:.1f} ms p50, "
        f"{pct(small, 0.99) * 1000:.1f} ms p99 (history-size ratio "
        f"{pct(ours, 0.5) / pct(small, 0.5):.2f})",
    ]


def small_db(url: str) -> None:
    db = Database(url)
    try:
        upgrade(db.engine)
        ids = generate_calls(db, 1000, seed=3)
        with db.engine.begin() as conn:
            agents = [a for (a,) in conn.execute(sa.text("SELECT id FROM agents ORDER BY id"))]
            _in_progress(conn, agents, datetime.now(UTC))
        assert len(ids) == 1000
    finally:
        db.dispose()


def run() -> list[str]:
    admin = sa.create_engine(PG)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        conn.execute(sa.text('DROP SCHEMA IF EXISTS "ew_bench_sla_small" CASCADE'))
        conn.execute(sa.text('CREATE SCHEMA "ew_bench_sla_small"'))
    small_sqlite = Path("/tmp/ew_bench_sla_small.sqlite")
    small_sqlite.unlink(missing_ok=True)
    targets = {
        "sqlite": (f"sqlite:///{SQLITE_PATH}", f"sqlite:///{small_sqlite}"),
        "postgres": (pg_url(PG_SCHEMA), pg_url("ew_bench_sla_small")),
    }
    lines: list[str] = []
    try:
        for kind, (url, small_url) in targets.items():
            ensure_data(url)
            small_db(small_url)
            for part in (bench_sla(kind, url), bench_live(kind, url, small_url)):
                lines += part
                print("\n".join(part), file=sys.stderr, flush=True)  # kept if a later part fails
    finally:
        for leftover in (small_sqlite, Path(f"{small_sqlite}.migrate.lock")):
            leftover.unlink(missing_ok=True)
        with admin.begin() as conn:
            conn.execute(sa.text('DROP SCHEMA IF EXISTS "ew_bench_sla_small" CASCADE'))
            if os.environ.get("EW_BENCH_SLA_DROP"):
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE'))
        if os.environ.get("EW_BENCH_SLA_DROP"):
            for suffix in ("", "-wal", "-shm", ".migrate.lock"):
                Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        admin.dispose()
    return lines


if __name__ == "__main__":
    for out in run():
        print(out)
