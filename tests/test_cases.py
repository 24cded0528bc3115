"""Cases on SQLite and PostgreSQL: lifecycle, first-ask hand-over, deadlines, promises,
case from a call with facts, timeline, weekly review, and the API incl. the bundle."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from earwitness.cases import lifecycle as lc
from earwitness.cases.deadlines import list_deadlines
from earwitness.cases.facts import Line, extract, suggested_urgency
from earwitness.cases.from_call import open_from_call, review_fact
from earwitness.cases.policy import Policy, deadline_states, load_policy
from earwitness.cases.review import to_csv, to_html, weekly_review
from earwitness.cases.timeline import build_timeline
from earwitness.errors import BadInput, ConfigError, Conflict
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.models import (
    Agent,
    Call,
    Case,
    CaseAction,
    Evidence,
    Recording,
    Segment,
    Transcript,
    case_calls,
)
from earwitness.runtime import Runtime
from tests import track_synth as synth
from tests.accounts_helpers import api_client

POLICY = Policy()
T0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shenzhen


def _call(
    runtime: Runtime, caller: str, at: datetime, agent: str | None, lines: list[tuple[str, str]]
) -> int:
    with runtime.db.session() as s:
        call = Call(
            linkedid=f"{caller}-{at.timestamp()}",
            caller=caller,
            entered_at=at,
            answered_at=at + timedelta(seconds=12),
            ended_at=at + timedelta(minutes=4),
            wait_s=12.0,
            rings=3,
            outcome="answered",
        )
        if agent:
            interface = f"Local/{agent}@agents"
            call.agent = s.scalar(select(Agent).where(Agent.interface == interface)) or Agent(
                interface=interface, name=agent
            )
        s.add(call)
        s.flush()
        if lines:
            rec = Recording(call_id=call.id, state="ingested")
            s.add(rec)
            s.flush()
            tr = Transcript(recording_id=rec.id, model="tiny")
            tr.segments = [
                Segment(start_s=i * 5.0, end_s=i * 5.0 + 4, text=text, role=role)
                for i, (role, text) in enumerate(lines)
            ]
            s.add(tr)
        return call.id


def test_lifecycle_workflow_and_reopen(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        case = lc.create_case(
            s, POLICY, actor="agent1", complainant_phone="13800138000", urgency="A"
        )
        assert case.number.startswith("EW-") and case.owner == case.first_owner == "agent1"
        with pytest.raises(Conflict, match="next can be: assigned"):
            lc.change_status(s, case, "resolved", "agent1")
        for step in ("assigned", "investigating", "resolved", "follow_up", "closed"):
            lc.change_status(s, case, step, "agent1")
        assert case.closed_at is not None and case.resolved_at is not None
        with pytest.raises(BadInput, match="reason"):
            lc.change_status(s, case, "reopened", "sup", "")
        lc.change_status(s, case, "reopened", "sup", "customer called again")
        assert case.status == "reopened" and case.reopened_count == 1 and case.closed_at is None
        lc.change_status(s, case, "investigating", "sup")
        with pytest.raises(BadInput, match="urgency"):
            lc.update_case(s, POLICY, case, "sup", {"urgency": "D"})
        lc.update_case(s, POLICY, case, "sup", {"tier": 2, "root_cause": "staff_ability"})
        kinds = [a.kind for a in case.actions]
        assert kinds[0] == "registered" and kinds[-1] == "escalation"
        assert lc.mask_phone("13800138000") == "138****8000"


def test_first_ask_owner_moves_only_by_recorded_handover(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        case = lc.create_case(s, POLICY, actor="agent1")
        ev = intake(s, runtime.blobs, IntakeRequest(case.id, "a.txt", "agent1"), io.BytesIO(b"x"))
        with pytest.raises(BadInput):
            lc.update_case(s, POLICY, case, "agent2", {"owner": "agent2"})
        with pytest.raises(BadInput, match="reason"):
            lc.handover(s, case, "team-rescue", "agent1", " ")
        lc.handover(s, case, "team-rescue", "agent1", "class A: dedicated team")
        assert case.owner == "team-rescue" and case.first_owner == "agent1"
        handover = case.actions[-1]
        assert handover.kind == "handover" and handover.data == {
            "from": "agent1",
            "to": "team-rescue",
        }
        s.refresh(ev)
        assert [e.action for e in ev.custody] == ["intake", "handover"]


def test_deadlines_from_policy_and_breaches(runtime: Runtime, tmp_path: Path) -> None:
    with runtime.db.session() as s:
        case = lc.create_case(s, POLICY, actor="a", urgency="A", opened_at=T0)
        m = lc.milestones(case)
        states = {
            d["clock"]: d for d in deadline_states(POLICY, "A", m, T0 + timedelta(minutes=90))
        }
        assert states["first_response"]["state"] == "breached"
        assert states["first_response"]["text"] == "overdue by 30 min"
        assert states["initial_solution"]["text"] == "2 h 30 min left"
        assert states["close"]["limit_h"] == 72 and "follow_up" not in states
        s.add(CaseAction(case=case, kind="response", at=T0 + timedelta(minutes=40)))
        s.flush()
        s.expire(case, ["actions"])
        states = {
            d["clock"]: d
            for d in deadline_states(POLICY, "A", lc.milestones(case), T0 + timedelta(hours=2))
        }
        assert states["first_response"]["state"] == "met"
        rows = list_deadlines(s, POLICY, T0 + timedelta(hours=30))
        assert {r["clock"] for r in rows if r["case_id"] == case.id} == {
            "initial_solution",
            "contact_customer",
        }
    path = tmp_path / "policy.toml"
    path.write_text("satisfaction_target = 0.9\n[deadlines.A]\nfirst_response_h = 0.5\n")
    policy = load_policy(path)
    assert policy.hours["A"]["first_response"] == 0.5 and policy.hours["B"]["first_response"] == 1
    path.write_text("[deadlines.A]\nfirst_reply_h = 1\n")
    with pytest.raises(ConfigError, match="unknown deadline A.first_reply_h"):
        load_policy(path)


def test_promises_are_flagged_when_broken(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        case = lc.create_case(s, POLICY, actor="a")
        kept = lc.add_promise(s, case, "a", "engineer calls within 10 minutes", within_minutes=10)
        broken = lc.add_promise(s, case, "a", "refund today", within_minutes=60)
        lc.keep_promise(s, case, kept.id, "eng")
        with pytest.raises(Conflict):
            lc.keep_promise(s, case, kept.id, "eng")
        later = datetime.now(UTC) + timedelta(hours=2)
        states = {p["id"]: p for p in lc.promise_states(case, later)}
        assert states[kept.id]["state"] == "kept" and states[broken.id]["state"] == "broken"
        rows = list_deadlines(s, POLICY, later)
        assert any(r["clock"] == "promise" and r["text"] == "broken" for r in rows)


def test_case_from_call_links_earlier_calls_and_suggests_facts(runtime: Runtime) -> None:
    number = "13912345678"
    first = _call(
        runtime,
        number,
        T0,
        "li",
        [
            ("customer", "我在机场高速上抛锚了，车牌粤B·D12345，孩子在车上"),
            ("agent", "好的，工单号是 RS20261116001，救援车下午4点半到"),
        ],
    )
    _call(runtime, "13000000000", T0 + timedelta(minutes=5), "wang", [])
    second = _call(
        runtime,
        number,
        T0 + timedelta(hours=2),
        "wang",
        [
            ("customer", "救援车迟到50分钟，我要求赔偿500元并道歉，不然找315曝光"),
        ],
    )
    later = _call(runtime, number, T0 + timedelta(hours=5), "zhao", [])
    with runtime.db.session() as s:
        case = open_from_call(s, POLICY, second, actor="wang", category="late_arrival")
        case_id = case.id
        linked = sorted(
            s.scalars(select(case_calls.c.call_id).where(case_calls.c.case_id == case.id))
        )
        assert linked == [first, second] and later not in linked
        assert case.owner == case.first_owner == "li"  # agent of the first call
        assert case.urgency == "A"  # highway + child heard in the call
        facts = {(f["kind"], str(f["normalized"])): f for f in case.facts["items"]}
        plate = facts[("plate", "粤BD12345")]
        assert plate["source"]["call_id"] == first and plate["source"]["line"].startswith(
            "我在机场高速"
        )
        assert ("work_order", "RS20261116001") in facts and ("time", "16:30") in facts
        assert ("delay", "{'minutes': 50.0}") in facts
        assert ("money", "{'amount': 500.0, 'currency': 'CNY'}") in facts
        assert {("demand", "compensation"), ("demand", "apology"), ("urgency_cue", "media")} <= set(
            facts
        )
        assert ("place", "机场高速") in facts
        with pytest.raises(Conflict, match="already belongs"):
            open_from_call(s, POLICY, second, actor="wang")
    with runtime.db.session() as s:
        fact = review_fact(
            s, case_id, plate["id"], actor="wang", status="edited", value="粤B·D12346"
        )
        assert fact["original"] == "粤B·D12345" and fact["status"] == "edited"
        timeline = build_timeline(s, POLICY, case_id, now=T0 + timedelta(hours=6))
        types = [e["type"] for e in timeline["events"]]
        assert types.count("call") == 2 and "transcript_line" in types and "deadline" in types
        ats = [datetime.fromisoformat(e["at"]) for e in timeline["events"]]
        assert ats == sorted(ats)


def test_fact_extraction_english_and_plates() -> None:
    facts = extract(
        [
            Line(
                "The tow truck was an hour late on the Airport Expressway at 4:30 pm, "
                "my baby is in the car. Work order no. WO-88231. I want a refund of $50."
            )
        ]
    )
    got = {(f.kind, str(f.normalized)) for f in facts}
    assert {
        ("delay", "{'minutes': 60.0}"),
        ("time", "16:30"),
        ("work_order", "WO-88231"),
        ("demand", "refund"),
        ("place", "Airport Expressway"),
        ("urgency_cue", "child"),
    } <= got
    plates = {
        f.normalized
        for f in extract([Line("京A12345 沪A 12345D 粤BF1234X? no: 粤BD12345, 苏E·5B7C挂")])
        if f.kind == "plate"
    }
    assert {"京A12345", "沪A12345D", "粤BD12345", "苏E5B7C挂"} <= plates
    assert "粤BF1234X" not in plates  # 8 chars but not a new-energy pattern
    assert suggested_urgency(extract([Line("the engine is smoking, danger")]))["urgency"] == "A"


def test_weekly_review_html_and_csv(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        for i, (cat, cause, urg) in enumerate(
            [
                ("late_arrival", "staff_ability", "A"),
                ("late_arrival", "product_system", "B"),
                ("attitude", "attitude", "C"),
            ]
        ):
            case = lc.create_case(
                s,
                POLICY,
                actor=f"agent{i % 2}",
                category=cat,
                root_cause=cause,
                urgency=urg,
                opened_at=T0 + timedelta(hours=i),
            )
            case.resolved_at = T0 + timedelta(hours=i + 1)
            s.add(
                CaseAction(
                    case=case,
                    kind="follow_up",
                    at=T0 + timedelta(days=1),
                    data={"satisfied": i != 2},
                )
            )
        data = weekly_review(s, POLICY, (T0 + timedelta(days=3)).date(), now=T0 + timedelta(days=7))
    assert data["week"] == "2026-11-16" and data["cases_opened"] == 3
    assert data["counts"]["category"] == {"late_arrival": 2, "attitude": 1}
    assert data["follow_up"] == {
        "count": 3,
        "satisfied": 2,
        "rate": 0.667,
        "target": 0.85,
        "met": False,
        "state": "NOT met",
    }
    assert any(b["clock"] == "first response" for b in data["breaches"])
    page = to_html(data)
    assert "<svg" in page and "late_arrival" in page and "NOT met" in page and "<script" not in page
    assert "category,late_arrival,2" in to_csv(data)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with api_client(runtime) as c:
        yield c


def test_case_api_flow_with_evidence_track_and_bundle(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    call_id = _call(runtime, "13800138000", T0, "li", [("customer", "迟到50分钟，车牌京A12345")])
    resp = client.post(f"/api/calls/{call_id}/case", json={"category": "late_arrival"})
    assert resp.status_code == 201, resp.text
    case = resp.json()
    cid = case["id"]
    assert case["owner"] == "li" and case["call_ids"] == [call_id]
    listed = client.get("/api/cases").json()
    assert listed[0]["complainant_phone"] == "138****8000"
    assert client.post(f"/api/cases/{cid}/status", json={"to": "closed"}).status_code == 409
    resp = client.post(f"/api/cases/{cid}/handover", json={"to": "team", "reason": "class A"})
    assert resp.json()["owner"] == "team"
    resp = client.post(
        f"/api/cases/{cid}/promises", json={"text": "call back", "within_minutes": 10}
    )
    assert resp.status_code == 201 and resp.json()["state"] == "open"
    upload = client.post(
        f"/api/cases/{cid}/evidence",
        files={"file": ("../../etc/passwd", b"driver statement\n", "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    ev = upload.json()
    assert ev["original_name"] == "../../etc/passwd" and ev["media_type"] == "text/plain"
    content = client.get(f"/api/evidence/{ev['id']}/content")
    assert content.content == b"driver statement\n"
    assert 'filename="passwd"' in content.headers["content-disposition"]
    truth = synth.rescue_truck()
    lat, lon = truth.marks["customer"]  # type: ignore[misc]
    track = client.post(
        f"/api/cases/{cid}/tracks",
        files={"file": ("truck.gpx", synth.to_gpx(truth))},
        data={"params": f'{{"destination": "{lat},{lon},customer"}}'},
    )
    assert track.status_code == 201, track.text
    timeline = client.get(f"/api/cases/{cid}/timeline").json()
    assert {"call", "stop", "arrival", "promise", "deadline", "action"} <= {
        e["type"] for e in timeline["events"]
    }
    assert client.post(f"/api/evidence/{ev['id']}/verify").json()["ok"] is True
    resp = client.get(f"/api/cases/{cid}/bundle")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path)
    assert {"manifest.json", "SHA256SUMS", "timeline.json", "custody.json"} <= names
    assert any(n.startswith("transcripts/") for n in names) and any(
        n.startswith("tracks/") for n in names
    )
    done = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout
    custody = client.get(f"/api/evidence/{ev['id']}/custody").json()
    assert [e["action"] for e in custody] == ["intake", "view", "export"]
    review = client.get("/api/review/weekly", params={"week": "2026-11-16", "format": "html"})
    assert review.status_code == 200 and "<svg" in review.text
    with runtime.db.session() as s:
        assert s.get(Case, cid) is not None and s.get(Evidence, ev["id"]) is not None
