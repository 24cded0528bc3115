"""What one running earwitness process holds: settings, database, blob store, worker, PBX link.

The API and the CLI both build a Runtime, so start-up (schema upgrade, bootstrap
key, worker, tracker) happens the same way whichever front door is used.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.evidence import signing
from earwitness.evidence.store import BlobStore
from earwitness.jobs import enqueue
from earwitness.jobs.queue import set_dispatcher
from earwitness.jobs.registry import JobEnv, load_handler_modules
from earwitness.jobs.worker import Worker
from earwitness.migrations import upgrade
from earwitness.recordings.intake import register_existing_recordings

log = logging.getLogger(__name__)


class Service(Protocol):
    """A long-running part (PBX tracker, ...) the runtime starts, stops and reports on."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


@dataclass
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    worker: Worker | None = None
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Connect and upgrade the schema; raises one clear error when storage is unusable."""
        db = Database(settings.resolved_database_url)
        db.ping()
        upgrade(db.engine)
        signing.attach(db.engine, settings)  # every custody entry through this db is signed
        runtime = cls(settings, db, BlobStore(settings.blob_dir))
        # Every kind known up front: enqueue refuses unknown kinds and uses each handler's
        # declared max_attempts.
        load_handler_modules(settings.job_modules)
        if settings.worker_mode == "celery":
            from earwitness.jobs.celery_app import install

            install(settings, db)  # jobs go to the broker once their transaction commits
        runtime._bootstrap_key()
        with db.session() as session:  # data dirs from before recordings were evidence
            register_existing_recordings(session)
        if settings.ami_enabled:
            runtime.services["ami"] = runtime._tracker_gate()
        return runtime

    def _tracker_gate(self) -> Service:
        """The PBX tracker behind a leader lock: one tracker per PBX across all processes
        (``serve`` instances, ``earwitness tracker``); the others stand by."""
        from earwitness.locks import LeaderGate, leader_lock
        from earwitness.telephony.service import PbxService

        settings = self.settings
        name = f"ami-tracker:{settings.ami_host}:{settings.ami_port}"
        lock = leader_lock(self.db.engine, name, settings.data_dir)
        return LeaderGate(
            name,
            lock,
            lambda: PbxService(settings, self.db, submit=self.submit),
            check_s=settings.leader_check_s,
        )

    def _bootstrap_key(self) -> None:
        """``EARWITNESS_BOOTSTRAP_API_KEY`` on an empty user table: an admin holding it."""
        from earwitness.accounts.bootstrap import bootstrap_key_admin

        secret = self.settings.bootstrap_api_key
        if secret is None:
            return
        with self.db.session() as session:
            bootstrap_key_admin(session, secret.get_secret_value())

    def start_worker(self) -> None:
        if self.settings.worker_mode != "inline" or self.settings.worker_threads == 0:
            return
        self.worker = Worker(
            self.job_env(),
            threads=self.settings.worker_threads,
            lease_s=self.settings.job_lease_s,
            poll_s=self.settings.job_poll_s,
            extra_modules=self.settings.job_modules,
        )
        self.worker.start()

    def job_env(self) -> JobEnv:
        return JobEnv(self.settings, self.db, self.blobs, self.submit)

    def start_services(self) -> None:
        self._prepare_sla_rollups()
        for name, service in self.services.items():
            log.info("starting %s", name)
            service.start()

    def _prepare_sla_rollups(self) -> None:
        """Reports read roll-ups; build them before serving (see ``prepare_rollups``). A
        failure only costs speed, so it is logged and start-up goes on."""
        from earwitness.telephony.persist import SlaDefaults
        from earwitness.telephony.sla_sql import prepare_rollups

        defaults = SlaDefaults(self.settings.sla_rings, self.settings.sla_cadence)
        try:
            with self.db.session() as session:
                if not prepare_rollups(session, defaults):
                    log.warning("SLA roll-ups not built at start (database busy): built on use")
        except Exception:
            log.exception("could not build the SLA roll-ups; reports build them on use")

    def submit(
        self, kind: str, payload: dict[str, Any], *, idempotency_key: str | None = None
    ) -> int:
        """Enqueue a job and wake the local worker; returns the job id."""
        with self.db.session() as session:
            job = enqueue(session, kind, payload, idempotency_key=idempotency_key)
            job_id = job.id
        if self.worker is not None:
            self.worker.notify()
        return job_id

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        try:
            self.db.ping()
            report["database"] = {"ok": True, "dialect": self.db.engine.dialect.name}
        except Exception as exc:
            report["database"] = {"ok": False, "error": str(exc)}
        if self.settings.worker_mode == "celery":
            from earwitness.jobs import celery_app

            report["worker"] = celery_app.health(self.settings, self.db)
        elif self.worker is None:
            report["worker"] = {
                "ok": self.settings.worker_mode != "inline",
                "mode": self.settings.worker_mode,
                "running": False,
            }
        else:
            report["worker"] = {
                "ok": self.worker.alive,
                "mode": "inline",
                "running": self.worker.alive,
                "processed": self.worker.processed,
                "last_error": self.worker.last_error,
            }
        for name, service in self.services.items():
            report[name] = service.health()
        if "ami" not in report:
            report["ami"] = {"ok": True, "configured": False}
        return report

    def close(self) -> None:
        for service in self.services.values():
            service.stop()
        if self.worker is not None:
            self.worker.stop()
        set_dispatcher(self.db.engine, None)
        self.db.dispose()


@contextmanager
def configured_runtime() -> Iterator[Runtime]:
    """The runtime a CLI command works on: settings from the environment/TOML, closed after."""
    from earwitness.config import load_settings

    runtime = Runtime.open(load_settings())
    try:
        yield runtime
    finally:
        runtime.close()


#: How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
#: ``serve`` runs latency-bound threads (the AMI loop, the HTTP loop) beside CPU-bound ones
#: (the tracker's writer, the in-process worker); each hand-over of the GIL to the former
#: cost up to 5 ms, many times per AMI burst. 1 ms halved the wallboard's p99 in an A/B
#: of ``python -m benchmarks ingest`` (issue 17); threads that compute in C (Whisper, hashes)
#: release the GIL anyway.
SWITCH_INTERVAL_S = 0.001


def settle_process() -> None:
    """Set up a long-running process (``serve``, ``tracker``) for steady latency, once set up.

    - What start-up allocated (modules, the app, ORM mappers: ~200k objects) is put beyond
      the garbage collector: a full collection walked all of it, a 0.2-0.5 s pause of every
      thread at the first burst of calls, the worst case of AMI event -> wallboard (issue
      17). Objects made later are collected as before.
    - The GIL switch interval becomes :data:`SWITCH_INTERVAL_S`.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
