"""``earwitness search`` end to end: a real process on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from earwitness.config import load_settings
from earwitness.runtime import Runtime
from tests.test_cli_errors import run_cli
from tests.test_search import build_corpus


def test_search_commands(tmp_path: Path) -> None:
    env = {
        "EARWITNESS_DATA_DIR": str(tmp_path / "data"),
        "EARWITNESS_DEMO": "never",
        "COLUMNS": "200",
    }
    runtime = Runtime.open(load_settings(data_dir=tmp_path / "data", demo="never"))
    try:
        corpus = build_corpus(runtime)
    finally:
        runtime.close()
    res = run_cli(["search", "reindex"], env, tmp_path)
    assert res.returncode == 0 and "indexed 7 segments of 4 recordings" in res.stdout, res.stderr
    res = run_cli(["search", "退款", "--role", "agent"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "1 match(es)" in res.stdout and "EW-2026-0001" in res.stdout
    assert f"/api/recordings/{corpus.recordings['c1']}/audio#t=0" in res.stdout
    res = run_cli(["search", "refund", "--sort", "newest", "--json"], env, tmp_path)
    body = json.loads(res.stdout)
    assert [h["segment_id"] for h in body["hits"]] == [
        corpus.segments["c2_cust"], corpus.segments["c2_agent"]]  # fmt: skip
    res = run_cli(["search", '"refund'], env, tmp_path)
    assert res.returncode == 2 and "unbalanced quote" in res.stderr
    res = run_cli(["search", "caller", "13800138000", "--json"], env, tmp_path)
    assert [c["id"] for c in json.loads(res.stdout)["calls"]] == [
        corpus.calls["c3"], corpus.calls["c1"]]  # fmt: skip
