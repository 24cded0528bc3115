"""Every route of the app, as every role and anonymously, against the one permission matrix.

The routes come from the app itself (the OpenAPI spec plus the pages left out of it);
a route without an entry in :data:`earwitness.api.permissions.MATRIX` fails the test.
Path parameters name objects created first (a call answered by the agent's own PBX
agent, its ingested recording and transcript, a case, evidence, a track, ...), so a
404 never stands in for a refusal; mutating routes get a fresh object per request so
every allowed role reaches the route's documented success code.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from earwitness.api import create_app
from earwitness.api.permissions import MATRIX, rule_for
from earwitness.config import load_settings
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.models import (
    ROLES,
    Agent,
    Call,
    Case,
    FollowUp,
    Queue,
    Segment,
    Transcript,
    case_calls,
)  # fmt: skip
from earwitness.recordings.intake import ingest_file
from earwitness.runtime import Runtime
from tests import track_synth
from tests.accounts_helpers import BASE_URL, user_with_key
from tests.qa_calls import EN_MODEL

LUCY = "Local/lucy@agents"
SMS_SECRET = "matrix-gateway-secret"
CALLER = "13800138000"
_serial = itertools.count(1)
# Routes outside the OpenAPI spec (pages) and their success code.
PAGE_SUCCESS = {
    ("GET", "/"): 200,
    # the web UI's pages (earwitness/web)
    ("GET", "/reports/sla"): 200,
    ("GET", "/calls"): 200,
    ("GET", "/calls/{call_id}"): 200,
    ("GET", "/cases"): 200,
    ("GET", "/cases/{case_id}"): 200,
    ("GET", "/search"): 200,
    ("GET", "/qa"): 200,
    ("GET", "/reports/weekly"): 200,
    ("GET", "/admin"): 200,
    ("POST", "/admin/queues"): 303,
    ("POST", "/admin/map"): 303,
    ("POST", "/admin/rules"): 303,
    ("GET", "/login"): 200,
    ("POST", "/login"): 303,
    ("POST", "/logout"): 303,
    ("GET", "/openapi.json"): 200,
    ("GET", "/docs"): 200,
    ("GET", "/docs/oauth2-redirect"): 200,
    ("GET", "/redoc"): 200,
}


def _wav(freq: float) -> bytes:
    t = np.arange(8000) / 8000.0
    stereo = np.stack([0.3 * np.sin(2 * np.pi * freq * t), 0.2 * np.sin(3 * np.pi * freq * t)], 1)
    out = io.BytesIO()
    sf.write(out, stereo, 8000, format="WAV", subtype="PCM_16")
    return out.getvalue()


@dataclass
class World:
    runtime: Runtime
    admin: TestClient
    keys: dict[str, str]
    password_user: tuple[str, str]
    call_id: int
    linkedid: str
    recording_id: int
    case_id: int
    fact_id: int
    evidence_id: int
    track_id: int
    job_id: int
    target_user_id: int

    def new_call(self) -> int:
        """A fresh call answered by the agent role's PBX agent (cases open once per call)."""
        with self.runtime.db.session() as s:
            agent = s.query(Agent).filter_by(interface=LUCY).one()
            now = datetime.now(UTC)
            call = Call(linkedid=f"fresh-{next(_serial)}", source="demo", caller=CALLER,
                        entered_at=now - timedelta(seconds=9), answered_at=now, agent=agent,
                        outcome="answered", wait_s=9.0, rings=2)  # fmt: skip
            s.add(call)
            s.flush()
            return call.id

    def new_case(self) -> int:
        res = self.admin.post("/api/cases", json={"complainant_phone": CALLER, "summary": "x"})
        assert res.status_code == 201, res.text
        return int(res.json()["id"])

    def new_evidence(self) -> int:
        with self.runtime.db.session() as s:
            req = IntakeRequest(self.case_id, f"note-{next(_serial)}.txt", "li", source="upload")
            return intake(s, self.runtime.blobs, req, io.BytesIO(f"n{next(_serial)}".encode())).id

    def new_promise(self) -> tuple[int, int]:
        case_id = self.new_case()
        res = self.admin.post(f"/api/cases/{case_id}/promises",
                              json={"text": "call back", "within_minutes": 10})  # fmt: skip
        assert res.status_code == 201, res.text
        return case_id, int(res.json()["id"])

    def new_resolved_case(self) -> int:
        """Resolved (a follow-up is scheduled on resolution; the matrix has no PBX)."""
        case_id = self.new_case()
        for to in ("assigned", "resolved"):
            res = self.admin.post(f"/api/cases/{case_id}/status", json={"to": to})
            assert res.status_code == 200, res.text
        return case_id

    def new_follow_up(self) -> tuple[int, int]:
        case_id = self.new_resolved_case()
        res = self.admin.post(f"/api/cases/{case_id}/follow-ups", json={"channel": "survey"})
        assert res.status_code == 201, res.text
        return case_id, int(res.json()["id"])

    def sms_awaiting_reply(self) -> str:
        """A fresh number with an SMS follow-up already sent, straight in the table."""
        phone = f"1370000{next(_serial):04d}"
        case_id = self.new_resolved_case()
        with self.runtime.db.session() as s:
            s.add(FollowUp(case_id=case_id, channel="sms", state="placed", phone=phone,
                           tries=1, detail="", data={}))  # fmt: skip
        return phone

    def new_key(self) -> int:
        res = self.admin.post("/api/keys", json={"name": "tmp", "user": "target"})
        assert res.status_code == 201, res.text
        return int(res.json()["id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    policy = tmp / "policy.toml"
    policy.write_text('[follow_up]\nallowed_hours = "00:00-24:00"\n')
    settings = load_settings(data_dir=tmp / "data", job_poll_s=0.05, demo="never",
                             case_policy_file=policy, sms_reply_secret=SMS_SECRET)  # fmt: skip
    runtime = Runtime.open(settings)
    runtime.start_worker()
    try:
        yield _build(runtime, tmp)
    finally:
        runtime.close()


def _build(runtime: Runtime, tmp: Path) -> World:
    keys = {}
    for role in ROLES:
        _, keys[role] = user_with_key(
            runtime, role, username=f"m-{role}", pbx_agent=LUCY if role == "agent" else None
        )
    password_user = ("m-login", "correct horse battery")
    user_with_key(runtime, "qa", username=password_user[0], password=password_user[1])
    target_id_name, _ = user_with_key(runtime, "agent", username="target")
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with runtime.db.session() as s:
        lucy = Agent(interface=LUCY, name="Lucy")
        queue = Queue(name="complaints", sla_rings=3)
        call = Call(linkedid="matrix-1", source="demo", caller=CALLER, entered_at=start,
                    answered_at=start + timedelta(seconds=6), agent=lucy, queue=queue,
                    outcome="answered", rings=2, wait_s=6.0)  # fmt: skip
        s.add(call)
        s.flush()
        wav = tmp / "call.wav"
        wav.write_bytes(_wav(440.0))
        rec = ingest_file(s, runtime.blobs, wav, call_id=call.id, origin="pbx", actor="pbx")
        tr = Transcript(recording_id=rec.id, model="test", language="en")
        tr.segments = [
            Segment(channel=0 if x.role == "customer" else 1, role=x.role, start_s=x.start_s,
                    end_s=x.end_s, text=x.text)
            for x in EN_MODEL
        ]  # fmt: skip
        s.add(tr)
        s.flush()
        call_id, recording_id = call.id, rec.id
        target_user_id = s.query(Call).count() and _user_id(s, target_id_name)
    job_id = runtime.submit("qa.audit", {"recording_id": recording_id})
    admin = TestClient(create_app(runtime=runtime), base_url=BASE_URL,
                       headers={"X-API-Key": keys["admin"]})  # fmt: skip
    admin.__enter__()
    case = admin.post(f"/api/calls/{call_id}/case", json={"summary": "late truck"})
    assert case.status_code == 201, case.text
    case_id = int(case.json()["id"])
    facts = case.json()["facts"].get("items") or []
    assert facts, "the model call's transcript should suggest facts"
    gpx = track_synth.to_gpx(track_synth.rescue_truck())
    track = admin.post(f"/api/cases/{case_id}/tracks", files={"file": ("t.gpx", gpx)})
    assert track.status_code == 201, track.text
    with runtime.db.session() as s:
        assert s.get(Case, case_id) is not None
        linked = s.execute(case_calls.select().where(case_calls.c.case_id == case_id)).all()
        assert linked
    world = World(runtime, admin, keys, password_user, call_id, "matrix-1", recording_id,
                  case_id, int(facts[0]["id"]), 0, int(track.json()["track_id"]), job_id,
                  target_user_id)  # fmt: skip
    world.evidence_id = world.new_evidence()
    return world


def _user_id(session: Any, name: str) -> int:
    from earwitness.models import User

    return int(session.query(User).filter_by(username=name).one().id)


# -- what each route is called with -----------------------------------------------------
Req = dict[str, Any]


def _params(w: World, method: str, path: str) -> dict[str, Any]:
    """Path parameters; mutating routes that cannot repeat get fresh objects."""
    fresh_case = method != "GET" and path.startswith("/api/cases/{case_id}")
    values: dict[str, Callable[[], Any]] = {
        "call_id": (w.new_call if path == "/api/calls/{call_id}/case" else lambda: w.call_id),
        "linkedid": lambda: w.linkedid,
        "recording_id": lambda: w.recording_id,
        "case_id": (w.new_case if fresh_case else lambda: w.case_id),
        "evidence_id": (w.new_evidence if "supersede" in path else lambda: w.evidence_id),
        "track_id": lambda: w.track_id,
        "job_id": lambda: w.job_id,
        "user_id": lambda: w.target_user_id,
        "key_id": w.new_key,
        "rule_id": lambda: "no_interruptions",
        "number": lambda: CALLER,
    }
    names = re.findall(r"{(\w+)}", path)
    if path.endswith("/promises/{promise_id}/kept"):
        case_id, promise_id = w.new_promise()
        return {"case_id": case_id, "promise_id": promise_id}
    if path.endswith("/follow-ups/{follow_up_id}/outcome"):
        case_id, follow_up_id = w.new_follow_up()
        return {"case_id": case_id, "follow_up_id": follow_up_id}
    if path.endswith(("/follow-ups", "/call-back")) and method == "POST":
        return {"case_id": w.new_resolved_case()}
    if path.endswith("/facts/{fact_id}"):
        return {"case_id": w.case_id, "fact_id": w.fact_id}
    missing = [n for n in names if n not in values]
    assert not missing, f"{method} {path}: the matrix test has no value for {missing}"
    return {n: values[n]() for n in names}


def _request(w: World, method: str, path: str) -> Req:
    """Query, body and files a successful call of the route needs."""
    gpx = track_synth.to_gpx(track_synth.rescue_truck())
    n = next(_serial)
    bodies: dict[tuple[str, str], Callable[[], Req]] = {
        ("GET", "/api/search"): lambda: {"params": {"q": "sorry"}},
        ("GET", "/api/live/stream"): lambda: {"params": {"max_events": 1}},
        ("POST", "/api/me/password"): lambda: {"json": {"password": "a new password 1"}},
        ("POST", "/api/users"): lambda: {"json": {"username": f"new-{n}", "role": "agent"}},
        ("PATCH", "/api/users/{user_id}"): lambda: {"json": {"display_name": f"T {n}"}},
        ("POST", "/api/users/{user_id}/password"): lambda: {"json": {"password": "pw-target-1"}},
        ("POST", "/api/keys"): lambda: {"json": {"name": f"k{n}", "user": "target"}},
        ("POST", "/api/recordings"): lambda: {
            "files": {"file": (f"r{n}.wav", _wav(300.0 + n))},
            "data": {"transcribe": "false"},
        },
        ("PUT", "/api/qa/calls/{recording_id}/overrides/{rule_id}"): lambda: {
            "json": {"status": "passed", "reason": "calibration"}
        },
        ("POST", "/api/cases"): lambda: {"json": {"summary": "registered in the call"}},
        ("PUT", "/api/agents/identities"): lambda: {
            "json": {"identifier": LUCY, "name": "Lucy Zhao"}
        },
        ("POST", "/api/calls/{call_id}/case"): lambda: {"json": {"summary": "from the call"}},
        ("PATCH", "/api/cases/{case_id}"): lambda: {"json": {"summary": "edited"}},
        ("POST", "/api/cases/{case_id}/status"): lambda: {"json": {"to": "assigned"}},
        ("POST", "/api/cases/{case_id}/handover"): lambda: {
            "json": {"to": "team-a", "reason": "escalated"}
        },
        ("POST", "/api/cases/{case_id}/actions"): lambda: {"json": {"kind": "note", "text": "x"}},
        ("POST", "/api/cases/{case_id}/promises"): lambda: {
            "json": {"text": "call back", "within_minutes": 10}
        },
        ("POST", "/api/cases/{case_id}/facts/{fact_id}"): lambda: {"json": {"status": "confirmed"}},
        ("POST", "/api/cases/{case_id}/evidence"): lambda: {
            "files": {"file": (f"e{n}.txt", f"evidence {n}".encode())}
        },
        ("POST", "/api/evidence/{evidence_id}/supersede"): lambda: {
            "files": {"file": (f"s{n}.txt", f"corrected {n}".encode())},
            "data": {"reason": "typo"},
        },
        ("POST", "/api/tracks/analyze"): lambda: {"files": {"file": ("t.gpx", gpx)}},
        ("POST", "/api/cases/{case_id}/tracks"): lambda: {"files": {"file": ("t.gpx", gpx)}},
        ("POST", "/api/tracks/{track_id}/analyze"): lambda: {"json": {"params": {}}},
        ("POST", "/api/cases/{case_id}/call-back"): lambda: {"json": {"agent": "lucy"}},
        ("POST", "/api/cases/{case_id}/follow-ups"): lambda: {"json": {"channel": "sms"}},
        ("POST", "/api/cases/{case_id}/follow-ups/{follow_up_id}/outcome"): lambda: {
            "json": {"reached": True, "score": 4}
        },
        ("POST", "/api/follow-ups/sms-reply"): lambda: {
            "json": {"from": w.sms_awaiting_reply(), "text": "5"},
            "headers": {"X-Earwitness-Gateway-Secret": SMS_SECRET},
        },
    }
    rules = (Path(__file__).parents[1] / "earwitness/qa/rules/en.toml").read_text()
    bodies[("POST", "/admin/queues")] = lambda: {"data": {"name": "complaints", "rings": "3"}}
    bodies[("POST", "/admin/map")] = lambda: {"data": {"tile_url": ""}}
    bodies[("POST", "/admin/rules")] = lambda: {"data": {"rules": rules}}
    make = bodies.get((method, path))
    return make() if make else {}


def _routes(app: Any) -> list[tuple[str, str, int | None]]:
    """(method, path, documented success code) of every route: spec, then pages."""
    found: dict[tuple[str, str], int | None] = {}
    for path, ops in app.openapi()["paths"].items():
        for method, op in ops.items():
            codes = sorted(int(c) for c in op.get("responses", {}) if c.startswith("2"))
            found[(method.upper(), path)] = codes[0] if codes else 200
    for (_, method), path in app.state.route_paths.items():
        found.setdefault((method, path), PAGE_SUCCESS.get((method, path)))
    for key, code in PAGE_SUCCESS.items():
        found.setdefault(key, code)
    return sorted((m, p, c) for (m, p), c in found.items())


def test_every_route_has_an_entry_in_the_matrix(world: World) -> None:
    routes = _routes(create_app(runtime=world.runtime))
    missing = [f"{m} {p}" for m, p, _ in routes if rule_for(m, p) is None]
    assert not missing, f"routes with no entry in permissions.MATRIX: {missing}"
    stale = set(MATRIX) - {(m, p) for m, p, _ in routes}
    assert not stale, f"matrix entries for routes that do not exist: {sorted(stale)}"
    assert len(routes) > 60


@pytest.mark.parametrize("who", [*ROLES, "anonymous"])
def test_every_route_as_every_role(world: World, who: str) -> None:
    app = create_app(runtime=world.runtime)
    headers = {} if who == "anonymous" else {"X-API-Key": world.keys[who]}
    failures = []
    with TestClient(app, base_url=BASE_URL, headers=headers) as client:
        for method, path, success in _routes(app):
            rule = rule_for(method, path)
            assert rule is not None
            if (method, path) == ("POST", "/login"):
                res = _login(client, world)
            else:
                url = path.format(**_params(world, method, path))
                res = client.request(method, url, follow_redirects=False,
                                     **_request(world, method, path))  # fmt: skip
            if rule.public or (who != "anonymous" and rule.permits(who)):
                expected = success
            else:
                expected = 401 if who == "anonymous" else 403
            if res.status_code != expected:
                failures.append(
                    f"{method} {path}: {res.status_code} != {expected} {res.text[:160]}"
                )
    assert not failures, f"as {who}:\n" + "\n".join(failures)


def _login(client: TestClient, w: World) -> Any:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    username, password = w.password_user
    res = client.post("/login", follow_redirects=False, data={
        "username": username, "password": password, "csrf_token": token.group(1)})  # fmt: skip
    client.cookies.clear()  # the walk goes on as the role's key, not this session
    return res
