"""PBX soak: generated traffic on the real Asterisk, AMI link cuts, an Asterisk restart, and
earwitness's figures compared with Asterisk's own queue_log and CDR at the end.

Not part of the test run (it takes minutes by design). ``scripts/soak [--minutes 30]``:

- Asterisk 22 from tests/pbx (12 Local agents, 15 s member timeout, CDR to Master.csv),
  earwitness as its own process (``earwitness serve``), reaching AMI through
  tests/tcp_proxy.py so the link can be cut.
- Traffic keeps ~``--concurrent`` calls alive: answered calls (1–10 s to answer, 15–45 s
  talk), abandons, RONA (the first agent never answers), blind transfers after answer.
  Every call has its own caller number, so every source can be joined on it.
- Faults: two AMI link cuts (20 s each) at 1/3 and 2/3 of the run, one ``kill -9`` +
  restart of Asterisk at 1/2.
- Ground truth: per caller, the queue_log's final event (answered / abandoned / ...), and the
  CDR rows; calls cut by the restart have no end in either and are compared as such.
- Memory: RSS of the earwitness process at start, every minute, and at the end.

Prints ``soak: calls N, lost L, duplicated D, outcome mismatches M, RSS start/mid/end`` and
writes the details as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pbx.asterisk import Asterisk, default_root  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

API_KEY = "ew_soak_" + "k" * 32
ANSWER_ENDS = {"COMPLETEAGENT", "COMPLETECALLER", "TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"}
OUTCOME_OF_END = {
    **dict.fromkeys(ANSWER_ENDS, "answered"),
    "ABANDON": "abandoned",
    "EXITWITHKEY": "abandoned",
    "EXITWITHTIMEOUT": "timeout",
    "EXITEMPTY": "unavailable",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Traffic:
    pbx: Asterisk
    concurrent: int
    rng: random.Random = field(default_factory=lambda: random.Random(19))
    placed: dict[str, str] = field(default_factory=dict)  # caller -> kind
    errors: int = 0
    transfers: int = 0
    _serial: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _next_caller(self) -> str:
        self._serial += 1
        return f"1390{self._serial:07d}"

    def place_one(self) -> None:
        kind = self.rng.choices(["answer", "abandon", "rona", "transfer"], [6, 2, 1, 1])[0]
        caller = self._next_caller()
        talk = self.rng.uniform(15, 45)
        options: dict[str, Any] = {"callerid": caller, "agent_talk": round(talk, 1)}
        if kind == "abandon":
            options |= {"agent_delay": 60, "abandon_after": self.rng.randint(3, 12)}
        elif kind == "rona":
            options |= {"agent_delay": 2, "agent_delays": {"agent1": 60}}
        else:
            options["agent_delay"] = self.rng.randint(1, 10)
        try:
            ami = self.pbx.ami()
            try:
                response = self.pbx.originate_queue_call(ami, **options)
            finally:
                ami.close()
            if response.get("Response") == "Success":
                self.placed[caller] = kind
            else:
                self.errors += 1
        except Exception:  # Asterisk restarting: this arrival is simply not placed
            self.errors += 1

    def transfer_some(self) -> None:
        """Blind-transfer one bridged agent leg of a 'transfer' call to agent12."""
        try:
            ami = self.pbx.ami()
            try:
                channels = self.pbx.cli("core show channels concise").splitlines()
                for line in channels:
                    fields = line.split("!")
                    if len(fields) > 7 and fields[0].startswith("Local/agent") and "Up" in line:
                        if ami.blind_transfer(fields[0], "agent12").get("Response") == "Success":
                            self.transfers += 1
                        return
            finally:
                ami.close()
        except Exception:
            self.errors += 1

    def run(self, seconds: float, live_calls: Any) -> None:
        deadline = time.monotonic() + seconds
        last_transfer = time.monotonic()
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                active = live_calls()
            except Exception:
                active = self.concurrent
            if active < self.concurrent:
                self.place_one()
            if time.monotonic() - last_transfer > 20:
                self.transfer_some()
                last_transfer = time.monotonic()
            time.sleep(self.rng.uniform(0.3, 1.2))

    def stop(self) -> None:
        self._stop.set()


def queue_log_truth(path: Path) -> dict[str, dict[str, Any]]:
    """Per caller number: the outcome by the last end event (None: no end), independent of
    earwitness's parser (a plain split of Asterisk's own lines)."""
    by_callid: dict[str, dict[str, Any]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        parts = raw.split("|")
        if len(parts) < 5:
            continue
        callid, event = parts[1], parts[4]
        if event == "ENTERQUEUE" and len(parts) > 6:
            by_callid.setdefault(
                callid, {"caller": parts[6], "outcome": None, "visits": 0, "connected": False}
            )
            by_callid[callid]["visits"] += 1
        elif callid in by_callid and event == "CONNECT":
            by_callid[callid]["connected"] = True
        elif callid in by_callid and event in OUTCOME_OF_END:
            by_callid[callid]["outcome"] = OUTCOME_OF_END[event]
    truth: dict[str, dict[str, Any]] = {}
    for item in by_callid.values():
        truth[item["caller"]] = item
    return truth


def cdr_callers(path: Path) -> Counter[str]:
    """CDR rows per caller number (cdr_csv Master.csv: src is the second column)."""
    if not path.is_file():
        return Counter()
    with path.open(newline="") as f:
        return Counter(row[1] for row in csv.reader(f) if len(row) > 1 and row[1])


def main(argv: list[str]) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--minutes", type=float, default=30.0)
    args.add_argument("--concurrent", type=int, default=20)
    args.add_argument("--json", type=Path, default=None)
    args.add_argument("--no-faults", action="store_true", help="smoke run: no cuts, no restart")
    opts = args.parse_args(argv)
    seconds = opts.minutes * 60
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"earwitness-soak-{os.getpid()}"
    work.mkdir(parents=True)
    # agents answer within 1-10 s, under the 15 s member timeout; RONA: agent1 waits 60 s
    pbx = Asterisk(default_root(), agents=12, member_timeout=15, retry=1, start_timeout=60)
    (pbx.log_dir / "cdr-csv").mkdir(parents=True, exist_ok=True)
    modules = pbx.inst / "etc" / "modules.conf"  # the harness keeps every cdr_* module off
    modules.write_text(modules.read_text().replace("noload => cdr_csv.so\n", ""))
    (pbx.inst / "etc" / "cdr.conf").write_text(
        "[general]\nenable=yes\nunanswered=yes\n[csv]\nusegmtime=yes\nloguniqueid=yes\n"
    )
    pbx.start()
    proxy = TcpProxy(pbx.ami_host, pbx.ami_port)
    port = _free_port()
    env = {
        **os.environ,
        "EARWITNESS_DATA_DIR": str(work / "data"),
        "EARWITNESS_DEMO": "never",
        "EARWITNESS_WORKER_MODE": "off",
        "EARWITNESS_AMI_HOST": "127.0.0.1",
        "EARWITNESS_AMI_PORT": str(proxy.port),
        "EARWITNESS_AMI_USER": pbx.ami_user,
        "EARWITNESS_AMI_SECRET": pbx.ami_secret,
        "EARWITNESS_AMI_PING_INTERVAL_S": "5",
        "EARWITNESS_AMI_RECORD_CALLS": "false",
        "EARWITNESS_AMI_QUEUE_LOG_PATH": str(pbx.log_dir / "queue_log"),
        "EARWITNESS_BOOTSTRAP_API_KEY": API_KEY,
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "earwitness"), "serve", "--port", str(port)],
        env=env,
        stdout=(work / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=30
    )
    report: dict[str, Any] = {"minutes": opts.minutes, "concurrent": opts.concurrent}
    rss: list[tuple[float, float]] = []
    traffic = Traffic(pbx, opts.concurrent)
    try:
        for _ in range(120):
            try:
                if api.get("/api/health").json()["ami"]["ok"]:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("earwitness did not connect to AMI within 60 s")
        started = time.monotonic()
        rss.append((0.0, _rss_mb(server.pid)))

        def live_calls() -> int:
            return len(pbx.cli("core show channels concise").splitlines()) // 4

        driver = threading.Thread(target=traffic.run, args=(seconds, live_calls), daemon=True)
        driver.start()
        faults = [] if opts.no_faults else [(1 / 3, "cut"), (1 / 2, "restart"), (2 / 3, "cut")]
        events: list[dict[str, Any]] = []
        next_sample = 60.0
        while driver.is_alive():
            elapsed = time.monotonic() - started
            if faults and elapsed >= faults[0][0] * seconds:
                _, kind = faults.pop(0)
                if kind == "cut":
                    proxy.cut()
                    time.sleep(20)
                    proxy.restore()
                else:
                    pbx.kill()
                    pbx.start()
                events.append({"at_s": round(elapsed), "fault": kind})
            if elapsed >= next_sample:
                rss.append((round(elapsed), _rss_mb(server.pid)))
                next_sample += 60
            driver.join(timeout=1)
        # let the last calls finish (talk ≤ 45 s, abandon ≤ 12 s, queue timeout 40 s)
        quiet_deadline = time.monotonic() + 150
        while time.monotonic() < quiet_deadline and live_calls() > 0:
            time.sleep(2)
        time.sleep(8)  # the last events reach earwitness
        rss.append((round(time.monotonic() - started), _rss_mb(server.pid)))
        ours: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = api.get("/api/calls", params={"limit": 500, "offset": offset}).json()
            ours += page["items"]
            if len(page["items"]) < 500:
                break
            offset += 500
        report |= compare(traffic, ours, pbx, events, rss)
    finally:
        traffic.stop()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        api.close()
        proxy.close()
        pbx.stop()
    line = (
        f"soak: {opts.minutes:g} min, calls {report['truth_calls']} (earwitness "
        f"{report['our_calls']}), lost {report['lost']}, duplicated {report['duplicated']}, "
        f"outcome mismatches {report['outcome_mismatches']}, CDR callers "
        f"{report['cdr_callers']}, RSS MB start/mid/end "
        f"{report['rss_start_mb']:.0f}/{report['rss_mid_mb']:.0f}/{report['rss_end_mb']:.0f}"
    )
    print(line)
    if opts.json:
        opts.json.write_text(json.dumps(report, indent=2))
    pbx.cleanup()
    return 0 if report["lost"] == report["duplicated"] == report["outcome_mismatches"] == 0 else 1


def compare(
    traffic: Traffic,
    ours: list[dict[str, Any]],
    pbx: Asterisk,
    events: list[dict[str, Any]],
    rss: list[tuple[float, float]],
) -> dict[str, Any]:
    truth = queue_log_truth(pbx.log_dir / "queue_log")
    cdr = cdr_callers(pbx.log_dir / "cdr-csv" / "Master.csv")
    by_caller: dict[str, list[dict[str, Any]]] = {}
    for call in ours:
        by_caller.setdefault(call["caller"], []).append(call)
    lost = sorted(c for c in truth if c not in by_caller)
    duplicated = sorted(c for c, calls in by_caller.items() if len(calls) > 1)
    cut = sorted(c for c, t in truth.items() if t["outcome"] is None)
    mismatches = [
        {"caller": c, "queue_log": t["outcome"], "earwitness": by_caller[c][0]["outcome"]}
        for c, t in truth.items()
        if c in by_caller and t["outcome"] is not None
        and by_caller[c][0]["outcome"] != t["outcome"]
    ]  # fmt: skip
    # cut by the restart: no end in the log; answered by us exactly when the log has CONNECT
    cut_mismatches = [
        {"caller": c, "connected": truth[c]["connected"], "earwitness": by_caller[c][0]["outcome"]}
        for c in cut
        if c in by_caller and (by_caller[c][0]["outcome"] == "answered") != truth[c]["connected"]
    ]
    mismatches += cut_mismatches
    extra = sorted(c for c in by_caller if c not in truth and c in traffic.placed)
    mid = rss[len(rss) // 2][1] if rss else float("nan")
    return {
        "placed": len(traffic.placed),
        "placed_by_kind": dict(Counter(traffic.placed.values())),
        "originate_errors": traffic.errors,
        "transfers_sent": traffic.transfers,
        "truth_calls": len(truth),
        "truth_outcomes": dict(Counter(str(t["outcome"]) for t in truth.values())),
        "our_calls": len(ours),
        "our_outcomes": dict(Counter(c["outcome"] for c in ours)),
        "lost": len(lost),
        "lost_callers": lost[:50],
        "duplicated": len(duplicated),
        "duplicated_callers": duplicated[:50],
        "cut_by_restart": len(cut),
        "cut_by_restart_ours": dict(
            Counter(by_caller[c][0]["outcome"] for c in cut if c in by_caller)
        ),
        "outcome_mismatches": len(mismatches),
        "mismatch_examples": mismatches[:20],
        "not_in_queue_log": extra[:50],
        "cdr_callers": len(cdr),
        "cdr_missing_in_ours": len([c for c in cdr if c in traffic.placed and c not in by_caller]),
        "faults": events,
        "rss_mb": rss,
        "rss_start_mb": rss[0][1] if rss else float("nan"),
        "rss_mid_mb": mid,
        "rss_end_mb": rss[-1][1] if rss else float("nan"),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
