"""Recordings API: upload → job → exports; bad audio → problem+json and nothing stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from earwitness.config import load_settings
from earwitness.models import Recording
from earwitness.runtime import Runtime
from earwitness.transcription.models import joined_base_dir
from tests.accounts_helpers import api_client
from tests.speech_synth import EN_DIALOGUE, Call, build_call, model_cache_dir


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> Call:
    return build_call(tmp_path_factory.mktemp("api"), EN_DIALOGUE[:4], noise_dbfs=-50)


@pytest.fixture
def small_runtime(tmp_path: Path, db_url: str) -> Iterator[Runtime]:
    """Upload limit of 1 MB so the 413 path is cheap to exercise."""
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        worker_threads=1,
        job_poll_s=0.05,
        demo="never",
        max_upload_mb=1.0,
        whisper_model_multilingual=str(joined_base_dir(model_cache_dir())),
    )
    rt = Runtime.open(settings)
    rt.start_worker()
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def client(small_runtime: Runtime) -> Iterator[TestClient]:
    with api_client(small_runtime) as c:
        yield c


def _wait_job(client: TestClient, job_id: int, timeout: float = 240) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _stored(runtime: Runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        rows = session.scalar(select(func.count()).select_from(Recording)) or 0
    root = runtime.blobs.root
    blobs = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]
    return rows, len(blobs)


def test_upload_transcribe_and_export(client: TestClient, call: Call) -> None:
    audio = call.stereo.read_bytes()
    resp = client.post("/api/recordings", files={"file": ("call.wav", audio, "audio/wav")})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    rec, job_id = body["recording"], body["job_id"]
    assert (rec["channels"], rec["sample_rate"], rec["state"]) == (2, 8000, "ingested")
    assert client.get("/api/recordings").json()[0]["id"] == rec["id"]
    assert client.get(f"/api/recordings/{rec['id']}").json()["sha256"] == rec["sha256"]

    # seeking: a byte range comes back as 206 with exactly those bytes
    part = client.get(f"/api/recordings/{rec['id']}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == audio[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(audio)}"
    whole = client.get(f"/api/recordings/{rec['id']}/audio")
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["accept-ranges"] == "bytes"

    early = client.get(f"/api/recordings/{rec['id']}/transcript")
    assert early.status_code in (200, 404)
    job = _wait_job(client, job_id)
    assert job["state"] == "succeeded" and job["progress"] == 100.0, job

    data = client.get(f"/api/recordings/{rec['id']}/transcript?format=json").json()
    assert data["diarization"] == "channel" and data["role_rule"] == "channel-map"
    roles = {s["role"] for s in data["segments"]}
    assert roles == {"agent", "customer"}
    assert all(s["words"] for s in data["segments"])
    srt = client.get(f"/api/recordings/{rec['id']}/transcript?format=srt")
    assert srt.status_code == 200 and srt.text.startswith("1\n") and "[agent]" in srt.text
    vtt = client.get(f"/api/recordings/{rec['id']}/transcript?format=vtt")
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    assert "agent:" in client.get(f"/api/recordings/{rec['id']}/transcript?format=txt").text
    rttm = client.get(f"/api/recordings/{rec['id']}/transcript?format=rttm").text
    assert rttm.startswith(f"SPEAKER recording-{rec['id']} 1 ")
    bad = client.get(f"/api/recordings/{rec['id']}/transcript?format=docx")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("name", "content", "detail"),
    [
        ("empty.wav", b"", "empty"),
        ("notes.wav", b"meeting notes, not audio\n" * 50, "not an audio file"),
        ("broken.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 300, "corrupt"),
    ],
)
def test_bad_uploads_are_problems_and_store_nothing(
    client: TestClient, small_runtime: Runtime, name: str, content: bytes, detail: str
) -> None:
    resp = client.post("/api/recordings", files={"file": (name, content, "audio/wav")})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert detail in resp.json()["detail"]
    assert _stored(small_runtime) == (0, 0)


def test_oversized_upload_is_413(client: TestClient, small_runtime: Runtime) -> None:
    huge = b"RIFF" + b"\x00" * (2 * 1024 * 1024)
    resp = client.post("/api/recordings", files={"file": ("huge.wav", huge, "audio/wav")})
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert _stored(small_runtime) == (0, 0)


def test_missing_recording_is_404(client: TestClient) -> None:
    for path in ("/api/recordings/999", "/api/recordings/999/audio",
                 "/api/recordings/999/transcript"):  # fmt: skip
        resp = client.get(path)
        assert (
            resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
        )
