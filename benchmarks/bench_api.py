"""API throughput at 10,000 calls (issue 17, part B), measured with wrk, 16 connections.

- ``api_calls_vs_health``: ``GET /api/calls?limit=50`` (ours) vs ``GET /api/health``
  (baseline: the cheapest authenticated request the same server answers) on one
  ``earwitness serve`` process over SQLite with 10,000 calls (``benchmarks.datagen``);
  goal: ratio >= 0.5. Three interleaved 10 s rounds (health, calls, ...), medians.
- ``api_calls_2proc_pg``: the same ``GET /api/calls`` on PostgreSQL behind 2 API processes
  (ours, two wrk runs of 8 connections at once, one per process) vs 1 process (baseline,
  16 connections); goal: ratio ~ 2. On a 2-core host that also runs wrk and PostgreSQL
  the line also says what the cores allow: the CPU milliseconds per request of the API
  processes, PostgreSQL and wrk (from ``/proc``), the host's idle share, and the share of
  ``cores / (CPU per request)`` the 2 processes reached.

Latency percentiles (p50/p90/p99) are wrk's. Needs ``wrk`` (Debian: ``apt-get install -y wrk``)
and PostgreSQL on 127.0.0.1:5432 (db ``test``). Run: ``python -m benchmarks api``.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
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


_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "postgres":
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _host_cpu() -> tuple[float, float]:
    """(idle, total) jiffies of the whole host."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return float(values[3] + values[4]), float(sum(values))


def cpu_during(
    api_pids: list[int], run: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    """``run``'s wrk figures, and the CPU seconds per request of the API processes,
    PostgreSQL and wrk (this process's children) during it, and the host's idle share:
    what says whether a second API process can still add throughput on this host."""
    pg_before = {pid: _proc_cpu_s(pid) for pid in _postgres_pids()}
    api_before = sum(_proc_cpu_s(pid) for pid in api_pids)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle0, total0 = _host_cpu()
    result = run()
    idle1, total1 = _host_cpu()
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    api = sum(_proc_cpu_s(pid) for pid in api_pids) - api_before
    pg = sum(_proc_cpu_s(pid) - pg_before.get(pid, 0.0) for pid in _postgres_pids())
    wrk_s = (kids_after.ru_utime + kids_after.ru_stime) - (kids.ru_utime + kids.ru_stime)
    requests = result["rps"] * SECONDS
    return result, {
        "api_ms": 1000 * api / requests,
        "pg_ms": 1000 * pg / requests,
        "wrk_ms": 1000 * wrk_s / requests,
        "idle": (idle1 - idle0) / max(1.0, total1 - total0),
    }


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
            pids = [p.pid for p in procs]  # type: ignore[attr-defined]
            one, cpu_one = cpu_during(pids, lambda: wrk(ports[0], CALLS))
            two, cpu_two = cpu_during(pids, lambda: wrk_both(ports, CALLS))
            health = wrk(ports[0], "/api/health")
        finally:
            stop(procs)  # type: ignore[arg-type]
        cores = os.cpu_count() or 1
        per_request = cpu_two["api_ms"] + cpu_two["pg_ms"] + cpu_two["wrk_ms"]
        ceiling = 1000 * cores / per_request  # req/s when every core does nothing else
        lines.append(
            fmt(
                "api_calls_2proc_pg",
                two,
                one,
                "PostgreSQL, 2 processes vs 1; CPU ms per request, 1 process: API "
                f"{cpu_one['api_ms']:.2f}, PostgreSQL {cpu_one['pg_ms']:.2f}, wrk "
                f"{cpu_one['wrk_ms']:.2f}, host idle {cpu_one['idle']:.0%}; 2 processes: API "
                f"{cpu_two['api_ms']:.2f}, PostgreSQL {cpu_two['pg_ms']:.2f}, wrk "
                f"{cpu_two['wrk_ms']:.2f}, host idle {cpu_two['idle']:.0%}; the {cores} cores "
                f"can serve at most {ceiling:.0f} req/s at that cost, 2 processes reached "
                f"{two['rps'] / ceiling:.0%} of it",
            )
        )
        lines.append(fmt("api_calls_vs_health_pg", one, health, "PostgreSQL, 1 process"))
    return lines


if __name__ == "__main__":
    for out in run():
        print(out)
