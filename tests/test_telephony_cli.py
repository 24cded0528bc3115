"""The floor's CLI: import-queue-log, sla and watch, run as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent / "data" / "queue_log" / "sample.queue_log"


def cli(args: list[str], data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    env.update(EARWITNESS_DATA_DIR=str(data), EARWITNESS_DEMO="never", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "earwitness.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_import_then_sla_then_watch(tmp_path: Path) -> None:
    res = cli(["import-queue-log", str(SAMPLE)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "40 calls imported, 0 updated" in res.stdout
    again = cli(["import-queue-log", str(SAMPLE)], tmp_path)
    assert "0 calls imported, 40 updated" in again.stdout  # idempotent: no twins
    sla = cli(["sla", "--days", "100000", "--group-by", "queue"], tmp_path)
    assert sla.returncode == 0, sla.stderr
    row = next(line for line in sla.stdout.splitlines() if "complaints" in line)
    assert "64.0" in row  # 16 of 25 within 3 rings, see make_sample.py
    watch = cli(["watch", "--count", "1", "--interval", "0.1"], tmp_path)
    assert watch.returncode == 0 and "waiting" in watch.stdout


def test_missing_or_hostile_queue_log_is_one_line(tmp_path: Path) -> None:
    res = cli(["import-queue-log", str(tmp_path / "nope.log")], tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(b"\x00\xff\xfe|||\nnot|a|queue|log\n1795664614|x|q|NONE|ENTERQUEUE||1|1\n")
    res = cli(["import-queue-log", str(garbage)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "lines skipped" in res.stdout and "line 1" in res.stdout
    bad = cli(["sla", "--group-by", "galaxy"], tmp_path)
    assert bad.returncode == 2 and "group-by" in bad.stderr
