"""QA storage, the ``qa.audit`` job, the API and the CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from earwitness.config import load_settings
from earwitness.models import Agent, Call, Job, QaResult, Recording, Segment, Transcript
from earwitness.qa.audit import Line
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client
from tests.qa_calls import EN_BROKEN, EN_MODEL, ZH_MODEL
from tests.test_cli_errors import run_cli

DAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday


def add_call(runtime: Runtime, agent: str, at: datetime, lines: list[Line], language: str) -> int:
    """A call answered by ``agent`` with a transcript of ``lines`` (no audio); the recording id."""
    with runtime.db.session() as s:
        row = s.scalar(select(Agent).where(Agent.interface == f"Local/{agent}@qa"))
        row = row or Agent(interface=f"Local/{agent}@qa", name=agent)
        call = Call(linkedid=f"{agent}-{at.timestamp()}", source="demo", entered_at=at,
                    answered_at=at + timedelta(seconds=5), agent=row,
                    outcome="answered")  # fmt: skip
        s.add(call)
        s.flush()
        rec = Recording(call_id=call.id, state="missing", duration_s=max(x.end_s for x in lines))
        s.add(rec)
        s.flush()
        transcript = Transcript(recording_id=rec.id, model="test", language=language)
        transcript.segments = [
            Segment(channel=0 if x.role == "customer" else 1, role=x.role, start_s=x.start_s,
                    end_s=x.end_s, text=x.text)
            for x in lines
        ]  # fmt: skip
        s.add(transcript)
        return rec.id


def wait_jobs(runtime: Runtime, ids: list[int], timeout: float = 60) -> list[Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime.db.session() as s:
            jobs = [s.get(Job, i) for i in ids]
            if all(j is not None and j.state in ("succeeded", "failed") for j in jobs):
                return [j for j in jobs if j is not None]
        time.sleep(0.05)
    raise AssertionError("jobs did not finish")


@pytest.fixture
def audited(runtime: Runtime) -> Iterator[tuple[Runtime, dict[str, int]]]:
    """Lucy: a model call and an interrupting one; Chen: a Mandarin model call; via the job."""
    recs = {
        "lucy_good": add_call(runtime, "Lucy", DAY, EN_MODEL, "en"),
        "lucy_cut": add_call(runtime, "Lucy", DAY + timedelta(days=1), EN_BROKEN[0][1], "en"),
        "chen": add_call(runtime, "Chen", DAY + timedelta(days=2), ZH_MODEL, "zh"),
    }
    runtime.start_worker()
    jobs = [runtime.submit("qa.audit", {"recording_id": r}, idempotency_key=f"qa.audit:{r}")
            for r in recs.values()]  # fmt: skip
    assert [j.state for j in wait_jobs(runtime, jobs)] == ["succeeded"] * 3
    yield runtime, recs


def test_audit_job_stores_one_result_per_recording(audited: tuple[Runtime, dict[str, int]]) -> None:
    runtime, recs = audited
    again = runtime.submit("qa.audit", {"recording_id": recs["lucy_cut"]})
    wait_jobs(runtime, [again])
    with runtime.db.session() as s:
        rows = s.scalars(select(QaResult).order_by(QaResult.recording_id)).all()
        assert len(rows) == 3
        by_rec = {r.recording_id: r for r in rows}
        assert by_rec[recs["lucy_good"]].score == 100.0
        cut = by_rec[recs["lucy_cut"]]
        assert cut.agent == "Lucy" and cut.failed == 1 and cut.score is not None
        assert cut.params["ruleset"]["name"].endswith("(English)")
        assert by_rec[recs["chen"]].params["ruleset"]["language"] == "zh"


def test_api_scorecard_override_and_agents(audited: tuple[Runtime, dict[str, int]]) -> None:
    runtime, recs = audited
    with api_client(runtime, "qa", username="qa-lin") as api:
        card = api.get(f"/api/qa/calls/{recs['lucy_cut']}").json()
        assert card["failed"] == ["no_interruptions"] and card["agent"] == "Lucy"
        cut = next(f for f in card["findings"] if f["rule_id"] == "no_interruptions")
        assert cut["cites"][0]["start_s"] == 9.0 and cut["cites"][0]["segment_id"] is not None

        page = api.get(f"/api/qa/calls/{recs['lucy_cut']}", params={"format": "html"})
        assert (
            page.status_code == 200 and "<svg" in page.text and "interrupts at 9.0 s" in page.text
        )

        res = api.put(f"/api/qa/calls/{recs['lucy_cut']}/overrides/no_interruptions",
                      json={"status": "passed",
                            "reason": "customer paused; not a cut-off"})  # fmt: skip
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["score"] == 100.0 and body["machine_score"] < 100.0
        over = next(f for f in body["findings"] if f["rule_id"] == "no_interruptions")["override"]
        assert over["by"] == "qa-lin" and over["machine_status"] == "failed"
        assert over["reason"].startswith("customer paused") and over["at"]

        bad = api.put(f"/api/qa/calls/{recs['lucy_cut']}/overrides/nonsense",
                      json={"status": "passed", "reason": "x"})  # fmt: skip
        assert bad.status_code == 404 and "no_interruptions" in bad.json()["detail"]
        assert api.get("/api/qa/calls/999999").status_code == 404

        period = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=7)).isoformat()}
        agents = {a["agent"]: a for a in api.get("/api/qa/agents", params=period).json()["agents"]}
        assert set(agents) == {"Lucy", "Chen"}
        lucy = agents["Lucy"]
        assert lucy["calls"] == 2 and lucy["mean_score"] == 100.0  # override applied
        assert [t["day"] for t in lucy["trend"]] == ["2026-11-23", "2026-11-24"]
        html = api.get("/api/qa/agents", params={**period, "format": "html"}).text
        assert "<polyline" in html and "Lucy" in html
        narrow = {"from": DAY.isoformat(), "to": (DAY + timedelta(hours=1)).isoformat()}
        only = api.get("/api/qa/agents", params=narrow).json()["agents"]
        assert [(a["agent"], a["calls"]) for a in only] == [("Lucy", 1)]


def test_cli_audits_a_transcript_file_and_reports_agents(tmp_path: Path) -> None:
    from earwitness.transcription.exports import to_json
    from earwitness.transcription.types import SegmentOut

    export = tmp_path / "call.json"
    segs = [SegmentOut(x.start_s, x.end_s, x.text, role=x.role, language="zh")
            for x in ZH_MODEL]  # fmt: skip
    export.write_text(to_json(segs), encoding="utf-8")
    env = {"EARWITNESS_DATA_DIR": str(tmp_path / "data"), "EARWITNESS_DEMO": "never"}
    res = run_cli(["qa", str(export), "--format", "json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    card = json.loads(res.stdout)
    assert card["score"] == 100.0 and card["ruleset"]["language"] == "zh"

    bad_rules = tmp_path / "rules.toml"
    bad_rules.write_text('[[rule]]\nid = "x"\nphrases = ["a"]\nwithin = 3\n', encoding="utf-8")
    res = run_cli(["qa", str(export), "--rules", str(bad_rules)], env, tmp_path)
    assert res.returncode == 2 and "rule 'x'.within (line 4): unknown key" in res.stderr

    runtime = Runtime.open(load_settings(data_dir=tmp_path / "data", demo="never"))
    try:
        rid = add_call(runtime, "Tom", DAY, EN_BROKEN[2][1], "en")
    finally:
        runtime.close()
    res = run_cli(["qa", str(rid)], env, tmp_path)
    assert res.returncode == 0 and "no_vague_promise" in res.stdout, res.stderr
    out = tmp_path / "agents.html"
    res = run_cli(["qa-agents", "--from", "2026-11-23", "--to", "2026-11-30", "-f", "html",
                   "-o", str(out)], env, tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Tom" in out.read_text(encoding="utf-8")
