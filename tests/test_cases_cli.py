"""The ``case``, ``verify`` and ``review`` commands end to end (real process, SQLite file)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from earwitness.config import load_settings
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.models import Evidence
from earwitness.runtime import Runtime
from tests.test_cli_errors import run_cli


def test_case_verify_and_review_commands(tmp_path: Path) -> None:
    env = {"EARWITNESS_DATA_DIR": str(tmp_path / "data"), "EARWITNESS_DEMO": "never"}
    res = run_cli(
        ["case", "create", "--phone", "13800138000", "--urgency", "A", "--as", "li", "--json"],
        env,
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    case_id = json.loads(res.stdout)["id"]
    runtime = Runtime.open(load_settings(data_dir=tmp_path / "data", demo="never"))
    try:
        with runtime.db.session() as s:
            ev = intake(
                s, runtime.blobs, IntakeRequest(case_id, "note.txt", "li"), io.BytesIO(b"hi\n")
            )
            ev_id, sha = ev.id, ev.sha256
    finally:
        runtime.close()
    res = run_cli(["case", "handover", str(case_id), "team", "--reason", "class A"], env, tmp_path)
    assert res.returncode == 0 and "now owned by team" in res.stdout, res.stderr
    res = run_cli(["case", "list"], env, tmp_path)
    assert "138****8000" in res.stdout and "13800138000" not in res.stdout
    res = run_cli(["case", "deadlines", "--all", "--json"], env, tmp_path)
    assert {r["clock"] for r in json.loads(res.stdout)} >= {"first_response", "close"}
    res = run_cli(["case", "status", str(case_id), "closed"], env, tmp_path)
    assert res.returncode == 2 and "next can be: assigned" in res.stderr
    out = tmp_path / "bundle.zip"
    res = run_cli(["case", "bundle", str(case_id), "--out", str(out)], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "manifest.json" in zipfile.ZipFile(out).namelist()
    res = run_cli(["case", "bundle", str(case_id), "--out", str(out)], env, tmp_path)
    assert res.returncode == 2 and "never overwrite" in res.stderr
    res = run_cli(["verify"], env, tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("OK: 1 evidence file(s)"), res.stdout
    blob = tmp_path / "data" / "blobs" / sha[:2] / sha[2:4] / sha
    os.chmod(blob, 0o644)
    blob.write_bytes(b"ho\n")
    res = run_cli(["verify", "--json"], env, tmp_path)
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert [p["line"] for p in report["problems"]] == [
        f"evidence {ev_id}: stored file changed (SHA-256 no longer matches)"
    ]
    html = tmp_path / "review.html"
    res = run_cli(["review", "--html", str(html), "--csv", str(tmp_path / "r.csv")], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "<svg" in html.read_text() and "section,key,value" in (tmp_path / "r.csv").read_text()
    assert Evidence  # the model stays importable for readers of this test
