"""Durable jobs: atomic claims, retries, leases, and recovery after kill -9 of a real worker."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.jobs import enqueue, get_job
from earwitness.jobs import queue as jobqueue
from earwitness.jobs.worker import Worker
from earwitness.models import Job, utcnow
from earwitness.runtime import Runtime

HANDLERS = textwrap.dedent(
    '''
    """Handlers used only by tests; loaded through EARWITNESS_JOB_MODULES."""
    import os, time
    from earwitness.jobs.registry import job_handler
    from earwitness.errors import BadInput

    LOG = os.environ["EW_TEST_LOG"]

    def note(line):
        with open(LOG, "a") as f:
            f.write(line + "\\n")
            f.flush()
            os.fsync(f.fileno())

    @job_handler("test.slow", max_attempts=3)
    def slow(ctx, payload):
        note(f"start {ctx.job_id} {ctx.attempt} {os.getpid()}")
        for step in range(payload["steps"]):
            time.sleep(0.1)  # the work being simulated, not synchronisation
            ctx.progress(100.0 * (step + 1) / payload["steps"], f"step {step + 1}")
        note(f"done {ctx.job_id} {os.getpid()}")
        return {"steps": payload["steps"]}

    @job_handler("test.quick", max_attempts=1)
    def quick(ctx, payload):
        note(f"ran {ctx.job_id} {os.getpid()}")
        return {"n": payload["n"]}

    @job_handler("test.flaky", max_attempts=3, backoff_s=0.05)
    def flaky(ctx, payload):
        note(f"flaky {ctx.job_id} {ctx.attempt}")
        if ctx.attempt < payload["succeed_on"]:
            raise RuntimeError(f"transient failure {ctx.attempt}")
        return {"attempt": ctx.attempt}

    @job_handler("test.bad", max_attempts=3)
    def bad(ctx, payload):
        note(f"bad {ctx.job_id} {ctx.attempt}")
        raise BadInput("the input file is not audio")
    '''
)


@pytest.fixture
def handler_env(tmp_path: Path) -> dict[str, str]:
    mod_dir = tmp_path / "handlers"
    mod_dir.mkdir()
    (mod_dir / "ew_test_handlers.py").write_text(HANDLERS)
    log = tmp_path / "job.log"
    log.touch()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=f"{mod_dir}{os.pathsep}{env.get('PYTHONPATH', '')}",
        EW_TEST_LOG=str(log),
        EARWITNESS_JOB_MODULES='["ew_test_handlers"]',
    )
    # The in-process tests import the same module (enqueue refuses kinds it does not know).
    sys.path.insert(0, str(mod_dir))
    os.environ["EW_TEST_LOG"] = str(log)
    importlib.import_module("ew_test_handlers")
    yield env
    sys.path.remove(str(mod_dir))
    sys.modules.pop("ew_test_handlers", None)


def log_lines(env: dict[str, str]) -> list[str]:
    return Path(env["EW_TEST_LOG"]).read_text().splitlines()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_worker(
    settings: Settings, env: dict[str, str], lease_s: float = 30.0
) -> subprocess.Popen:
    worker_env = dict(env)
    worker_env.update(
        EARWITNESS_DATABASE_URL=settings.resolved_database_url,
        EARWITNESS_DATA_DIR=str(settings.data_dir),
        EARWITNESS_JOB_POLL_S="0.05",
        EARWITNESS_JOB_LEASE_S=str(lease_s),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "earwitness.cli", "worker"],
        env=worker_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def job_state(db: Database, job_id: int) -> Job:
    with db.session() as s:
        return get_job(s, job_id)


def test_kill_9_mid_job_then_restart_completes_it_exactly_once(
    runtime: Runtime, handler_env: dict[str, str]
) -> None:
    job_id = runtime.submit("test.slow", {"steps": 30})
    first = start_worker(runtime.settings, handler_env)
    try:
        wait_for(
            lambda: job_state(runtime.db, job_id).progress >= 20,
            60,
            "the first worker to make progress",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    mid = job_state(runtime.db, job_id)
    assert mid.state == "running" and mid.finished_at is None
    second = start_worker(runtime.settings, handler_env)
    try:
        wait_for(lambda: job_state(runtime.db, job_id).state == "succeeded", 60, "job to finish")
    finally:
        second.terminate()
        second.wait(10)
    done = job_state(runtime.db, job_id)
    lines = log_lines(handler_env)
    starts = [ln for ln in lines if ln.startswith(f"start {job_id} ")]
    dones = [ln for ln in lines if ln.startswith(f"done {job_id} ")]
    assert len(starts) == 2, lines  # killed attempt + resumed attempt
    assert len(dones) == 1, lines  # completed exactly once
    assert dones[0].split()[2] == str(second.pid)
    assert done.attempts == 2 and done.result == {"steps": 30} and done.progress == 100.0


def test_two_workers_never_run_a_job_twice(runtime: Runtime, handler_env: dict[str, str]) -> None:
    ids = [runtime.submit("test.quick", {"n": n}) for n in range(40)]
    workers = [start_worker(runtime.settings, handler_env) for _ in range(2)]
    try:
        wait_for(
            lambda: all(job_state(runtime.db, i).state == "succeeded" for i in ids),
            90,
            "all jobs to succeed",
        )
    finally:
        for w in workers:
            w.terminate()
            w.wait(10)
    ran = [ln.split()[1] for ln in log_lines(handler_env) if ln.startswith("ran ")]
    assert sorted(map(int, ran)) == sorted(ids), "each job must run exactly once"


def test_transient_errors_retry_with_backoff_then_succeed(
    runtime: Runtime, handler_env: dict[str, str]
) -> None:
    worker = Worker(runtime.job_env(), threads=1, poll_s=0.02, extra_modules=["ew_test_handlers"])
    job_id = runtime.submit("test.flaky", {"succeed_on": 3})
    worker.start()
    try:
        wait_for(lambda: job_state(runtime.db, job_id).state == "succeeded", 30, "flaky job")
    finally:
        worker.stop()
    job = job_state(runtime.db, job_id)
    assert job.attempts == 3 and job.result == {"attempt": 3}
    assert [ln for ln in log_lines(handler_env) if ln.startswith("flaky")] == [
        f"flaky {job_id} 1",
        f"flaky {job_id} 2",
        f"flaky {job_id} 3",
    ]


def test_bad_input_fails_once_without_retry(runtime: Runtime, handler_env: dict[str, str]) -> None:
    worker = Worker(runtime.job_env(), threads=1, poll_s=0.02, extra_modules=["ew_test_handlers"])
    job_id = runtime.submit("test.bad", {})
    worker.start()
    try:
        wait_for(lambda: job_state(runtime.db, job_id).state == "failed", 30, "bad job to fail")
    finally:
        worker.stop()
    job = job_state(runtime.db, job_id)
    assert job.attempts == 1 and job.error == "the input file is not audio"


def test_expired_lease_of_another_host_is_taken_over(
    runtime: Runtime, handler_env: dict[str, str]
) -> None:
    # test.slow declares 3 attempts: a lease running out uses one up (test_scale_jobs.py
    # covers the cap).
    job_id = runtime.submit("test.slow", {"steps": 1})
    claim = jobqueue.claim_next(runtime.db, "otherhost:1:dead", 60, ["test.slow"])
    assert claim is not None and claim.job_id == job_id
    # Another worker cannot take a job whose lease is still valid ...
    assert jobqueue.claim_next(runtime.db, "me:2:x", 60, ["test.slow"]) is None
    # ... but can once the lease has run out (a host that died cannot renew it).
    with runtime.db.session() as s:
        s.execute(
            update(Job).where(Job.id == job_id).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    retaken = jobqueue.claim_next(runtime.db, "me:2:x", 60, ["test.slow"])
    assert retaken is not None and retaken.attempt == 2
    # The old holder's late completion is refused: no double completion.
    assert not jobqueue.finish(runtime.db, claim, "otherhost:1:dead", {"late": True})
    assert jobqueue.finish(runtime.db, retaken, "me:2:x", {"n": 1})
    assert job_state(runtime.db, job_id).result == {"n": 1}


def test_idempotency_key_returns_the_existing_job(runtime: Runtime) -> None:
    with runtime.db.session() as s:
        a = enqueue(s, "selfcheck", {"echo": 1}, idempotency_key="rec-7")
        a_id = a.id
    with runtime.db.session() as s:
        b = enqueue(s, "selfcheck", {"echo": 2}, idempotency_key="rec-7")
        assert b.id == a_id and b.payload == {"echo": 1}
