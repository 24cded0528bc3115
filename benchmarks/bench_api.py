"""API throughput at 10,000 calls (issue 17, part B), measured with wrk, 16 connections.

- ``api_calls_vs_health``: ``GET /api/calls?limit=50`` (ours) vs ``GET /api/health``
  (baseline: the cheapest authenticated request the same server answers) on one
  ``earwitness serve`` process over SQLite with 10,000 calls (``benchmarks.datagen``);
  goal: ratio >= 0.5. Three interleaved 10 s rounds (health, calls, ...), medians.
- ``api_calls_2proc_pg``: the same ``GET /api/calls`` on PostgreSQL behind 2 API processes
  (ours, two wrk runs of 8 connections at once, one per process) vs 1 process (baseline,
  16 connections); goal: ratio ~ 2 (not reachable on a 2-core host that also runs wrk and
  PostgreSQL: the figure says how far it gets).

Latency percentiles (p50/p90/p99) are wrk's. Needs ``wrk`` (Debian: ``apt-get install -y wrk``)
and PostgreSQL on 127.0.0.1:5432 (db ``test``). Run: ``python -m benchmarks api``.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_scale import (  # noqa: E402
    KEY,
    _up,
    env_of,
    free_port,
    pg_schema,
    spawn,
    stop,
    wait_for,
)
from benchmarks.datagen import generate_calls  # noqa: E402
from earwitness.config import load_settings  # noqa: E402
from earwitness.db import Database  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402

N_CALLS = 10_000
SECONDS = 10
ROUNDS = 3
CONNECTIONS = 16
CALLS = "/api/calls?limit=50"


def wrk(port: int, path: str, connections: int = CONNECTIONS) -> dict[str, float]:
    """req/s and latency percentiles (ms) of one wrk run (2 threads)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency",
         "-H", f"X-API-Key: {KEY}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"{path}: wrk saw errors:\n{out}")
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            result[f"p{pct}"] = float(m.group(1)) * scale
    return result


def wrk_both(ports: list[int], path: str) -> dict[str, float]:
    """One wrk per port at the same time, CONNECTIONS split between them; req/s summed."""
    per = CONNECTIONS // len(ports)
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{per}",
                f"-d{SECONDS}s",
                "--latency",
                "-H",
                f"X-API-Key: {KEY}",
                f"http://127.0.0.1:{p}{path}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in ports
    ]
    outs = [p.communicate()[0] for p in procs]
    rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)  # type: ignore[union-attr,misc]
    return {"rps": rps}


def servers(db_url: str, root: Path, processes: int) -> tuple[list[int], list[object]]:
    settings = load_settings(data_dir=root / "data", database_url=db_url, demo="never")
    env = env_of(settings, {"EARWITNESS_WORKER_MODE": "off", "EARWITNESS_JOB_MODULES": "[]"})
    ports = [free_port() for _ in range(processes)]
    procs = [
        spawn(
            [sys.executable, "-m", "earwitness.cli", "serve", "--port", str(port)],
            env,
            root / f"api{port}.log",
        )
        for port in ports
    ]
    for port in ports:
        wait_for(lambda p=port: _up(p), 120, f"API on {port}")  # type: ignore[misc]
    return ports, procs  # type: ignore[return-value]


def fill(db_url: str) -> None:
    db = Database(db_url)
    try:
        upgrade(db.engine)
        generate_calls(db, N_CALLS, seed=5)
    finally:
        db.dispose()


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over several wrk runs."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if all(k in r for r in runs)}


def fmt(name: str, ours: dict[str, float], base: dict[str, float], what: str) -> str:
    lat = "; ".join(
        f"p{p} ours {ours[f'p{p}']:.1f} ms, baseline {base[f'p{p}']:.1f} ms"
        for p in ("50", "90", "99")
        if f"p{p}" in ours and f"p{p}" in base
    )
    return (
        f"{name}: ours {ours['rps']:.0f} req/s, baseline {base['rps']:.0f} req/s, "
        f"ratio {ours['rps'] / base['rps']:.2f} ({what}{'; ' + lat if lat else ''})"
    )


def run() -> list[str]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed (apt-get install -y wrk)")
    lines = []
    with tempfile.TemporaryDirectory(prefix="ew-bench-api-") as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        url = f"sqlite:///{root / 'data' / 'earwitness.db'}"
        fill(url)
        ports, procs = servers(url, root, 1)
        try:
            wrk(ports[0], "/api/health", 4)  # warm
            # Interleaved rounds, medians: the 2-core host is shared, and one 10 s pair
            # swung the ratio between 0.4 and 0.8.
            rounds = [(wrk(ports[0], "/api/health"), wrk(ports[0], CALLS)) for _ in range(ROUNDS)]
        finally:
            stop(procs)  # type: ignore[arg-type]
        health, calls = median_of([h for h, _ in rounds]), median_of([c for _, c in rounds])
        pairs = ", ".join(f"{c['rps'] / h['rps']:.2f}" for h, c in rounds)
        lines.append(
            fmt(
                "api_calls_vs_health",
                calls,
                health,
                f"SQLite, 1 process, {N_CALLS} calls; medians of {ROUNDS} interleaved rounds, "
                f"ratio per round {pairs}",
            )
        )
    with tempfile.TemporaryDirectory(prefix="ew-bench-api-") as tmp, pg_schema() as pg:
        root = Path(tmp)
        (root / "data").mkdir()
        fill(pg)
        ports, procs = servers(pg, root, 2)
        try:
            wrk(ports[0], CALLS, 4)  # warm
            wrk(ports[1], CALLS, 4)
            one = wrk(ports[0], CALLS)
            two = wrk_both(ports, CALLS)
            health = wrk(ports[0], "/api/health")
        finally:
            stop(procs)  # type: ignore[arg-type]
        lines.append(fmt("api_calls_2proc_pg", two, one, "PostgreSQL, 2 processes vs 1"))
        lines.append(fmt("api_calls_vs_health_pg", one, health, "PostgreSQL, 1 process"))
    return lines


if __name__ == "__main__":
    for out in run():
        print(out)
