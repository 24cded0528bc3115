"""Issue 21 end to end on the real Asterisk: survey with DTMF, busy → unreachable,
agent call-back recorded under the case, a number the PBX has no route for.

The survey dialplan is the shipped text (earwitness.cases.followup_dialplan); only the
dial context is the test's own: it stands in for the trunk and sends each number to a
customer behaviour (answer and press 4, be busy, press 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from earwitness.cases.followup_dialplan import SURVEY_CONTEXT
from earwitness.config import load_settings
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client
from tests.pbx.asterisk import Asterisk
from tests.polling import wait_until

pytest_plugins = ["tests.pbx.fixtures"]
pytestmark = pytest.mark.slow

TEST_DIALPLAN = (
    SURVEY_CONTEXT
    + r"""
[ew-test-out]
; the test's trunk: 11-digit numbers only (anything else has no route, as on a real PBX)
exten => _1XXXXXXXXXX,1,Dial(Local/${EXTEN}@ew-test-customers/n,20)
 same => n,Hangup()

[ew-test-customers]
; 1390000040x answer, wait for the question, press 4
exten => _1390000040X,1,Answer()
 same => n,Wait(2)
 same => n,SendDTMF(4)
 same => n,Wait(10)
 same => n,Hangup()
; 1390000050x are always busy
exten => _1390000050X,1,Busy(3)
; 1390000070x press 7 (not a valid answer)
exten => _1390000070X,1,Answer()
 same => n,Wait(2)
 same => n,SendDTMF(7)
 same => n,Wait(10)
 same => n,Hangup()
; 1390000080x the customer answers the agent's call-back and talks
exten => _1390000080X,1,Answer()
 same => n,Wait(4)
 same => n,Hangup()
"""
)
POLICY = """
[follow_up]
auto = "survey"
attempts = 3
retry_spacing_s = 1
allowed_hours = "00:00-24:00"
ring_timeout_s = 15
survey_max_s = 30
"""


@pytest.fixture
def api(asterisk: Asterisk, tmp_path: Path) -> Iterator[TestClient]:
    asterisk.make_prompt("ew-survey", "How satisfied are you? Press one to five.")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = load_settings(
        data_dir=tmp_path / "data", demo="never", job_poll_s=0.1, worker_threads=2,
        ami_host=asterisk.ami_host, ami_port=asterisk.ami_port, ami_user=asterisk.ami_user,
        ami_secret=asterisk.ami_secret, ami_recording_dir=asterisk.recordings_dir,
        case_policy_file=policy, followup_dial_context="ew-test-out",
        followup_agent_channel="Local/{agent}@agents/n",
        followup_prompt=asterisk.sound_path_in_root("ew-survey"),
    )  # fmt: skip
    runtime = Runtime.open(settings)
    runtime.start_worker()
    runtime.start_services()
    try:
        with api_client(runtime) as client:
            wait_until(lambda: client.get("/api/health").json()["ami"]["ok"], 30, "AMI login")
            yield client
    finally:
        runtime.close()


def resolved_case(api: TestClient, phone: str | None) -> int:
    res = api.post("/api/cases", json={"complainant_phone": phone, "summary": "late truck"})
    assert res.status_code == 201, res.text
    case_id = int(res.json()["id"])
    for to in ("assigned", "resolved"):
        res = api.post(f"/api/cases/{case_id}/status", json={"to": to})
        assert res.status_code == 200, res.text
    return case_id


def settled(api: TestClient, case_id: int, states: tuple[str, ...]) -> dict[str, Any] | None:
    items = api.get(f"/api/cases/{case_id}/follow-ups").json()
    return items[0] if items and items[0]["state"] in states else None


DONE = ("answered", "unreachable", "failed")
pbx = pytest.mark.asterisk(agents=2, extra_dialplan=TEST_DIALPLAN)


@pbx
def test_survey_stores_the_pressed_digit_with_the_call_linked(api: TestClient) -> None:
    case_id = resolved_case(api, "13900000401")
    fu = wait_until(lambda: settled(api, case_id, DONE), 60, "the survey's answer")
    assert fu["state"] == "answered" and fu["score"] == 4 and fu["tries"] == 1
    calls = wait_until(lambda: api.get(f"/api/cases/{case_id}/calls").json(), 20, "linked call")
    linked = api.get(f"/api/calls/by-linkedid/{fu['linkedids'][0]}").json()
    assert [c["id"] for c in calls] == [linked["id"]] and linked["outcome"] == "answered"
    # placed by earwitness: outbound, and no part of the answer-time SLA
    assert linked["kind"] == "outbound"
    sla = api.get("/api/sla", params={"group_by": "total"}).json()
    assert sum(g["offered"] for g in sla["groups"]) == 0, sla
    events = api.get(f"/api/cases/{case_id}/timeline").json()["events"]
    kinds = [e.get("kind") for e in events if e["type"] == "action"]
    assert "follow_up_scheduled" in kinds and "follow_up" in kinds
    assert any(e["type"] == "call" for e in events)
    follow = next(e for e in events if e.get("clock") == "follow_up")
    assert follow["state"] == "met"
    review = api.get("/api/review/weekly").json()
    assert review["follow_up"]["count"] == 1 and review["follow_up"]["rate"] == 1.0
    assert review["follow_up"]["state"] == "met"


@pbx
def test_busy_customer_is_retried_then_unreachable(api: TestClient) -> None:
    case_id = resolved_case(api, "13900000501")
    fu = wait_until(lambda: settled(api, case_id, DONE), 90, "three busy tries")
    assert fu["state"] == "unreachable" and fu["tries"] == 3 and fu["last_result"] == "busy"
    assert len(fu["linkedids"]) == 3
    events = api.get(f"/api/cases/{case_id}/timeline").json()["events"]
    tries = [e for e in events if e.get("kind") == "follow_up_attempt"]
    assert [t["label"] for t in tries] == [f"follow_up_attempt: survey try {n}: busy"
                                           for n in (1, 2, 3)]  # fmt: skip
    assert any(e.get("kind") == "follow_up_unreachable" for e in events)
    # no answer is no data, not a failed satisfaction
    review = api.get("/api/review/weekly").json()["follow_up"]
    assert review["count"] == 0 and review["state"] == "no data" and review["met"] is None


@pbx
def test_invalid_digit_and_unroutable_number_are_clear_states(api: TestClient) -> None:
    bad_digit = resolved_case(api, "13900000701")
    unroutable = resolved_case(api, "999")
    fu = wait_until(lambda: settled(api, bad_digit, ("retry_wait", *DONE)), 60, "the 7")
    assert fu["last_result"] == "invalid_digit" and fu["score"] is None
    actions = api.get(f"/api/cases/{bad_digit}").json()["actions"]
    attempt = next(a for a in actions if a["kind"] == "follow_up_attempt")
    assert attempt["data"]["digit"] == "7"
    fu = wait_until(lambda: settled(api, unroutable, DONE), 40, "the refused number")
    assert fu["state"] == "failed" and fu["last_result"] == "rejected" and fu["tries"] == 1


@pbx
def test_agent_call_back_is_tracked_recorded_and_linked(api: TestClient) -> None:
    case_id = resolved_case(api, "13900000801")
    api.get(f"/api/cases/{case_id}/follow-ups")  # the survey scheduled on resolution
    res = api.post(f"/api/cases/{case_id}/call-back", json={"agent": "agent1"})
    assert res.status_code == 202, res.text
    fid = res.json()["id"]

    def placed() -> dict[str, Any] | None:
        items = api.get(f"/api/cases/{case_id}/follow-ups").json()
        mine = next(i for i in items if i["id"] == fid)
        return mine if mine["state"] in ("placed", *DONE) else None

    fu = wait_until(placed, 60, "the call-back to connect and end")
    assert fu["state"] == "placed" and fu["last_result"] == "connected"
    call = api.get(f"/api/calls/by-linkedid/{fu['linkedids'][0]}").json()
    assert call["outcome"] == "answered" and call["kind"] == "outbound"
    call_id = call["id"]
    linked = wait_until(lambda: api.get(f"/api/cases/{case_id}/calls").json(), 20, "link")
    assert call_id in [c["id"] for c in linked]
    wait_until(lambda: api.get(f"/api/calls/{call_id}").json()["recording_id"], 20, "recording")
    res = api.post(f"/api/cases/{case_id}/follow-ups/{fid}/outcome",
                   json={"reached": True, "score": 2, "note": "still unhappy"})  # fmt: skip
    assert res.status_code == 200 and res.json()["score"] == 2
    res = api.post(f"/api/cases/{case_id}/follow-ups/{fid}/outcome", json={"score": 9})
    assert res.status_code == 409  # answered already; nothing overwritten
