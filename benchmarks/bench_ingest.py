"""Ingest latency on the real Asterisk (issue 17, part B): AMI event -> visible on /api/live.

50 queue calls are originated at once on a real Asterisk 22 (tests/pbx, 50 agents, answer
delays 2-6 s). ``earwitness serve`` runs as its own process, as deployed (uvicorn, the PBX
tracker, its writer, SQLite), so the benchmark's own threads share no interpreter with it.
Here, a separate AMI connection (a bystander, like a second manager user) stamps when each
``QueueCallerJoin`` and ``AgentConnect`` reached it; a wallboard client reads
``GET /api/live/stream?interval_s=0.2`` (SSE) over HTTP and stamps when each caller first
appears in ``waiting`` (join) and when they leave it (answer). Latency = SSE stamp - AMI
stamp. The stream is open before the first call is placed, so a join never counts the
wallboard's own connection set-up.

- ``ingest_sse``: p50/p95/p99 of those latencies (ours) vs the same run against the
  server of another checkout (``EARWITNESS_BENCH_INGEST_BASELINE=/path/to/checkout``, e.g. a
  ``git worktree`` of the pre-change commit), rounds interleaved; without it, vs the
  stream's own snapshot period (the delay a wallboard polling ``/api/live`` every 0.2 s
  would add on its own). Goal p99 < 200 ms.

Needs root and the Asterisk root of tests/pbx (built by ``./scripts/test``).
Run: ``python -m benchmarks ingest`` (``EARWITNESS_BENCH_ROUNDS``, default 3).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pbx.asterisk import Asterisk, build_root  # noqa: E402

CALLS = 50
INTERVAL_S = 0.2
DEADLINE_S = 120.0
KEY = "ew-bench-ingest-key-0123456789abcdef"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def observe(pbx: Asterisk, seen: dict[tuple[str, str], float], stop: threading.Event) -> None:
    """First arrival of each (event, caller) on a bystander AMI connection."""
    ami = pbx.ami()
    try:
        while not stop.is_set():
            msg = ami.read_message(0.2)
            if msg is None or msg.event not in ("QueueCallerJoin", "AgentConnect"):
                continue
            seen.setdefault((msg.event, msg.get("CallerIDNum") or ""), time.monotonic())
    finally:
        ami.close()


def serve(pbx: Asterisk, source: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``earwitness serve`` of the checkout at ``source``, tracking ``pbx``."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "EARWITNESS_DATA_DIR": str(tmp / "data"),
        "EARWITNESS_DEMO": "never",
        "EARWITNESS_AMI_HOST": pbx.ami_host,
        "EARWITNESS_AMI_PORT": str(pbx.ami_port),
        "EARWITNESS_AMI_USER": pbx.ami_user,
        "EARWITNESS_AMI_SECRET": pbx.ami_secret,
        "EARWITNESS_BOOTSTRAP_API_KEY": KEY,
    }
    env.pop("EARWITNESS_DATABASE_URL", None)
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from earwitness.cli import main; main()", "serve"]
        + ["--port", str(port), "--demo", "never"],
        cwd=source,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


def one_round(pbx: Asterisk, source: Path) -> tuple[list[float], list[float]]:
    """Join and answer latencies (s) of 50 concurrent calls against ``source``'s server."""
    seen: dict[tuple[str, str], float] = {}
    joined: dict[str, float] = {}
    left: dict[str, float] = {}
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="ew-bench-ingest-") as tmp_name:
        proc, base = serve(pbx, source, Path(tmp_name))
        watcher = threading.Thread(target=observe, args=(pbx, seen, stop), daemon=True)
        watcher.start()
        try:
            with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as api:
                t0 = time.monotonic()
                while True:
                    if proc.poll() is not None or time.monotonic() - t0 > 60:
                        raise RuntimeError(f"earwitness serve did not come up ({tmp_name})")
                    try:
                        if api.get("/api/health").json()["ami"]["ok"]:
                            break
                    except (httpx.HTTPError, KeyError, ValueError):
                        pass
                    time.sleep(0.1)  # waiting for the server and its AMI login
                callers = [f"1390000{n:04d}" for n in range(CALLS)]
                rng = random.Random(17)
                delays = [rng.uniform(2, 6) for _ in callers]

                def place_calls() -> None:
                    ami = pbx.ami()
                    try:
                        for caller, delay in zip(callers, delays, strict=True):
                            pbx.originate_queue_call(
                                ami, callerid=caller, agent_delay=delay, agent_talk=4
                            )
                    finally:
                        ami.close()

                placer = threading.Thread(target=place_calls, daemon=True)
                path = f"/api/live/stream?interval_s={INTERVAL_S}"
                with api.stream("GET", path) as stream:
                    for line in stream.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        now = time.monotonic()
                        if placer.ident is None:
                            placer.start()  # after the first snapshot
                            t0 = now
                            continue
                        waiting = {w["caller"] for w in json.loads(line[6:])["waiting"]}
                        for caller in waiting:
                            joined.setdefault(caller, now)
                        for caller in set(joined) - waiting:
                            left.setdefault(caller, now)
                        # Done when every call was answered on the PBX and none is shown
                        # waiting: a call whose join and answer the wallboard saw in one
                        # snapshot is never shown waiting at all.
                        answered = sum(1 for event, _ in list(seen) if event == "AgentConnect")
                        settled = answered >= CALLS and not waiting and len(left) == len(joined)
                        if len(left) >= CALLS or settled or now - t0 > DEADLINE_S:
                            break
                placer.join(30)
                # Every call hung up before the next round (agents talk 4 s).
                t1 = time.monotonic()
                while api.get("/api/live").json()["calls_talking"] and time.monotonic() - t1 < 60:
                    time.sleep(0.2)  # polling the server's own view of the PBX
        finally:
            stop.set()
            watcher.join(5)
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    join_lat = [
        joined[c] - seen[("QueueCallerJoin", c)] for c in joined if ("QueueCallerJoin", c) in seen
    ]
    answer_lat = [left[c] - seen[("AgentConnect", c)] for c in left if ("AgentConnect", c) in seen]
    if not join_lat or not answer_lat:
        raise RuntimeError("no call was both seen on AMI and on the stream")
    return join_lat, answer_lat


def _figures(label: str, joins: list[float], answers: list[float]) -> str:
    both = joins + answers
    return (
        f"{label} p50 {pct(both, 0.5) * 1000:.0f} / p95 {pct(both, 0.95) * 1000:.0f} / "
        f"p99 {pct(both, 0.99) * 1000:.0f} ms ({len(joins)} joins, join p99 "
        f"{pct(joins, 0.99) * 1000:.0f} ms; {len(answers)} answers, answer p99 "
        f"{pct(answers, 0.99) * 1000:.0f} ms)"
    )


def run() -> list[str]:
    rounds = int(os.environ.get("EARWITNESS_BENCH_ROUNDS", "3"))
    baseline_src = os.environ.get("EARWITNESS_BENCH_INGEST_BASELINE")
    sources = {"ours": ROOT}
    if baseline_src:
        sources["baseline"] = Path(baseline_src).resolve()
    root = build_root()
    pbx = Asterisk(root, agents=CALLS, member_timeout=30)
    pbx.start()
    got: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in sources}
    lines: list[str] = []
    try:
        for n in range(rounds):
            for name, source in sources.items():  # interleaved: the same host load
                joins, answers = one_round(pbx, source)
                got[name][0].extend(joins)
                got[name][1].extend(answers)
                load = os.getloadavg()[0]
                lines.append(f"  round {n + 1} {_figures(name, joins, answers)}, load {load:.1f}")
    finally:
        pbx.stop()
        pbx.cleanup()
    ours = got["ours"][0] + got["ours"][1]
    if baseline_src:
        base = got["baseline"][0] + got["baseline"][1]
        what = f"the server of {baseline_src}"
    else:
        base = [INTERVAL_S * i / 100 for i in range(101)]  # a uniform 0..interval wait
        what = f"a {INTERVAL_S:g} s poll's own delay"
    p99, b99 = pct(ours, 0.99), pct(base, 0.99)
    return [
        f"ingest_sse: ours {p99 * 1000:.0f} ms p99, baseline {b99 * 1000:.0f} ms p99, ratio "
        f"{b99 / p99:.2f} (baseline: {what}; {rounds} rounds of {CALLS} concurrent calls; "
        f"{_figures('ours', *got['ours'])}"
        + (f"; {_figures('baseline', *got['baseline'])}" if baseline_src else "")
        + ")",
        *lines,
    ]


if __name__ == "__main__":
    for out in run():
        print(out)
