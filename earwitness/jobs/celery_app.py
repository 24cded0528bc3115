"""Celery as the executor of the job table (``EARWITNESS_WORKER_MODE=celery``).

The job table stays the source of truth for state, attempts, progress and results
(the Airflow pattern); a Celery message only says "job N may be runnable now":

- enqueue sends ``earwitness.run_job(N)`` to the queue of N's kind right after the
  enqueueing transaction commits (per-kind queues, so transcription workers can sit
  on bigger machines than indexing/QA workers);
- the task claims N through the table's compare-and-set, so a duplicate or late
  message is a no-op, and runs the same handler code as the inline worker;
- messages are acknowledged late and rejected when the worker process is lost, so
  the broker re-delivers them; on top of that every worker runs a sweeper that
  re-sends runnable jobs with no recent message (broker down at enqueue, Redis
  restarted without persistence, a worker killed with ``kill -9``: its lease runs
  out and the job is runnable again);
- a failed attempt is requeued in the table with the handler's back-off and sent
  again with that countdown.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue
from sqlalchemy import and_, or_, select, update

from earwitness.config import Settings
from earwitness.db import Database, redact_url
from earwitness.jobs import queue
from earwitness.jobs.registry import known_kinds, load_handler_modules
from earwitness.models import Job, utcnow

log = logging.getLogger(__name__)

TASK = "earwitness.run_job"
#: Longer delays are not handed to the broker as a countdown (Redis keeps such messages
#: unacknowledged in the worker's memory); the sweeper sends them when they are due.
MAX_COUNTDOWN_S = 60.0


def queue_for(settings: Settings, kind: str) -> str:
    """The Celery queue of a job kind: an explicit route, or prefix + the kind's first word."""
    return settings.celery_routes.get(kind) or settings.celery_queue_prefix + kind.split(".")[0]


def all_queues(settings: Settings) -> list[str]:
    load_handler_modules(settings.job_modules)
    return sorted({queue_for(settings, kind) for kind in known_kinds()})


class EwCelery(Celery):
    """A Celery app that knows the earwitness settings it was built from."""

    ew_settings: Settings


_APPS: dict[tuple[str, ...], EwCelery] = {}
_APPS_LOCK = threading.Lock()


def make_app(settings: Settings) -> EwCelery:
    """The Celery app for these settings (one per broker, queue naming and database)."""
    key = (
        settings.celery_broker_url,
        settings.celery_queue_prefix,
        repr(sorted(settings.celery_routes.items())),
        settings.resolved_database_url,
        repr(settings.job_modules),
    )
    with _APPS_LOCK:
        if key in _APPS:
            return _APPS[key]
        app = EwCelery("earwitness", broker=settings.celery_broker_url, set_as_current=False)
        app.ew_settings = settings
        queues = all_queues(settings)
        app.conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            task_ignore_result=True,
            task_default_queue=queues[0] if queues else "earwitness.default",
            # Each queue with an exchange and key of its own: a bare Queue(name) would be
            # bound to the default exchange and key, and every queue would get every job.
            task_queues=[
                Queue(name, Exchange(name, type="direct"), routing_key=name) for name in queues
            ],
            broker_connection_timeout=3,
            broker_connection_retry_on_startup=True,
            broker_transport_options={"socket_connect_timeout": 3, "socket_timeout": 10},
            worker_hijack_root_logger=False,
            worker_send_task_events=False,
        )

        @app.task(name=TASK, bind=True)
        def run_job(task: Any, job_id: int) -> str:
            return _executor(task.app).run(int(job_id))

        _APPS[key] = app
        return app


# -- sending ---------------------------------------------------------------------------


def _publish(app: EwCelery, job_id: int, kind: str, countdown: float) -> None:
    app.send_task(
        TASK,
        args=[job_id],
        queue=queue_for(app.ew_settings, kind),
        countdown=countdown if countdown > 0 else None,
        retry=False,
    )


class Dispatcher:
    """Sends committed jobs to the broker and records when (``jobs.dispatched_at``).

    A send that fails leaves the job ``queued`` with a message saying so; the sweeper of
    any worker re-sends it once the broker answers. Nothing is dropped silently.
    """

    def __init__(self, app: EwCelery, db: Database) -> None:
        self.app, self.db = app, db

    def __call__(self, jobs: list[queue.Dispatch]) -> None:
        now = utcnow()
        sent: list[int] = []
        for job in jobs:
            countdown = (job.run_after - now).total_seconds()
            if countdown > MAX_COUNTDOWN_S:
                continue  # sent by the sweeper when due
            try:
                _publish(self.app, job.job_id, job.kind, countdown)
                sent.append(job.job_id)
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.warning("job %s not sent to the broker: %s", job.job_id, reason)
                self._note_unsent(job.job_id, reason)
        if sent:
            with self.db.session() as session:
                session.execute(
                    update(Job)
                    .where(Job.id.in_(sent))
                    .values(dispatched_at=now)
                    .execution_options(synchronize_session=False)
                )

    def _note_unsent(self, job_id: int, reason: str) -> None:
        message = (
            f"not yet sent to the Celery broker ({reason}); a worker re-sends it when the "
            "broker is reachable"
        )
        with self.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(dispatched_at=None, message=message[:500])
                .execution_options(synchronize_session=False)
            )


def install(settings: Settings, db: Database) -> Dispatcher:
    """Route every job enqueued through ``db`` to Celery after commit."""
    dispatcher = Dispatcher(make_app(settings), db)
    queue.set_dispatcher(db.engine, dispatcher)
    return dispatcher


def sweep(app: EwCelery, db: Database) -> int:
    """Re-send runnable jobs whose last message is missing or stale; returns how many.

    Queued and due with no message for ``celery_redispatch_s`` (lost with a restarted
    broker, broker down at enqueue, a long back-off), or running with a lease that ran
    out and no message since (its worker died). Each re-send is claimed with a
    compare-and-set on ``dispatched_at``, so several sweepers send one message.
    """
    settings = app.ew_settings
    now = utcnow()
    stale = now - timedelta(seconds=settings.celery_redispatch_s)
    due = or_(
        and_(
            Job.state == "queued",
            Job.run_after <= now,
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale),
        ),
        and_(
            Job.state == "running",
            Job.locked_until < now,
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < Job.locked_until),
        ),
    )
    sent = 0
    with db.session() as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.dispatched_at).where(due).order_by(Job.id).limit(500)
        ).all()
    for job_id, kind, previous in rows:
        with db.session() as session:
            took = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.dispatched_at.is_(None)
                    if previous is None
                    else Job.dispatched_at == previous,
                )
                .values(dispatched_at=now)
                .execution_options(synchronize_session=False)
            )
            if took.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another sweeper sent it
        try:
            _publish(app, job_id, kind, 0)
            sent += 1
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            Dispatcher(app, db)._note_unsent(job_id, reason)
            log.warning("sweeper could not reach the broker: %s", reason)
            break
    if sent:
        log.info("sweeper re-sent %d job(s)", sent)
    return sent


class Sweeper:
    """A daemon thread running :func:`sweep` every few seconds in a worker's main process."""

    def __init__(self, app: EwCelery) -> None:
        self.app = app
        self.db = Database(app.ew_settings.resolved_database_url)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="earwitness-sweeper", daemon=True)

    def start(self) -> None:
        released = queue.release_dead_local_claims(self.db)
        if released:
            log.warning("requeued %d job(s) left running by a dead worker", released)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        interval = min(5.0, max(0.2, self.app.ew_settings.celery_redispatch_s / 2))
        while not self._stop.wait(interval):
            try:
                sweep(self.app, self.db)
            except Exception:  # database or broker hiccup: try again next round
                log.exception("sweeper round failed")


_SWEEPERS: list[Sweeper] = []


@signals.worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if isinstance(app, EwCelery):
        sweeper = Sweeper(app)
        sweeper.start()
        _SWEEPERS.append(sweeper)


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A forked pool child must not reuse the parent's database connections."""
    for sweeper in _SWEEPERS:
        sweeper.db.engine.dispose(close=False)
    for executor in _EXECUTORS.values():
        executor.runtime.db.engine.dispose(close=False)


# -- running ---------------------------------------------------------------------------


@dataclass
class _Executor:
    """What a worker process needs to run jobs: a runtime (schema, custody signing, blobs)
    and an inline Worker whose handler-running code is reused as is."""

    app: EwCelery
    runtime: Any
    worker: Any

    def run(self, job_id: int) -> str:
        identity = queue.worker_identity()
        db = self.runtime.db
        claim = queue.claim_job(db, job_id, identity, self.worker.lease_s)
        if claim is None:
            return "not runnable"  # done, held by a live worker, not due, or failed for good
        self.worker._execute(claim, identity)
        with db.session() as session:
            job = session.get(Job, job_id)
            state = job.state if job is not None else "gone"
            retry = (
                (job.kind, (job.run_after - utcnow()).total_seconds())
                if job is not None and state == "queued"
                else None
            )
        if retry is not None:  # a failed attempt with attempts left: send it again
            self._resend(job_id, *retry)
        return state

    def _resend(self, job_id: int, kind: str, countdown: float) -> None:
        dispatcher = Dispatcher(self.app, self.runtime.db)
        due = utcnow() + timedelta(seconds=max(0.0, countdown))
        dispatcher([queue.Dispatch(job_id, kind, due)])


_EXECUTORS: dict[int, _Executor] = {}
_EXEC_LOCK = threading.Lock()


def _executor(app: EwCelery) -> _Executor:
    """Built on the first task of each process (after any fork), then reused."""
    pid = os.getpid()
    with _EXEC_LOCK:
        found = _EXECUTORS.get(pid)
        if found is not None and found.app is app:
            return found
        from earwitness.jobs.worker import Worker
        from earwitness.runtime import Runtime

        runtime = Runtime.open(app.ew_settings)
        worker = Worker(
            runtime.job_env(),
            threads=0,
            lease_s=app.ew_settings.job_lease_s,
            poll_s=app.ew_settings.job_poll_s,
            extra_modules=app.ew_settings.job_modules,
        )
        _EXECUTORS[pid] = _Executor(app, runtime, worker)
        return _EXECUTORS[pid]


def worker_argv(
    settings: Settings, *, queues: list[str] | None, concurrency: int, pool: str
) -> list[str]:
    """Arguments of ``celery worker`` for ``earwitness worker`` in Celery mode."""
    names = queues or all_queues(settings)
    return [
        "worker",
        "--queues",
        ",".join(names),
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--hostname",
        f"earwitness-{os.getpid()}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


# -- health ----------------------------------------------------------------------------

_HEALTH_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
HEALTH_TTL_S = 3.0


def health(settings: Settings, db: Database) -> dict[str, Any]:
    """Broker reachable, workers answering, and every queue with waiting jobs consumed.

    Degraded (``ok`` false) when the broker is down, no worker answers, or a queue with
    runnable jobs has no consumer; ``problem`` names the queue. Cached for a few seconds:
    a worker ping waits for replies.
    """
    key = (settings.celery_broker_url, settings.celery_queue_prefix)
    cached = _HEALTH_CACHE.get(key)
    if cached is not None and time.monotonic() - cached[0] < HEALTH_TTL_S:
        return cached[1]
    app = make_app(settings)
    report: dict[str, Any] = {
        "mode": "celery",
        "broker": {"url": redact_url(settings.celery_broker_url), "ok": False},
    }
    waiting: dict[str, int] = {}
    try:
        with db.session() as session:
            rows = session.execute(
                select(Job.kind).where(Job.state == "queued", Job.run_after <= utcnow())
            ).all()
        for (kind,) in rows:
            name = queue_for(settings, kind)
            waiting[name] = waiting.get(name, 0) + 1
    except Exception as exc:
        report["database_error"] = str(exc).splitlines()[0]
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        report["broker"]["ok"] = True
    except Exception as exc:
        report["broker"]["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    consumers: dict[str, int] = {}
    workers = 0
    if report["broker"]["ok"]:
        try:
            replies = app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception as exc:
            replies = {}
            report["inspect_error"] = str(exc).splitlines()[0]
        ours = set(all_queues(settings))
        for _worker, queues in replies.items():
            names = {q.get("name") for q in queues} & ours
            if names:
                workers += 1
            for name in names:
                consumers[name] = consumers.get(name, 0) + 1
    report["workers"] = workers
    report["queues"] = {
        name: {"consumers": consumers.get(name, 0), "waiting": waiting.get(name, 0)}
        for name in sorted(set(all_queues(settings)) | set(waiting))
    }
    problem: str | None = None
    if not report["broker"]["ok"]:
        problem = f"Celery broker unreachable at {report['broker']['url']}"
    else:
        orphaned = [q for q, n in waiting.items() if n and not consumers.get(q)]
        if orphaned:
            problem = "no worker consumes " + ", ".join(
                f"queue {q} ({waiting[q]} job(s) waiting)" for q in sorted(orphaned)
            )
        elif workers == 0:
            problem = (
                "no Celery worker answered a ping (queues: "
                + ", ".join(sorted(report["queues"]))
                + ")"
            )
    report["ok"] = problem is None
    report["running"] = workers > 0
    if problem:
        report["problem"] = problem
    _HEALTH_CACHE[key] = (time.monotonic(), report)
    return report
