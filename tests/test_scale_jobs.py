"""The job system's promises (issue 16): declared attempts honoured, worker deaths capped,
unknown kinds and bad payloads refused, PBX recordings waited for by time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from earwitness.config import Settings, load_settings
from earwitness.errors import BadInput
from earwitness.jobs import enqueue, get_job
from earwitness.jobs import queue as jobqueue
from earwitness.jobs.worker import Worker
from earwitness.models import Job, Recording, utcnow
from earwitness.runtime import Runtime
from tests.polling import wait_until
from tests.scale_support import HandlerModule, install_handlers, spawn


@pytest.fixture
def handlers(tmp_path: Path) -> Iterator[HandlerModule]:
    yield install_handlers(tmp_path)


def job(runtime: Runtime, job_id: int) -> Job:
    with runtime.db.session() as s:
        return get_job(s, job_id)


def test_enqueue_uses_each_handlers_declared_max_attempts(
    runtime: Runtime, handlers: HandlerModule
) -> None:
    declared = {"scale.slow": 5, "scale.suicide": 2, "recording.ingest": 3, "selfcheck": 1}
    payloads = {"scale.slow": {"steps": 1}, "recording.ingest": {"recording_id": 1}}
    ids = {k: runtime.submit(k, payloads.get(k, {})) for k in declared}
    assert {k: job(runtime, i).max_attempts for k, i in ids.items()} == declared
    with runtime.db.session() as s:  # an explicit value still wins
        assert enqueue(s, "scale.slow", {"steps": 1}, max_attempts=9).max_attempts == 9


def test_unknown_kind_and_invalid_payload_are_refused_and_add_nothing(
    runtime: Runtime, handlers: HandlerModule
) -> None:
    with pytest.raises(BadInput, match="unknown job kind 'transcribe.typo'"):
        runtime.submit("transcribe.typo", {})
    with pytest.raises(BadInput, match=r"invalid payload for job kind 'scale.slow': steps"):
        runtime.submit("scale.slow", {"steps": "many"})
    with pytest.raises(BadInput, match=r"recording_id"):
        runtime.submit("recording.ingest", {"recording_id": 0})
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_a_stored_job_with_a_bad_payload_fails_once_with_the_reason(
    runtime: Runtime, handlers: HandlerModule
) -> None:
    """A row written by an older version (or by hand) is not retried into the ground."""
    with runtime.db.session() as s:
        row = Job(kind="scale.slow", payload={"steps": "x"}, max_attempts=5, run_after=utcnow())
        s.add(row)
        s.flush()
        job_id = row.id
    worker = Worker(runtime.job_env(), poll_s=0.02, extra_modules=["ew_scale_handlers"])
    assert worker.run_one()
    done = job(runtime, job_id)
    assert done.state == "failed" and done.attempts == 1
    assert done.error is not None and "invalid payload" in done.error and "steps" in done.error
    assert handlers.lines("start") == []


def test_lease_expiry_reclaims_are_counted_and_capped(
    runtime: Runtime, handlers: HandlerModule
) -> None:
    job_id = runtime.submit("scale.suicide", {})  # declares max_attempts=2
    for n in (1, 2):
        claim = jobqueue.claim_next(runtime.db, f"gone:{n}:x", 60, ["scale.suicide"])
        assert claim is not None and claim.attempt == n
        with runtime.db.session() as s:  # the holder died: nobody renews the lease
            s.execute(update(Job).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert jobqueue.claim_next(runtime.db, "me:3:x", 60, ["scale.suicide"]) is None
    dead = job(runtime, job_id)
    assert dead.state == "failed" and dead.worker_deaths == 2
    assert dead.error == "worker died 2 times (its lease ran out each time)"
    assert jobqueue.claim_next(runtime.db, "me:4:x", 60, ["scale.suicide"]) is None


def test_a_job_that_kills_its_worker_fails_after_the_cap(
    tmp_path: Path, sqlite_settings: Settings, handlers: HandlerModule
) -> None:
    """Real worker processes, restarted as systemd would: the job kills each one; the third
    start finds the cap reached instead of running it again."""
    settings = sqlite_settings
    runtime = Runtime.open(settings)
    try:
        job_id = runtime.submit("scale.suicide", {})
        env = dict(handlers.env)
        env.update(
            EARWITNESS_DATABASE_URL=settings.resolved_database_url,
            EARWITNESS_DATA_DIR=str(settings.data_dir),
            EARWITNESS_JOB_MODULES='["ew_scale_handlers"]',
            EARWITNESS_JOB_POLL_S="0.05",
            EARWITNESS_DEMO="never",
        )
        for run in range(3):
            proc = spawn(
                [sys.executable, "-m", "earwitness.cli", "worker"], env, tmp_path / f"w{run}.log"
            )
            if run < 2:
                assert proc.popen.wait(60) == -9, proc.output()
            else:
                wait_until(lambda: job(runtime, job_id).state == "failed", 60, "the job to fail")
                proc.stop()
        dead = job(runtime, job_id)
        assert dead.error == "worker died 2 times" and dead.worker_deaths == 2
        assert len(handlers.lines(f"suicide {job_id} ")) == 2
    finally:
        runtime.close()


def _expected_recording(runtime: Runtime, path: Path, minutes_ago: float) -> int:
    with runtime.db.session() as s:
        rec = Recording(
            state="expected",
            source_path=str(path),
            created_at=utcnow() - timedelta(minutes=minutes_ago),
        )
        s.add(rec)
        s.flush()
        return rec.id


def test_pbx_recording_is_waited_for_by_time_then_marked_missing(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data", demo="never", job_poll_s=0.05, recording_wait_minutes=0.05
    )
    runtime = Runtime.open(settings)
    worker = Worker(runtime.job_env(), poll_s=0.02)
    try:
        missing = tmp_path / "pbx" / "never.wav"
        rid = _expected_recording(runtime, missing, minutes_ago=0)
        job_id = runtime.submit("recording.ingest", {"recording_id": rid})
        assert worker.run_one()
        waiting = job(runtime, job_id)
        # Waiting does not use attempts up: still queued, attempt given back.
        assert waiting.state == "queued" and waiting.attempts == 0
        assert "not found" in waiting.message
        worker.start()
        wait_until(lambda: job(runtime, job_id).state == "failed", 30, "the wait to end")
        with runtime.db.session() as s:
            rec = s.get(Recording, rid)
            assert rec is not None and rec.state == "missing"
            assert rec.error is not None and str(missing) in rec.error
            assert "after hang-up; gave up waiting" in rec.error
        failed = job(runtime, job_id)
        assert failed.attempts == 1 and failed.error == rec.error
    finally:
        worker.stop()
        runtime.close()
