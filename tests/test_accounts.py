"""Accounts end to end: login, sessions, CSRF, keys, disabling, rate limit, trusted hosts,
the first-start login link, ``serve`` refusing an open bind, custody under the real
user's name, masked numbers and agents' own calls."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from earwitness.api import create_app
from earwitness.config import Settings, load_settings
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.masking import mask_phone, redact
from earwitness.models import (
    Agent,
    ApiKey,
    Call,
    Case,
    CustodyEntry,
    Segment,
    Transcript,
    UserSession,
    case_calls,
)
from earwitness.recordings.intake import ingest_file
from earwitness.runtime import Runtime
from earwitness.search.indexer import index_recording
from tests.accounts_helpers import BASE_URL, api_client, user_with_key

PASSWORD = "correct horse battery"
CALLER = "13800138000"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(
        load_settings(data_dir=tmp_path / "data", demo="never", login_attempts=3)
    )
    try:
        yield runtime
    finally:
        runtime.close()


def _browser(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime=runtime), base_url=BASE_URL)


def _login(client: TestClient, username: str, password: str) -> httpx.Response:
    form = client.get("/login")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )


def test_login_sets_a_safe_cookie_and_csrf_guards_unsafe_requests(rt: Runtime) -> None:
    user_with_key(rt, "investigator", username="li", password=PASSWORD)
    with _browser(rt) as c:
        res = _login(c, "li", PASSWORD)
        assert res.status_code == 303 and res.headers["location"] == "/"
        cookie = res.headers["set-cookie"]
        assert "ew_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http here; set over TLS
        me = c.get("/api/me").json()
        assert me["username"] == "li" and me["via"] == "session" and len(me["csrf_token"]) == 64
        # an unsafe request riding on the cookie alone is refused
        no_token = c.post("/api/cases", json={"summary": "x"})
        assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
        wrong = c.post("/api/cases", json={"summary": "x"}, headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        ok = c.post("/api/cases", json={"summary": "x"}, headers={"X-CSRF-Token": me["csrf_token"]})
        assert ok.status_code == 201, ok.text
        # a form field works too (server-rendered pages), and logout ends the session
        out = c.post("/logout", data={"csrf_token": me["csrf_token"]}, follow_redirects=False)
        assert out.status_code == 303
        cookie_value = res.cookies["ew_session"]
        c.cookies.set("ew_session", cookie_value)
        assert c.get("/api/me").status_code == 403


def test_wrong_password_and_unknown_user_look_the_same(rt: Runtime) -> None:
    user_with_key(rt, "qa", username="wang", password=PASSWORD)
    with _browser(rt) as c:
        bad_pw = _login(c, "wang", "not the password")
        no_user = _login(c, "nobody", PASSWORD)
    assert bad_pw.status_code == no_user.status_code == 401
    assert bad_pw.json()["detail"] == no_user.json()["detail"] == "wrong username or password"
    assert "set-cookie" not in bad_pw.headers or "ew_session" not in bad_pw.headers["set-cookie"]


def test_login_without_the_form_token_is_refused(rt: Runtime) -> None:
    user_with_key(rt, "qa", username="wang", password=PASSWORD)
    with _browser(rt) as c:
        res = c.post("/login", data={"username": "wang", "password": PASSWORD})
    assert res.status_code == 403


def test_forged_and_expired_sessions_are_403(rt: Runtime) -> None:
    user_with_key(rt, "qa", username="wang", password=PASSWORD)
    with _browser(rt) as c:
        c.cookies.set("ew_session", "forged-value")
        assert c.get("/api/me").status_code == 403
        c.cookies.clear()
        assert c.get("/api/me").status_code == 401  # no credential at all
        assert _login(c, "wang", PASSWORD).status_code == 303
        assert c.get("/api/me").status_code == 200
        with rt.db.session() as s:
            s.execute(update(UserSession).values(expires_at=datetime.now(UTC) - timedelta(1)))
        assert c.get("/api/me").status_code == 403


def test_revoked_key_is_401_and_disabling_stops_sessions_and_keys_at_once(rt: Runtime) -> None:
    _, key = user_with_key(rt, "investigator", username="li", password=PASSWORD)
    with api_client(rt, "admin") as admin, _browser(rt) as browser:
        assert _login(browser, "li", PASSWORD).status_code == 303
        headers = {"X-API-Key": key}
        assert browser.get("/api/cases", headers=headers).status_code == 200
        assert browser.get("/api/cases").status_code == 200  # via the session
        users = {u["username"]: u["id"] for u in admin.get("/api/users").json()}
        off = admin.patch(f"/api/users/{users['li']}", json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        assert browser.get("/api/cases").status_code == 403  # session gone
        browser.cookies.clear()
        assert browser.get("/api/cases", headers=headers).status_code == 401  # key gone

        _, other = user_with_key(rt, "qa", username="qa-2")
        key_id = next(k["id"] for k in admin.get("/api/keys").json() if k["user"] == "qa-2")
        assert browser.get("/api/recordings", headers={"X-API-Key": other}).status_code == 200
        revoked = admin.delete(f"/api/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        res = browser.get("/api/recordings", headers={"X-API-Key": other})
        assert res.status_code == 401 and res.json()["status"] == 401


def test_login_attempts_are_limited(rt: Runtime) -> None:
    user_with_key(rt, "qa", username="wang", password=PASSWORD)
    with _browser(rt) as c:
        codes = [_login(c, "wang", f"guess {i}").status_code for i in range(3)]
        assert codes == [401, 401, 401]
        blocked = _login(c, "wang", PASSWORD)  # even the right password, for now
        assert blocked.status_code == 429 and blocked.headers["retry-after"]


def test_one_time_login_link_is_single_use(rt: Runtime) -> None:
    from earwitness.accounts.bootstrap import first_start_login_token

    with rt.db.session() as s:
        issued = first_start_login_token(s, minutes=5)
    assert issued is not None
    username, token = issued
    assert username == "admin"
    with _browser(rt) as c:
        res = c.get(f"/login?token={token}", follow_redirects=False)
        assert res.status_code == 303 and "ew_session=" in res.headers["set-cookie"]
        assert c.get("/api/me").json()["role"] == "admin"
        c.cookies.clear()
        assert c.get(f"/login?token={token}", follow_redirects=False).status_code == 403
        assert c.get("/login?token=forged", follow_redirects=False).status_code == 403
    with rt.db.session() as s:  # only the hash is stored
        from earwitness.models import LoginToken

        stored = s.scalars(select(LoginToken.token_hash)).all()
        assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_pages_redirect_browsers_to_login_and_hosts_are_checked(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", demo="never")
    runtime = Runtime.open(settings)
    try:
        with _browser(runtime) as c:
            page = c.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
            rebound = c.get("/api/health", headers={"Host": "attacker.example"})
            assert rebound.status_code == 400
            assert c.get("/login", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    finally:
        runtime.close()
    configured: Settings = load_settings(
        data_dir=tmp_path / "d", demo="never", allowed_hosts=["ew.example.org"]
    )
    runtime = Runtime.open(configured)
    try:
        with TestClient(create_app(runtime=runtime), base_url="http://ew.example.org") as c:
            assert c.get("/login").status_code == 200
            assert c.get("/login", headers={"Host": "localhost"}).status_code == 400
    finally:
        runtime.close()


def _wav() -> bytes:
    t = np.arange(8000) / 8000.0
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)], 1)
    out = io.BytesIO()
    sf.write(out, stereo, 8000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _call_with_case(runtime: Runtime, tmp_path: Path) -> tuple[int, int, int, int]:
    """A call of agent Lucy with recording, transcript (indexed) and a case with evidence."""
    wav = tmp_path / "call.wav"
    wav.write_bytes(_wav())
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with runtime.db.session() as s:
        call = Call(linkedid="acc-1", source="demo", caller=CALLER, entered_at=at,
                    answered_at=at + timedelta(seconds=5), outcome="answered",
                    agent=Agent(interface="Local/lucy@agents", name="Lucy"))  # fmt: skip
        s.add(call)
        s.flush()
        rec = ingest_file(s, runtime.blobs, wav, call_id=call.id, origin="pbx", actor="pbx")
        tr = Transcript(recording_id=rec.id, model="test", language="en")
        tr.segments = [Segment(start_s=0.0, end_s=1.0, text="the truck is late", role="customer")]
        s.add(tr)
        s.flush()
        index_recording(s, rec.id)
        case = Case(number="EW-9", complainant_phone=CALLER)
        s.add(case)
        s.flush()
        s.execute(case_calls.insert().values(case_id=case.id, call_id=call.id))
        evidence = intake(s, runtime.blobs, IntakeRequest(case.id, "photo.txt", "li"),
                          io.BytesIO(b"a photo"))  # fmt: skip
        return call.id, rec.id, case.id, evidence.id


def test_custody_entries_name_the_logged_in_user(rt: Runtime, tmp_path: Path) -> None:
    _, rec_id, case_id, evidence_id = _call_with_case(rt, tmp_path)
    with api_client(rt, "investigator", username="inv-zhao") as c:
        assert c.get(f"/api/evidence/{evidence_id}/content").status_code == 200
        assert c.get(f"/api/recordings/{rec_id}/audio").status_code == 200
        assert c.get(f"/api/cases/{case_id}/bundle").status_code == 200
    with api_client(rt, "qa", username="qa-sun") as c:
        played = c.get(f"/api/recordings/{rec_id}/audio", headers={"Range": "bytes=0-99"})
        assert played.status_code == 206
    with rt.db.session() as s:
        rows = s.execute(
            select(CustodyEntry.actor, CustodyEntry.action, CustodyEntry.detail).where(
                CustodyEntry.action.in_(("view", "export"))
            )
        ).all()
    by_user = {(actor, action) for actor, action, _ in rows}
    assert ("inv-zhao", "view") in by_user and ("inv-zhao", "export") in by_user
    assert ("qa-sun", "view") in by_user
    plays = [r for r in rows if r.detail == "audio played through the API"]
    assert {r.actor for r in plays} == {"inv-zhao", "qa-sun"}
    assert all(actor not in (None, "anonymous") for actor, _, _ in rows)


def test_numbers_are_masked_for_roles_that_do_not_need_them(rt: Runtime, tmp_path: Path) -> None:
    call_id, _, case_id, _ = _call_with_case(rt, tmp_path)
    masked = mask_phone(CALLER)
    assert masked == "138****8000"
    with api_client(rt, "qa") as qa, api_client(rt, "investigator") as inv:
        listed = qa.get("/api/calls").json()["items"]
        assert [i["caller"] for i in listed] == [masked]
        assert CALLER not in qa.get(f"/api/calls/{call_id}").text
        hits = qa.get("/api/search", params={"q": "truck"}).json()["hits"]
        assert hits and all(h["caller"] == masked for h in hits)
        assert inv.get("/api/calls").json()["items"][0]["caller"] == CALLER
        assert inv.get("/api/search", params={"q": "truck"}).json()["hits"][0]["caller"] == CALLER
        assert CALLER in inv.get(f"/api/cases/{case_id}/timeline").text
    timeline = {"events": [{"caller": CALLER, "label": f"call from {CALLER} (answered)"}]}
    assert redact(timeline, {CALLER}) == {
        "events": [{"caller": masked, "label": f"call from {masked} (answered)"}]
    }


def test_agents_see_their_own_calls_only(rt: Runtime, tmp_path: Path) -> None:
    call_id, rec_id, _, _ = _call_with_case(rt, tmp_path)
    with rt.db.session() as s:
        other = Call(linkedid="acc-2", source="demo", caller="13900139000",
                     entered_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC), outcome="abandoned",
                     agent=Agent(interface="Local/chen@agents", name="Chen"))  # fmt: skip
        s.add(other)
        s.flush()
        other_id = other.id
    with api_client(rt, "agent", pbx_agent="Local/lucy@agents") as lucy:
        assert [c["id"] for c in lucy.get("/api/calls").json()["items"]] == [call_id]
        assert lucy.get(f"/api/calls/{call_id}").status_code == 200
        assert lucy.get(f"/api/calls/{other_id}").status_code == 403
        assert lucy.get("/api/calls", params={"agent": "Chen"}).json()["total"] == 0
        assert lucy.get(f"/api/qa/calls/{rec_id}").status_code == 200
        assert lucy.get("/api/qa/agents", params={"agent": "Chen"}).status_code == 403
    with api_client(rt, "agent") as unlinked:
        assert unlinked.get("/api/calls").json()["total"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARWITNESS_")}
    env.update({"EARWITNESS_DATA_DIR": str(tmp_path / "data"), "EARWITNESS_DEMO": "never"})
    env.update(extra)
    return env


def _cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "earwitness.cli", *args], env=_env(tmp_path),
                          cwd=tmp_path, input=stdin, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_serve_on_all_interfaces_refuses_without_a_password_user(tmp_path: Path) -> None:
    res = _cli(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refusing to listen on 0.0.0.0" in errors[0], res.stderr
    assert "no user has a password" in errors[0] and "Traceback" not in res.stderr
    from earwitness.cli import _refuse_open_bind_without_password

    settings = load_settings(data_dir=tmp_path / "data", demo="never", host="0.0.0.0")
    runtime = Runtime.open(settings)
    try:
        user_with_key(runtime, "admin", username="root", password=PASSWORD)
        _refuse_open_bind_without_password(runtime)  # a password user exists: no refusal
    finally:
        runtime.close()


def test_first_start_prints_a_login_url_that_works_once(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "earwitness.cli", "serve", "--port", str(port)],
        env=_env(tmp_path, EARWITNESS_WORKER_THREADS="0"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 60
        seen = []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/login\?token=\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(seen)
        with httpx.Client() as client:
            for _ in range(200):  # the server starts right after printing
                try:
                    client.get(f"http://127.0.0.1:{port}/api/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            first = client.get(url, follow_redirects=False)
            assert first.status_code == 303, first.text
            me = client.get(f"http://127.0.0.1:{port}/api/me")
            assert me.status_code == 200 and me.json()["username"] == "admin"
            assert me.json()["has_password"] is False
            client.cookies.clear()
            assert client.get(url, follow_redirects=False).status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_users_and_keys_cli(tmp_path: Path) -> None:
    added = _cli(tmp_path, "users", "add", "li", "--role", "investigator", "--password-stdin",
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert _cli(tmp_path, "users", "add", "x", "--role", "boss").returncode == 2
    assert _cli(tmp_path, "users", "set-role", "li", "lead").returncode == 0
    created = _cli(tmp_path, "keys", "create", "wallboard", "--user", "li")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ew_")
    listing = _cli(tmp_path, "keys", "list").stdout
    assert "wallboard" in listing and secret[:8] in listing and secret not in listing
    users = _cli(tmp_path, "users", "list").stdout
    assert "li" in users and "lead" in users and "set" in users
    assert _cli(tmp_path, "keys", "signing").returncode == 0
    assert _cli(tmp_path, "users", "disable", "li").returncode == 0
    runtime = Runtime.open(load_settings(data_dir=tmp_path / "data", demo="never"))
    try:
        with TestClient(create_app(runtime=runtime), base_url=BASE_URL) as c:
            assert c.get("/api/sla", headers={"X-API-Key": secret}).status_code == 401
    finally:
        runtime.close()
    assert _cli(tmp_path, "keys", "revoke", "1").returncode == 0


def test_key_use_is_stamped_at_most_once_a_minute(rt: Runtime) -> None:
    """A key's ``last_used_at`` says when it was last used, to the minute, without making
    every API request a database write."""
    from earwitness.api.auth import LAST_USED_RESOLUTION

    _, key = user_with_key(rt, "lead")

    def stamp() -> datetime | None:
        with rt.db.session() as session:
            return session.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == key[:8]))

    with TestClient(create_app(runtime=rt), base_url=BASE_URL, headers={"X-API-Key": key}) as c:
        assert stamp() is None
        assert c.get("/api/live").status_code == 200
        first = stamp()
        assert first is not None
        assert c.get("/api/live").status_code == 200
        assert stamp() == first  # within the minute: no write
        earlier = first - LAST_USED_RESOLUTION - timedelta(seconds=1)
        with rt.db.session() as session:
            session.execute(
                update(ApiKey).where(ApiKey.prefix == key[:8]).values(last_used_at=earlier)
            )
        assert c.get("/api/live").status_code == 200
        later = stamp()
        assert later is not None and later > first
