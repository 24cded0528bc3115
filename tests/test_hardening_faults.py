"""Faults survived: a full or read-only data directory, a locked SQLite, a PostgreSQL connection
killed mid-request. Each must give a clear error (503 problem, a job error saying why), leave
nothing half-written (no blob without its row, no row without its blob) and recover.

The full/read-only disk is a real tmpfs of a few hundred KiB mounted over the blob store (or
the temp dir transcription decodes into): we run as root here, and a failure to mount fails
the test instead of skipping it. PostgreSQL is the machine's shared server: connections are
cut with ``pg_terminate_backend`` on this test's own backends, never by restarting it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import sqlalchemy as sa
from sqlalchemy import func, select

from earwitness.config import load_settings
from earwitness.models import Case, Evidence, Job, Recording, Transcript
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client
from tests.conftest import PG_ADMIN_URL, _postgres_schema
from tests.polling import wait_until


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path} (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def _blob_files(runtime: Runtime) -> list[Path]:
    """Stored blobs and leftover temp files: a refused upload must leave neither."""
    return [p for p in runtime.settings.blob_dir.rglob("*") if p.is_file()]


def _count(runtime: Runtime, model: Any) -> int:
    with runtime.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _new_case(runtime: Runtime, number: str) -> int:
    with runtime.db.session() as session:
        case = Case(number=number, complainant_phone="13800138000")
        session.add(case)
        session.flush()
        return case.id


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime whose blob store is a 256 KiB tmpfs (the database stays on the real disk)."""
    data = tmp_path / "data"
    with tmpfs(data / "blobs", "256k"):
        runtime = Runtime.open(
            load_settings(data_dir=data, demo="never", worker_mode="off", max_upload_mb=5)
        )
        try:
            yield runtime
        finally:
            runtime.close()


def test_evidence_intake_on_a_full_then_read_only_disk(small_disk: Runtime) -> None:
    runtime = small_disk
    case_id = _new_case(runtime, "CASE-FULL-1")
    with api_client(runtime, "investigator") as client:
        full = client.post(
            f"/api/cases/{case_id}/evidence", files={"file": ("big.bin", os.urandom(400_000))}
        )
        assert full.status_code == 503, full.text
        assert "the data directory is full" in full.json()["detail"]
        assert _count(runtime, Evidence) == 0 and _blob_files(runtime) == []
        # space is there again for a small file: the service recovered by itself
        small = client.post(
            f"/api/cases/{case_id}/evidence", files={"file": ("small.txt", b"fits " * 100)}
        )
        assert small.status_code == 201, small.text
        _remount(runtime.settings.blob_dir, "ro")
        try:
            read_only = client.post(
                f"/api/cases/{case_id}/evidence", files={"file": ("ro.txt", b"read-only disk")}
            )
        finally:
            _remount(runtime.settings.blob_dir, "rw")
    assert read_only.status_code == 503, read_only.text
    assert "read-only" in read_only.json()["detail"]
    assert _count(runtime, Evidence) == 1 and len(_blob_files(runtime)) == 1


def test_recording_ingest_on_a_full_disk(small_disk: Runtime, tmp_path: Path) -> None:
    runtime = small_disk
    wav = tmp_path / "call.wav"
    rng = np.random.default_rng(5)
    sf.write(wav, rng.uniform(-0.3, 0.3, (8000 * 12, 2)), 8000, subtype="PCM_16")  # ~384 KB
    with api_client(runtime, "qa") as client:
        response = client.post(
            "/api/recordings",
            data={"transcribe": "false"},
            files={"file": ("call.wav", wav.read_bytes(), "audio/wav")},
        )
    assert response.status_code == 503, response.text
    assert "the data directory is full" in response.json()["detail"]
    assert _count(runtime, Recording) == 0 and _count(runtime, Evidence) == 0
    assert _blob_files(runtime) == []


def test_failed_commit_removes_the_blob_it_stored(tmp_path: Path) -> None:
    """The row cannot be written (a trigger refuses it at commit): the new blob goes too."""
    runtime = Runtime.open(
        load_settings(data_dir=tmp_path / "data", demo="never", worker_mode="off")
    )
    try:
        case_id = _new_case(runtime, "CASE-COMMIT-1")
        with runtime.db.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_evidence BEFORE INSERT ON evidence "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
            )
        with api_client(runtime, "investigator") as client:
            refused = client.post(
                f"/api/cases/{case_id}/evidence", files={"file": ("a.txt", b"never filed")}
            )
        assert refused.status_code >= 400
        assert _count(runtime, Evidence) == 0 and _blob_files(runtime) == []
    finally:
        runtime.close()


def test_transcription_with_a_full_temp_dir_is_retried_then_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earwitness.recordings.intake import ingest_file
    from tests.speech_synth import asr_settings

    settings = asr_settings(tmp_path / "data").model_copy(
        update={"demo": "never", "job_poll_s": 0.05, "worker_threads": 1}
    )
    wav = tmp_path / "tone.wav"
    t = np.arange(8000 * 3) / 8000
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    sf.write(wav, np.stack([tone, tone * 0.5], axis=1), 8000, subtype="PCM_16")
    runtime = Runtime.open(settings)
    scratch = tmp_path / "scratch"
    try:
        with runtime.db.session() as session:
            rid = ingest_file(session, runtime.blobs, wav).id
        with tmpfs(scratch, "512k"):
            filler = scratch / "filler"
            with pytest.raises(OSError):
                filler.write_bytes(b"\0" * 1_000_000)  # the temp dir is now full
            monkeypatch.setattr(tempfile, "tempdir", str(scratch))
            runtime.start_worker()
            job_id = runtime.submit("transcribe", {"recording_id": rid, "language": "en"})

            def first_error() -> str | None:
                with runtime.db.session() as session:
                    job = session.get(Job, job_id)
                    return job.error if job is not None and job.attempts >= 1 else None

            error = wait_until(first_error, 60, "the transcribe job's first failure")
            assert "No space left on device" in error
            with runtime.db.session() as session:
                job = session.get(Job, job_id)
                assert job is not None and job.state in ("queued", "running")  # a retry
            assert _count(runtime, Transcript) == 0
            filler.unlink()  # the operator frees space

            def finished() -> str | None:
                with runtime.db.session() as session:
                    job = session.get(Job, job_id)
                    return job.state if job and job.state in ("succeeded", "failed") else None

            assert wait_until(finished, 120, "the retried transcribe job") == "succeeded"
        assert _count(runtime, Transcript) == 1
    finally:
        runtime.close()


def test_sqlite_long_reader_and_a_writer_holding_the_lock(tmp_path: Path) -> None:
    """WAL: a reader holding a snapshot never blocks intake; a writer holding the write lock
    for 1.5 s makes intake wait (busy timeout) and then succeed, exactly once."""
    runtime = Runtime.open(
        load_settings(data_dir=tmp_path / "data", demo="never", worker_mode="off")
    )
    db_path = runtime.settings.data_dir / "earwitness.db"
    try:
        case_id = _new_case(runtime, "CASE-LOCK-1")
        reader = sqlite3.connect(db_path, check_same_thread=False)
        reader.execute("BEGIN")
        seen_before = reader.execute("SELECT count(*) FROM evidence").fetchone()[0]
        with api_client(runtime, "investigator") as client:
            during_read = client.post(
                f"/api/cases/{case_id}/evidence", files={"file": ("r.txt", b"during a read")}
            )
            assert during_read.status_code == 201, during_read.text
            # the reader's snapshot is consistent: it still sees the old count
            assert reader.execute("SELECT count(*) FROM evidence").fetchone()[0] == seen_before
            reader.rollback()
            reader.execute("BEGIN IMMEDIATE")  # now hold the write lock
            release = threading.Timer(1.5, reader.rollback)
            release.start()
            started = time.monotonic()
            during_write = client.post(
                f"/api/cases/{case_id}/evidence", files={"file": ("w.txt", b"during a write")}
            )
            waited = time.monotonic() - started
            release.join()
        reader.close()
        assert during_write.status_code == 201, during_write.text
        assert waited >= 1.0  # it waited for the lock rather than failing
        assert _count(runtime, Evidence) == 2 and len(_blob_files(runtime)) == 2
    finally:
        runtime.close()


@pytest.fixture
def pg_runtime(tmp_path: Path) -> Iterator[Runtime]:
    schema_url = _postgres_schema()
    url = next(schema_url)
    runtime = Runtime.open(
        load_settings(data_dir=tmp_path / "data", database_url=url, demo="never", worker_mode="off")
    )
    try:
        yield runtime
    finally:
        runtime.close()
        next(schema_url, None)


def _terminate(pids: list[int]) -> int:
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        with admin.begin() as conn:
            return sum(
                bool(conn.scalar(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}))
                for pid in pids
            )
    finally:
        admin.dispose()


def test_postgres_connection_killed_mid_request(pg_runtime: Runtime) -> None:
    """The backend serving an intake is terminated just before the evidence INSERT: the
    request answers 503 and saves nothing (no row, no blob); the same request again gets a
    new connection and files it once. Idle pooled connections killed between requests are
    replaced transparently (pre-ping)."""
    runtime = pg_runtime
    case_id = _new_case(runtime, "CASE-PG-1")
    engine = runtime.db.engine
    killed: list[int] = []

    def kill_before_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVIDENCE") and not killed:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            killed.append(pid)
            assert _terminate([pid]) == 1

    with api_client(runtime, "investigator") as client:
        sa.event.listen(engine, "before_cursor_execute", kill_before_insert)
        try:
            cut = client.post(
                f"/api/cases/{case_id}/evidence", files={"file": ("pg.txt", b"pg evidence")}
            )
        finally:
            sa.event.remove(engine, "before_cursor_execute", kill_before_insert)
        assert killed, "the fault was not injected"
        assert cut.status_code == 503, cut.text
        assert cut.json()["title"] == "Database unavailable"
        assert _count(runtime, Evidence) == 0 and _blob_files(runtime) == []
        again = client.post(
            f"/api/cases/{case_id}/evidence", files={"file": ("pg.txt", b"pg evidence")}
        )
        assert again.status_code == 201, again.text
        # every pooled connection dies between two requests: the next one does not notice
        with engine.connect() as conn:
            own = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert _terminate([own]) == 1
        listed = client.get(f"/api/cases/{case_id}/evidence")
        assert listed.status_code == 200 and len(listed.json()) == 1
    assert _count(runtime, Evidence) == 1 and len(_blob_files(runtime)) == 1
