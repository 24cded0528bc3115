"""Follow-up rules (pure) and the database/API side without a PBX: schedule on
resolution, bad input, SMS through a local HTTP gateway and the reply endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from earwitness.cases.followup_rules import (
    FollowUpPolicy,
    check_phone,
    next_allowed,
    next_try_at,
    parse_score,
    satisfaction,
    survey_result,
    within_allowed_hours,
)
from earwitness.cases.policy import load_policy
from earwitness.config import load_settings
from earwitness.errors import BadInput, ConfigError
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client

CN = FollowUpPolicy()  # 09:00-20:00 at UTC+8, 3 tries 2 h apart


def test_allowed_hours_are_local_to_the_centre() -> None:
    assert within_allowed_hours(CN, datetime(2026, 11, 23, 1, 0, tzinfo=UTC))  # 09:00 +8
    late = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)  # 20:30 +8
    assert not within_allowed_hours(CN, late)
    assert next_allowed(CN, late) == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    early = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 07:00 +8
    assert next_allowed(CN, early) == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def test_retry_schedule_spaces_tries_and_gives_up() -> None:
    t = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 +8
    assert next_try_at(CN, 1, t) == datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    evening = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 19:00 +8; +2 h is 21:00
    assert next_try_at(CN, 2, evening) == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert next_try_at(CN, 3, t) is None


def test_answers_and_numbers() -> None:
    assert parse_score("4") == 4 and parse_score(" 5 ") == 5
    for bad in ("0", "6", "7", "44", "four", "", None):
        with pytest.raises(BadInput):
            parse_score(bad)
    assert check_phone("+86 139-0000-0401") == "+8613900000401"
    for bad in (None, "", "call me", "12"):
        with pytest.raises(BadInput):
            check_phone(bad)


def test_survey_result_from_events() -> None:
    answered = [{"Event": "DialEnd", "Channel": "x", "DialStatus": "ANSWER"},
                {"Event": "UserEvent", "UserEvent": "FollowUpAnswer", "Digit": "4"}]  # fmt: skip
    assert survey_result(answered).outcome == "answered"
    assert survey_result(answered).digit == "4"
    assert (
        survey_result([{"Event": "DialEnd", "Channel": "x", "DialStatus": "BUSY"}]).outcome
        == "busy"
    )
    seven = [{"Event": "UserEvent", "UserEvent": "FollowUpAnswer", "Digit": "7"}]
    assert survey_result(seven).outcome == "invalid_digit"
    refused = [{"Event": "OriginateResponse", "Response": "Failure", "Reason": "0"}]
    assert survey_result(refused).outcome == "rejected"
    assert survey_result([]).outcome == "timeout"


def test_no_answers_is_no_data_not_a_failure() -> None:
    empty = satisfaction([], 0.85)
    assert empty["rate"] is None and empty["met"] is None and empty["state"] == "no data"
    assert satisfaction([True, True, False], 0.85)["state"] == "NOT met"


def test_policy_section(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[follow_up]\nattempts = 2\nretry_spacing_s = 5\nallowed_hours = "08:00-21:00"\n'
    )
    rules = load_policy(path).follow_up
    assert rules.attempts == 2 and rules.retry_spacing_s == 5.0
    assert (rules.allowed_from, rules.allowed_to) == (time(8), time(21))
    path.write_text('[follow_up]\nallowed_hours = "21:00-08:00"\n')
    with pytest.raises(ConfigError, match="end must be after"):
        load_policy(path)
    path.write_text("[follow_up]\ntries = 2\n")
    with pytest.raises(ConfigError, match="unknown follow_up keys"):
        load_policy(path)


class _Gateway(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Gateway.received.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
        out = json.dumps({"id": f"gw-{len(_Gateway.received)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    _Gateway.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/send"
    finally:
        server.shutdown()


@pytest.fixture
def api(tmp_path: Path, gateway: str) -> Iterator[TestClient]:
    policy = tmp_path / "policy.toml"
    policy.write_text('[follow_up]\nauto = "sms"\nallowed_hours = "00:00-24:00"\n')
    settings = load_settings(data_dir=tmp_path / "data", demo="never", job_poll_s=0.05,
                             case_policy_file=policy, sms_gateway_url=gateway,
                             sms_gateway_token="gw-token", sms_reply_secret="s3cret")  # fmt: skip
    runtime = Runtime.open(settings)
    runtime.start_worker()
    try:
        with api_client(runtime) as client:
            yield client
    finally:
        runtime.close()


def _resolved(api: TestClient, phone: str | None) -> int:
    body = {"complainant_phone": phone, "summary": "follow-up test"}  # a case needs one (#18)
    case_id = int(api.post("/api/cases", json=body).json()["id"])
    for to in ("assigned", "resolved"):
        assert api.post(f"/api/cases/{case_id}/status", json={"to": to}).status_code == 200
    return case_id


def _wait(api: TestClient, case_id: int, state: str) -> dict[str, Any]:
    import time as _t

    deadline = _t.monotonic() + 15
    while _t.monotonic() < deadline:
        items = api.get(f"/api/cases/{case_id}/follow-ups").json()
        if items and items[0]["state"] == state:
            return dict(items[0])
        _t.sleep(0.1)
    raise AssertionError(f"follow-up of case {case_id} never reached {state}: {items}")


def test_sms_follow_up_and_reply(api: TestClient) -> None:
    case_id = _resolved(api, "13900000901")
    fu = _wait(api, case_id, "placed")
    assert fu["channel"] == "sms" and fu["due_at"] is not None
    sent = _Gateway.received[-1]
    assert sent["to"] == "13900000901" and sent["auth"] == "Bearer gw-token"
    assert "Reply with one digit" in sent["text"]
    hdr = {"X-Earwitness-Gateway-Secret": "s3cret"}
    res = api.post("/api/follow-ups/sms-reply", json={"from": "13900000901", "text": "9"},
                   headers=hdr)  # fmt: skip
    assert res.status_code == 422 and "kept on case" in res.json()["detail"]
    actions = api.get(f"/api/cases/{case_id}").json()["actions"]
    assert any(a["data"].get("text") == "9" for a in actions)  # the odd reply is not lost
    wrong = api.post("/api/follow-ups/sms-reply", json={"from": "13900000901", "text": "5"},
                     headers={"X-Earwitness-Gateway-Secret": "nope"})  # fmt: skip
    assert wrong.status_code == 403
    res = api.post("/api/follow-ups/sms-reply", json={"from": "13900000901", "text": "5"},
                   headers=hdr)  # fmt: skip
    assert res.status_code == 200 and res.json()["score"] == 5
    assert _wait(api, case_id, "answered")["score"] == 5
    review = api.get("/api/review/weekly").json()
    assert review["follow_up"]["count"] == 1 and review["follow_up"]["state"] == "met"
    unknown = api.post("/api/follow-ups/sms-reply", json={"from": "13900000999", "text": "5"},
                       headers=hdr)  # fmt: skip
    assert unknown.status_code == 404


def test_bad_input_cases(api: TestClient) -> None:
    no_phone = _resolved(api, None)
    fu = api.get(f"/api/cases/{no_phone}/follow-ups").json()[0]
    assert fu["state"] == "failed" and fu["last_result"] == "no_phone"  # kept, not dropped
    res = api.post(f"/api/cases/{no_phone}/call-back", json={"agent": "agent1"})
    assert res.status_code == 422 and "no complainant phone" in res.json()["detail"]
    open_case = int(api.post("/api/cases", json={"complainant_phone": "139"}).json()["id"])
    res = api.post(f"/api/cases/{open_case}/follow-ups", json={"channel": "survey"})
    assert res.status_code == 409
    case_id = _resolved(api, "13900000902")
    fid = _wait(api, case_id, "placed")["id"]
    res = api.post(f"/api/cases/{case_id}/follow-ups/{fid}/outcome", json={"score": 6})
    assert res.status_code == 422
    assert api.get(f"/api/cases/{case_id}/follow-ups").json()[0]["state"] == "placed"


def test_agent_call_back_outside_allowed_hours_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "night.toml"
    now = datetime.now(UTC)
    # a one-hour window that is never "now" in UTC: starts two hours from now
    start = (now.hour + 2) % 24
    policy.write_text(
        f'[follow_up]\nutc_offset_h = 0\nallowed_hours = "{start:02d}:00-{start + 1:02d}:00"\n'
    )
    runtime = Runtime.open(load_settings(data_dir=tmp_path / "d", demo="never",
                                         case_policy_file=policy, worker_threads=0))  # fmt: skip
    try:
        with api_client(runtime) as api:
            case_id = _resolved(api, "13900000903")
            res = api.post(f"/api/cases/{case_id}/call-back", json={"agent": "agent1"})
            assert res.status_code == 409, res.text
            assert "outside the allowed calling hours" in res.json()["detail"]
            survey = api.get(f"/api/cases/{case_id}/follow-ups").json()[0]
            assert survey["state"] == "scheduled"
            next_at = datetime.fromisoformat(survey["next_try_at"])
            assert next_at.hour == start and next_at > now  # waits for the window, not lost
    finally:
        runtime.close()
