"""The in-process worker: threads that claim jobs from the table and run their handlers.

``earwitness serve`` runs it inside the API process (embedded default);
``earwitness worker`` runs it alone (several hosts may run one each).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from earwitness.db import Database
from earwitness.errors import BadInput, EarwitnessError
from earwitness.jobs import queue
from earwitness.jobs.registry import (
    JobEnv,
    NotYet,
    get_handler,
    known_kinds,
    load_handler_modules,
)

log = logging.getLogger(__name__)


class JobLost(EarwitnessError):
    """The job's lease was taken by another worker or the job was cancelled."""


@dataclass
class _RunningJob:
    """The JobContext handed to a handler; progress is written through the lease heartbeat."""

    claim: queue.Claim
    worker: Worker
    identity: str
    _percent: float | None = None
    _message: str = ""
    _last_write: float = 0.0
    lost: threading.Event = field(default_factory=threading.Event)

    @property
    def env(self) -> JobEnv:
        return self.worker.env

    @property
    def job_id(self) -> int:
        return self.claim.job_id

    @property
    def attempt(self) -> int:
        return self.claim.attempt

    def progress(self, percent: float, message: str = "") -> None:
        if self.lost.is_set():
            raise JobLost(f"job {self.job_id} is no longer held by this worker")
        self._percent, self._message = percent, message
        if time.monotonic() - self._last_write >= 0.5:
            self.heartbeat()

    def heartbeat(self) -> None:
        self._last_write = time.monotonic()
        ok = queue.renew_lease(
            self.worker.db,
            self.claim,
            self.identity,
            self.worker.lease_s,
            self._percent,
            self._message,
        )
        if not ok:
            self.lost.set()


class Worker:
    """Polls the job table with ``threads`` threads until stopped."""

    def __init__(
        self,
        env: JobEnv,
        *,
        threads: int = 1,
        lease_s: float = 60.0,
        poll_s: float = 0.5,
        extra_modules: list[str] | None = None,
    ) -> None:
        self.env = env
        self.db: Database = env.db
        self.threads = threads
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.identity = queue.worker_identity()
        load_handler_modules(extra_modules or [])
        self.kinds = known_kinds()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processed = 0
        self.last_error: str | None = None

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        released = queue.release_dead_local_claims(self.db)
        if released:
            log.warning("requeued %d job(s) left running by a dead worker", released)
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"earwitness-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake idle threads now (called after enqueue in the same process)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_one()
            except Exception as exc:  # database hiccup: keep the thread alive
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("worker loop error")
                ran = False
            if not ran:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def run_one(self) -> bool:
        """Claim and run one job; False when there was nothing to do."""
        claim = queue.claim_next(self.db, self.identity, self.lease_s, self.kinds)
        if claim is None:
            return False
        self._execute(claim)
        return True

    def _execute(self, claim: queue.Claim, identity: str | None = None) -> None:
        """Run a claimed job to success, a retry, or a permanent failure.

        ``identity``: the claim's holder when it is not this worker's own (a Celery task
        claims under an identity of its own, so two tasks in one process stay apart).
        """
        me = identity or self.identity
        spec = get_handler(claim.kind)
        if spec is None:  # only reachable in Celery mode, where the message names any job
            queue.fail(
                self.db, claim, me, f"no handler for job kind {claim.kind!r}", retry_in_s=None
            )
            return
        try:
            spec.check_payload(claim.payload)
        except BadInput as exc:
            queue.fail(self.db, claim, me, exc.detail, retry_in_s=None)
            return
        ctx = _RunningJob(claim, self, me)
        beat_stop = threading.Event()

        def beat() -> None:
            while not beat_stop.wait(max(0.2, self.lease_s / 3)):
                ctx.heartbeat()

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        result: dict[str, Any] | None = None
        try:
            log.info("job %s (%s) attempt %d started", claim.job_id, claim.kind, claim.attempt)
            result = spec.func(ctx, claim.payload)
        except BadInput as exc:  # the input will not get better by retrying
            queue.fail(self.db, claim, me, exc.detail, retry_in_s=None)
            log.warning("job %s failed permanently: %s", claim.job_id, exc.detail)
            return
        except NotYet as exc:
            queue.fail(
                self.db, claim, me, exc.reason, retry_in_s=exc.retry_in_s, count_attempt=False
            )
            log.info("job %s waits %.1fs: %s", claim.job_id, exc.retry_in_s, exc.reason)
            return
        except JobLost:
            log.warning("job %s lost its lease; abandoning this attempt", claim.job_id)
            return
        except Exception as exc:
            delay = spec.backoff_s * (2 ** (claim.attempt - 1))
            detail = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            queue.fail(self.db, claim, me, detail, retry_in_s=delay)
            self.last_error = f"job {claim.job_id}: {type(exc).__name__}: {exc}"
            log.warning("job %s attempt %d failed: %s", claim.job_id, claim.attempt, exc)
            return
        finally:
            beat_stop.set()
            beater.join()
        if queue.finish(self.db, claim, me, result):
            self.processed += 1
            log.info("job %s (%s) succeeded", claim.job_id, claim.kind)
        else:
            log.warning("job %s finished after losing its lease; result discarded", claim.job_id)
