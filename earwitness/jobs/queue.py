"""Enqueue, claim and finish jobs on the job table.

Claiming is a compare-and-set ``UPDATE ... WHERE id = :id AND <claimable>``: on
PostgreSQL a concurrent claimer blocks on the row lock and then re-checks the
predicate, on SQLite writers are serialised, so on both exactly one worker wins.
A claim takes a lease; a worker that dies stops renewing it and the job becomes
claimable again when the lease runs out (or at once, when the dead worker was
on this host and its pid is gone).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from earwitness.db import Database
from earwitness.errors import NotFound
from earwitness.models import Job, utcnow

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Claim:
    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    priority: int = 100,
    max_attempts: int = 3,
    run_after: datetime | None = None,
) -> Job:
    """Add a job; with an idempotency key an existing job is returned instead of a twin.

    ``run_after``: not claimed before then (a follow-up retry two hours on, the next
    allowed calling hour); there is no separate scheduler, the claim query is one.
    """
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=payload or {},
        idempotency_key=idempotency_key,
        priority=priority,
        max_attempts=max_attempts,
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
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, _claimable(now))
                .values(
                    state="running",
                    locked_by=worker,
                    locked_until=now + timedelta(seconds=lease_s),
                    attempts=Job.attempts + 1,
                    started_at=now,
                    error=None,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                job = session.get(Job, job_id)
                assert job is not None
                session.refresh(job)
                return Claim(job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts)
    return None


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


def fail(db: Database, claim: Claim, worker: str, error: str, *, retry_in_s: float | None) -> None:
    """Record an error; requeue with a delay while attempts remain and the error is transient."""
    values: dict[str, Any] = {"error": error[:4000], "locked_until": None, "locked_by": None}
    if retry_in_s is not None and claim.attempt < claim.max_attempts:
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
                job.state, job.locked_by, job.locked_until = "queued", None, None
                job.run_after = utcnow()
                job.message = "requeued: previous worker process died"
                released += 1
    return released
