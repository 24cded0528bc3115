"""Enqueue, claim and finish jobs on the job table.

Claiming is a compare-and-set ``UPDATE ... WHERE id = :id AND <claimable>``: on
PostgreSQL a concurrent claimer blocks on the row lock and then re-checks the
predicate, on SQLite writers are serialised, so on both exactly one worker wins.
A claim takes a lease; a worker that dies stops renewing it and the job becomes
claimable again when the lease runs out (or at once, when the dead worker was
on this host and its pid is gone). Such a re-claim is counted in ``worker_deaths``;
once the job has no attempts left it fails with "worker died N times" instead of
being retaken forever.

In Celery mode a dispatcher is registered for the engine: every job enqueued
through a session is sent to the broker right after that session commits (so a
worker never receives the id of a row it cannot see yet).
"""

from __future__ import annotations

import os
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, event, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from earwitness.db import Database
from earwitness.errors import NotFound
from earwitness.jobs.registry import require_handler
from earwitness.models import Job, utcnow

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Claim:
    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


@dataclass(frozen=True)
class Dispatch:
    """A job to hand to the executor once the enqueueing transaction has committed."""

    job_id: int
    kind: str
    run_after: datetime


#: Engine -> function sending committed jobs to Celery; absent for the inline worker.
Dispatcher = Callable[[list[Dispatch]], None]
_DISPATCHERS: weakref.WeakKeyDictionary[Engine, Dispatcher] = weakref.WeakKeyDictionary()
_PENDING = "earwitness.pending_dispatch"


def set_dispatcher(engine: Engine, dispatcher: Dispatcher | None) -> None:
    """Send jobs enqueued through ``engine`` to ``dispatcher`` after commit (None: stop)."""
    if dispatcher is None:
        _DISPATCHERS.pop(engine, None)
    else:
        _DISPATCHERS[engine] = dispatcher


def _after_commit(session: Session) -> None:
    pending: list[Dispatch] = session.info.pop(_PENDING, [])
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    dispatcher = _DISPATCHERS.get(engine)
    if pending and dispatcher is not None:
        dispatcher(pending)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _dispatch_after_commit(session: Session, job: Job) -> None:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine not in _DISPATCHERS:
        return
    # Marked sent in the enqueueing transaction, so a sweeper never re-sends a job whose
    # message is on its way; a send that fails clears it again.
    job.dispatched_at = utcnow()
    if _PENDING not in session.info:
        session.info[_PENDING] = []
        if not event.contains(session, "after_commit", _after_commit):
            event.listen(session, "after_commit", _after_commit)
            event.listen(session, "after_soft_rollback", _after_rollback_soft)
    session.info[_PENDING].append(Dispatch(job.id, job.kind, job.run_after))


def _after_rollback_soft(session: Session, previous: Any) -> None:
    if getattr(previous, "parent", None) is None:  # the outermost transaction: rows gone
        _after_rollback(session)


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    priority: int = 100,
    max_attempts: int | None = None,
    run_after: datetime | None = None,
) -> Job:
    """Add a job; with an idempotency key an existing job is returned instead of a twin.

    ``run_after``: not claimed before then (a follow-up retry two hours on, the next
    allowed calling hour); there is no separate scheduler, the claim query is one.
    ``max_attempts``: default the handler's declared value. An unknown kind or a payload
    its handler's model rejects raises BadInput and adds nothing.
    """
    spec = require_handler(kind)
    spec.check_payload(payload or {})
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=payload or {},
        idempotency_key=idempotency_key,
        priority=priority,
        max_attempts=max_attempts if max_attempts is not None else spec.max_attempts,
        run_after=run_after or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        # A concurrent enqueue with the same key won the race; return its job.
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return existing
    _dispatch_after_commit(session, job)
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def _claimable(now: datetime) -> Any:
    return or_(
        and_(Job.state == "queued", Job.run_after <= now),
        and_(Job.state == "running", Job.locked_until < now),
    )


def _try_claim(
    session: Session, job_id: int, worker: str, lease_s: float, now: datetime
) -> Claim | None:
    """Compare-and-set one job to ``running`` for ``worker``; None when someone else won.

    A running job whose lease ran out is being retaken from a dead worker: that counts in
    ``worker_deaths``, and with no attempts left the job fails instead of running again.
    """
    expired = and_(Job.state == "running", Job.locked_until < now)
    exhausted = session.execute(
        update(Job)
        .where(Job.id == job_id, expired, Job.attempts >= Job.max_attempts)
        .values(
            state="failed",
            worker_deaths=Job.worker_deaths + 1,
            locked_by=None,
            locked_until=None,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if exhausted.rowcount == 1:  # type: ignore[attr-defined]
        job = session.get(Job, job_id)
        assert job is not None
        session.refresh(job)
        job.error = f"worker died {job.worker_deaths} times (its lease ran out each time)"
        job.message = job.error
        session.flush()
        return None
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, _claimable(now))
        .values(
            state="running",
            locked_by=worker,
            locked_until=now + timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
            worker_deaths=Job.worker_deaths + case((Job.state == "running", 1), else_=0),
            started_at=now,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get(Job, job_id)
    assert job is not None
    session.refresh(job)
    return Claim(job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts)


def claim_next(db: Database, worker: str, lease_s: float, kinds: list[str]) -> Claim | None:
    """Take the next runnable job for this worker, or None."""
    now = utcnow()
    with db.session() as session:
        candidates = session.scalars(
            select(Job.id)
            .where(_claimable(now), Job.kind.in_(kinds))
            .order_by(Job.priority, Job.id)
            .limit(5)
        ).all()
    for job_id in candidates:
        with db.session() as session:
            claim = _try_claim(session, job_id, worker, lease_s, now)
        if claim is not None:
            return claim
    return None


def claim_job(db: Database, job_id: int, worker: str, lease_s: float) -> Claim | None:
    """Take this very job (the id a Celery message carries), or None when it is not runnable:
    already done, held by a live worker, cancelled, not due yet, or failed for good."""
    with db.session() as session:
        return _try_claim(session, job_id, worker, lease_s, utcnow())


def renew_lease(
    db: Database, claim: Claim, worker: str, lease_s: float, progress: float | None, message: str
) -> bool:
    """Extend the lease (and store progress); False if the job is no longer ours."""
    values: dict[str, Any] = {"locked_until": utcnow() + timedelta(seconds=lease_s)}
    if progress is not None:
        values["progress"] = max(0.0, min(100.0, progress))
        values["message"] = message[:500]
    with db.session() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.locked_by == worker, Job.state == "running")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def finish(db: Database, claim: Claim, worker: str, result: dict[str, Any] | None) -> bool:
    """Mark success once; a worker whose lease was taken over cannot overwrite the winner."""
    with db.session() as session:
        res = session.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.locked_by == worker, Job.state == "running")
            .values(
                state="succeeded",
                progress=100.0,
                result=result,
                finished_at=utcnow(),
                locked_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def fail(
    db: Database,
    claim: Claim,
    worker: str,
    error: str,
    *,
    retry_in_s: float | None,
    count_attempt: bool = True,
) -> None:
    """Record an error; requeue with a delay while attempts remain and the error is transient.

    ``count_attempt=False``: a wait (the handler said "not yet", e.g. a recording file that
    is still being written), which gives the attempt back instead of using it up.
    """
    values: dict[str, Any] = {"error": error[:4000], "locked_until": None, "locked_by": None}
    if retry_in_s is not None and not count_attempt:
        values.update(
            state="queued",
            run_after=utcnow() + timedelta(seconds=retry_in_s),
            attempts=Job.attempts - 1,
            message=error[:500],
        )
    elif retry_in_s is not None and claim.attempt < claim.max_attempts:
        values.update(state="queued", run_after=utcnow() + timedelta(seconds=retry_in_s))
    else:
        values.update(state="failed", finished_at=utcnow())
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.locked_by == worker, Job.state == "running")
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_local_claims(db: Database) -> int:
    """Requeue jobs held by workers of this host whose process no longer exists.

    Saves waiting out the lease after a crash on a single machine; claims of
    other hosts are left to lease expiry.
    """
    host = socket.gethostname()
    released = 0
    with db.session() as session:
        running = session.scalars(
            select(Job).where(Job.state == "running", Job.locked_by.like(f"{host}:%"))
        ).all()
        for job in running:
            parts = (job.locked_by or "").split(":")
            if len(parts) >= 2 and parts[1].isdigit() and not _pid_alive(int(parts[1])):
                job.worker_deaths += 1
                job.locked_by, job.locked_until, job.dispatched_at = None, None, None
                if job.attempts >= job.max_attempts:
                    job.state, job.finished_at = "failed", utcnow()
                    job.error = f"worker died {job.worker_deaths} times"
                    job.message = job.error
                else:
                    job.state, job.run_after = "queued", utcnow()
                    job.message = "requeued: previous worker process died"
                released += 1
    return released
