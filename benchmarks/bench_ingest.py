"""Ingest latency on the real Asterisk (issue 17, part B): AMI event -> visible on /api/live.

50 queue calls are originated at once on a real Asterisk 22 (tests/pbx, 50 agents, answer
delays 2-6 s). A separate AMI connection (a bystander, like a second manager user) stamps
when each ``QueueCallerJoin`` and ``AgentConnect`` reached it; a wallboard client reads
``GET /api/live/stream?interval_s=0.2`` (SSE) and stamps when each caller first appears in
``waiting`` (join) and when they leave it (answer). Latency = SSE stamp - AMI stamp.

- ``ingest_sse``: p50/p95/p99 of those latencies (ours) vs the stream's own snapshot period
  (baseline: the delay a wallboard polling ``/api/live`` every 0.2 s would add on its own).
  Goal p99 < 200 ms.

Needs root and the Asterisk root of tests/pbx (built by ``./scripts/test``).
Run: ``python -m benchmarks ingest``.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from earwitness.config import load_settings  # noqa: E402
from earwitness.runtime import Runtime  # noqa: E402
from tests.accounts_helpers import api_client  # noqa: E402
from tests.pbx.asterisk import Asterisk, build_root  # noqa: E402

CALLS = 50
INTERVAL_S = 0.2
DEADLINE_S = 120.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


def run() -> list[str]:
    root = build_root()
    pbx = Asterisk(root, agents=CALLS, member_timeout=30)
    pbx.start()
    seen: dict[tuple[str, str], float] = {}
    joined: dict[str, float] = {}
    left: dict[str, float] = {}
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="ew-bench-ingest-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp) / "data",
            demo="never",
            ami_host=pbx.ami_host,
            ami_port=pbx.ami_port,
            ami_user=pbx.ami_user,
            ami_secret=pbx.ami_secret,
        )
        runtime = Runtime.open(settings)
        runtime.start_services()
        watcher = threading.Thread(target=observe, args=(pbx, seen, stop), daemon=True)
        watcher.start()
        try:
            with api_client(runtime) as api:
                t0 = time.monotonic()
                while not api.get("/api/health").json()["ami"]["ok"]:
                    if time.monotonic() - t0 > 30:
                        raise RuntimeError("earwitness did not log in to AMI")
                    time.sleep(0.1)  # waiting for the AMI login
                callers = [f"1390000{n:04d}" for n in range(CALLS)]
                rng = random.Random(17)
                ami = pbx.ami()
                try:
                    for caller in callers:
                        pbx.originate_queue_call(
                            ami, callerid=caller, agent_delay=rng.uniform(2, 6), agent_talk=4
                        )
                finally:
                    ami.close()
                path = f"/api/live/stream?interval_s={INTERVAL_S}"
                with api.stream("GET", path) as stream:
                    for line in stream.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        now = time.monotonic()
                        waiting = {w["caller"] for w in json.loads(line[6:])["waiting"]}
                        for caller in waiting:
                            joined.setdefault(caller, now)
                        for caller in set(joined) - waiting:
                            left.setdefault(caller, now)
                        # Done when every call was answered on the PBX and none is shown
                        # waiting: a call whose join and answer the writer saved in one
                        # transaction (it was > 2 s behind) is never shown waiting at all.
                        answered = sum(1 for event, _ in list(seen) if event == "AgentConnect")
                        settled = answered >= CALLS and not waiting and len(left) == len(joined)
                        if len(left) >= CALLS or settled or now - t0 > DEADLINE_S:
                            break
        finally:
            stop.set()
            watcher.join(5)
            runtime.close()
            pbx.stop()
            pbx.cleanup()
    join_lat = [
        joined[c] - seen[("QueueCallerJoin", c)] for c in joined if ("QueueCallerJoin", c) in seen
    ]
    answer_lat = [left[c] - seen[("AgentConnect", c)] for c in left if ("AgentConnect", c) in seen]
    both = join_lat + answer_lat
    if not both:
        raise RuntimeError("no call was both seen on AMI and on the stream")
    base = [INTERVAL_S * i / 100 for i in range(101)]  # a uniform 0..interval wait
    parts = "; ".join(
        f"{label} ours {pct(both, q) * 1000:.0f} ms, baseline {pct(base, q) * 1000:.0f} ms"
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    )
    return [
        f"ingest_sse: ours {pct(both, 0.99) * 1000:.0f} ms p99, baseline "
        f"{pct(base, 0.99) * 1000:.0f} ms p99, ratio {pct(base, 0.99) / pct(both, 0.99):.2f} "
        f"({parts}; {len(join_lat)} joins + {len(answer_lat)} answers of {CALLS} concurrent "
        f"calls; join p99 {pct(join_lat, 0.99) * 1000:.0f} ms, answer p99 "
        f"{pct(answer_lat, 0.99) * 1000:.0f} ms; {CALLS - len(joined)} never shown waiting)"
        if join_lat and answer_lat
        else f"ingest_sse: ours {pct(both, 0.99) * 1000:.0f} ms p99 ({len(both)} samples)"
    ]


if __name__ == "__main__":
    for out in run():
        print(out)
