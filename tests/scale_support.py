"""Shared pieces of the scale-out tests (issue 16): test job handlers, real worker processes,
a private Redis, and Celery settings isolated per test (own PostgreSQL schema, own queue
prefix on a Redis database no other suite uses)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from earwitness.config import Settings, load_settings

#: Redis database of these tests on the machine's shared Redis: others use 0.
REDIS_DB = 11
SHARED_REDIS = f"redis://127.0.0.1:6379/{REDIS_DB}"

HANDLERS = textwrap.dedent(
    '''
    """Handlers of the scale-out tests; loaded through EARWITNESS_JOB_MODULES."""
    import os, time
    from pydantic import BaseModel
    from earwitness.jobs.registry import job_handler

    def note(line):
        with open(os.environ["EW_SCALE_LOG"], "a") as f:
            f.write(line + "\\n")
            f.flush()
            os.fsync(f.fileno())

    class Steps(BaseModel):
        steps: int

    @job_handler("scale.slow", max_attempts=5, payload=Steps)
    def slow(ctx, payload):
        note(f"start {ctx.job_id} {ctx.attempt} {os.getpid()}")
        for step in range(payload["steps"]):
            time.sleep(0.1)  # the work being simulated, not synchronisation
            ctx.progress(100.0 * (step + 1) / payload["steps"], f"step {step + 1}")
        note(f"done {ctx.job_id} {os.getpid()}")
        return {"steps": payload["steps"], "pid": os.getpid()}

    @job_handler("scale.flaky", max_attempts=4, backoff_s=0.05)
    def flaky(ctx, payload):
        note(f"flaky {ctx.job_id} {ctx.attempt}")
        if ctx.attempt < payload["succeed_on"]:
            raise RuntimeError(f"transient failure {ctx.attempt}")
        return {"attempt": ctx.attempt}

    @job_handler("scale.suicide", max_attempts=2)
    def suicide(ctx, payload):
        """A job that takes its worker down with it (a decoder crash, the OOM killer)."""
        note(f"suicide {ctx.job_id} {ctx.attempt} {os.getpid()}")
        os.kill(os.getpid(), 9)
    '''
)


@dataclass
class HandlerModule:
    env: dict[str, str]
    log: Path

    def lines(self, prefix: str = "") -> list[str]:
        return [ln for ln in self.log.read_text().splitlines() if ln.startswith(prefix)]


def install_handlers(tmp_path: Path) -> HandlerModule:
    """Write the handler module, import it here too (enqueue checks the kind)."""
    import importlib

    mod_dir = tmp_path / "handlers"
    mod_dir.mkdir(exist_ok=True)
    (mod_dir / "ew_scale_handlers.py").write_text(HANDLERS)
    log = tmp_path / "scale-jobs.log"
    log.touch()
    os.environ["EW_SCALE_LOG"] = str(log)
    if str(mod_dir) not in sys.path:
        sys.path.insert(0, str(mod_dir))
    sys.modules.pop("ew_scale_handlers", None)
    importlib.import_module("ew_scale_handlers")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(mod_dir), os.getcwd(), env.get("PYTHONPATH", "")]),
        EW_SCALE_LOG=str(log),
    )
    return HandlerModule(env, log)


def celery_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        database_url=database_url,
        worker_mode="celery",
        celery_broker_url=SHARED_REDIS,
        celery_queue_prefix=f"ewt{uuid.uuid4().hex[:8]}.",
        celery_redispatch_s=1.0,
        job_lease_s=3.0,
        job_poll_s=0.05,
        job_modules=["ew_scale_handlers"],
        demo="never",
    )
    values.update(overrides)
    return load_settings(**values)


def process_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = dict(base)
    env.update(
        EARWITNESS_DATA_DIR=str(settings.data_dir),
        EARWITNESS_DATABASE_URL=settings.resolved_database_url,
        EARWITNESS_WORKER_MODE=settings.worker_mode,
        EARWITNESS_CELERY_BROKER_URL=settings.celery_broker_url,
        EARWITNESS_CELERY_QUEUE_PREFIX=settings.celery_queue_prefix,
        EARWITNESS_CELERY_REDISPATCH_S=str(settings.celery_redispatch_s),
        EARWITNESS_JOB_LEASE_S=str(settings.job_lease_s),
        EARWITNESS_JOB_POLL_S=str(settings.job_poll_s),
        EARWITNESS_JOB_MODULES="[" + ",".join(f'"{m}"' for m in settings.job_modules) + "]",
        EARWITNESS_DEMO="never",
    )
    return env


@dataclass
class Proc:
    """A child process with its output in a file (read it when a test fails)."""

    popen: subprocess.Popen[bytes]
    out: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.out.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        """SIGKILL the process and everything it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill9()


def spawn(args: list[str], env: dict[str, str], out: Path) -> Proc:
    handle = out.open("ab")
    popen = subprocess.Popen(
        args, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle.close()
    return Proc(popen, out)


def start_celery_worker(
    settings: Settings,
    base_env: dict[str, str],
    out: Path,
    threads: int = 1,
    queues: list[str] | None = None,
) -> Proc:
    args = [sys.executable, "-m", "earwitness.cli", "worker", "--threads", str(threads)]
    if queues:
        args += ["--queues", ",".join(queues)]
    return spawn(args, process_env(settings, base_env), out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server of the test's own (the shared one on 6379 must never be restarted)."""

    port: int
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)  # waiting for the server socket to open
        raise AssertionError(f"redis-server on {self.port} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(free_port(), tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()
