"""API skeleton: health, problem+json everywhere, upload limit, request ids, auth."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from earwitness.config import Settings, load_settings
from earwitness.runtime import Runtime
from tests.accounts_helpers import anonymous_client, api_client


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    runtime.start_worker()
    with api_client(runtime) as c:
        yield c


def test_health_reports_database_worker_and_ami(client: TestClient) -> None:
    resp = client.get("/api/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["worker"]["running"] is True
    assert body["ami"] == {"ok": True, "configured": False}


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/health" in spec["paths"] and "/api/jobs/{job_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_problem_json_with_request_id(client: TestClient) -> None:
    resp = client.get("/api/nope", headers={"X-Request-ID": "abc123"})
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["x-request-id"] == "abc123"
    assert resp.json()["status"] == 404 and resp.json()["request_id"] == "abc123"


def test_validation_and_domain_errors_are_problem_json(client: TestClient) -> None:
    bad = client.get("/api/jobs/not-a-number")
    assert bad.status_code == 422 and bad.json()["type"].endswith("/validation")
    missing = client.get("/api/jobs/987654")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "job 987654 does not exist"


def test_job_progress_is_visible(client: TestClient, runtime: Runtime) -> None:
    job_id = runtime.submit("selfcheck", {"echo": "hi"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").json()
        if body["state"] == "succeeded":
            break
        time.sleep(0.05)
    assert body["state"] == "succeeded" and body["progress"] == 100.0
    assert body["result"] == {"echo": "hi"}


def test_oversized_upload_is_refused_with_413(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir=tmp_path / "d", max_upload_mb=0.001, demo="never")
    rt = Runtime.open(settings)
    try:
        with api_client(rt) as c:
            declared = c.post("/api/health", content=b"x" * 5000)
            assert declared.status_code == 413
            assert declared.headers["content-type"] == "application/problem+json"
    finally:
        rt.close()


def test_auth_is_always_on_and_the_bootstrap_key_makes_an_admin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = load_settings(
        data_dir=tmp_path / "d", bootstrap_api_key="s3cret-key-1", demo="never"
    )
    rt = Runtime.open(settings)
    try:
        with anonymous_client(rt) as c:
            anon = c.get("/api/jobs")
            assert anon.status_code == 401 and anon.json()["status"] == 401
            wrong = c.get("/api/jobs", headers={"X-API-Key": "guess"})
            assert wrong.status_code == 401
            ok = c.get("/api/jobs", headers={"Authorization": "Bearer s3cret-key-1"})
            assert ok.status_code == 200
            me = c.get("/api/me", headers={"X-API-Key": "s3cret-key-1"}).json()
            assert me["username"] == "admin" and me["role"] == "admin"
    finally:
        rt.close()
    # A second start with users present adds nothing, the key keeps working.
    rt = Runtime.open(settings)
    try:
        with anonymous_client(rt) as c:
            users = c.get("/api/users", headers={"X-API-Key": "s3cret-key-1"}).json()
            assert [u["username"] for u in users] == ["admin"]
    finally:
        rt.close()
