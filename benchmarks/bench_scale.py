"""Scale-out (issue 16): Celery workers and API processes, measured side by side in one run.

- ``celery_cpu_jobs``: jobs/s of a CPU-bound handler (SHA-256 rounds, ~0.25 s each) with
  2 Celery worker processes (ours) vs 1 (baseline); PostgreSQL job table, Redis broker.
- ``celery_transcribe``: transcribe jobs/s on the demo calls (3 synthesised stereo calls,
  each transcribed twice) with 2 workers vs 1; includes each worker's first model load.
- ``api_calls`` / ``api_search``: requests/s of ``GET /api/calls`` and ``GET /api/search``
  against PostgreSQL behind 2 ``earwitness serve`` processes (ours) vs SQLite behind 1
  (baseline), the demo data in both, 8 client threads for a fixed time.

This machine has 2 cores (shared with the load generator and the database), so twice the
processes cannot give twice the throughput here: the figures show that the set-up scales
out without a loss, not how it scales on real hosts.

Needs PostgreSQL on 127.0.0.1:5432 (db ``test``) and Redis on 127.0.0.1:6379 (db 12).
Run: ``python -m benchmarks scale``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from earwitness.config import Settings, load_settings  # noqa: E402
from earwitness.jobs.queue import enqueue  # noqa: E402
from earwitness.models import Job, Recording  # noqa: E402
from earwitness.runtime import Runtime  # noqa: E402

PG = os.environ.get("EARWITNESS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BROKER = "redis://127.0.0.1:6379/12"
CPU_JOBS = 24
API_SECONDS = 8.0
API_THREADS = 8
KEY = "ew-bench-" + uuid.uuid4().hex

HANDLER = textwrap.dedent(
    '''
    import hashlib
    from earwitness.jobs.registry import job_handler

    @job_handler("bench.cpu", max_attempts=1)
    def cpu(ctx, payload):
        """About a quarter second of pure CPU per job."""
        digest = b"x"
        for _ in range(payload["rounds"]):
            digest = hashlib.sha256(digest).digest()
        return {"digest": digest.hex()}
    '''
)


@contextmanager
def pg_schema() -> Iterator[str]:
    admin = sa.create_engine(PG)
    schema = f"ew_bench_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def env_of(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(settings.data_dir.parent / "mods"), str(ROOT)]),
        EARWITNESS_DATA_DIR=str(settings.data_dir),
        EARWITNESS_DATABASE_URL=settings.resolved_database_url,
        EARWITNESS_WORKER_MODE=settings.worker_mode,
        EARWITNESS_CELERY_BROKER_URL=settings.celery_broker_url,
        EARWITNESS_CELERY_QUEUE_PREFIX=settings.celery_queue_prefix,
        EARWITNESS_JOB_MODULES='["ew_bench_handlers"]',
        EARWITNESS_DEMO="never",
        EARWITNESS_BOOTSTRAP_API_KEY=KEY,
    )
    env.update(extra or {})
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)  # polling the job table / a port
    raise RuntimeError(f"timed out waiting for {what}")


def celery_settings(root: Path, url: str) -> Settings:
    mods = root / "mods"
    mods.mkdir(parents=True, exist_ok=True)
    (mods / "ew_bench_handlers.py").write_text(HANDLER)
    if str(mods) not in sys.path:
        sys.path.insert(0, str(mods))
    return load_settings(
        data_dir=root / "data",
        database_url=url,
        worker_mode="celery",
        celery_broker_url=BROKER,
        celery_queue_prefix=f"ewb{uuid.uuid4().hex[:6]}.",
        job_modules=["ew_bench_handlers"],
        demo="never",
    )


def jobs_per_second(workers: int, submit: Callable[[Runtime], list[int]], what: str) -> float:
    """Start ``workers`` Celery worker processes, warm them, then time ``submit``'s jobs."""
    with tempfile.TemporaryDirectory(prefix="ew-bench-scale-") as tmp, pg_schema() as url:
        root = Path(tmp)
        settings = celery_settings(root, url)
        runtime = Runtime.open(settings)
        env = env_of(settings)
        procs = [
            spawn(
                [sys.executable, "-m", "earwitness.cli", "worker", "--threads", "1"],
                env,
                root / f"worker{n}.log",
            )
            for n in range(workers)
        ]
        try:
            warm = [runtime.submit("selfcheck", {"n": n}) for n in range(workers * 4)]
            wait_for(lambda: _all_done(runtime, warm), 120, "workers to start")
            t0 = time.perf_counter()
            ids = submit(runtime)
            wait_for(lambda: _all_done(runtime, ids), 1800, what)
            elapsed = time.perf_counter() - t0
            with runtime.db.session() as s:
                states = s.scalars(sa.select(Job.state).where(Job.id.in_(ids))).all()
            if any(state != "succeeded" for state in states):
                raise RuntimeError(f"{what}: not every job succeeded: {states}")
            return len(ids) / elapsed
        finally:
            stop(procs)
            runtime.close()


def _all_done(runtime: Runtime, ids: list[int]) -> bool:
    with runtime.db.session() as s:
        states = s.scalars(sa.select(Job.state).where(Job.id.in_(ids))).all()
    return len(states) == len(ids) and all(x in ("succeeded", "failed") for x in states)


def _cpu_rounds() -> int:
    """SHA-256 rounds that take about 0.25 s here."""
    import hashlib

    t0, n, digest = time.perf_counter(), 0, b"x"
    while time.perf_counter() - t0 < 0.25:
        for _ in range(10_000):
            digest = hashlib.sha256(digest).digest()
        n += 10_000
    return n


def submit_cpu(rounds: int) -> Callable[[Runtime], list[int]]:
    def submit(runtime: Runtime) -> list[int]:
        return [runtime.submit("bench.cpu", {"rounds": rounds}) for _ in range(CPU_JOBS)]

    return submit


def submit_demo_transcriptions(runtime: Runtime) -> list[int]:
    """The demo calls' recordings (ingested without transcription), each transcribed twice."""
    from earwitness.demo.loader import load_demo

    runtime.settings.worker_mode = "off"  # build the demo data; transcribe only below
    from earwitness.jobs.queue import set_dispatcher

    set_dispatcher(runtime.db.engine, None)
    load_demo(runtime)
    with runtime.db.session() as s:
        s.execute(sa.delete(Job))
        rids = s.scalars(sa.select(Recording.id)).all()
    from earwitness.jobs.celery_app import install

    runtime.settings.worker_mode = "celery"
    install(runtime.settings, runtime.db)
    ids = []
    with runtime.db.session() as s:
        for n in range(2):
            for rid in rids:
                job = enqueue(
                    s, "transcribe", {"recording_id": rid}, idempotency_key=f"bench:{rid}:{n}"
                )
                s.flush()
                ids.append(job.id)
    return ids


# -- API -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_rps(url: str, processes: int) -> dict[str, float]:
    """Demo data loaded once, then ``processes`` API servers on it, hammered per endpoint."""
    with tempfile.TemporaryDirectory(prefix="ew-bench-api-") as tmp:
        root = Path(tmp)
        db_url = url or f"sqlite:///{root / 'data' / 'earwitness.db'}"
        settings = load_settings(data_dir=root / "data", database_url=db_url, demo="never")
        env = env_of(settings, {"EARWITNESS_WORKER_MODE": "inline", "EARWITNESS_JOB_MODULES": "[]"})
        demo = subprocess.run(
            [sys.executable, "-m", "earwitness.cli", "demo"], env=env, capture_output=True
        )
        if demo.returncode != 0:
            raise RuntimeError(f"demo load failed: {demo.stdout[-2000:]!r}")
        ports = [free_port() for _ in range(processes)]
        procs = [
            spawn(
                [sys.executable, "-m", "earwitness.cli", "serve", "--port", str(port)],
                {**env, "EARWITNESS_WORKER_MODE": "off"},
                root / f"api{port}.log",
            )
            for port in ports
        ]
        try:
            for port in ports:
                wait_for(lambda p=port: _up(p), 120, f"API on {port}")  # type: ignore[misc]
            return {
                "calls": _hammer(ports, "/api/calls", {"limit": "50"}),
                "search": _hammer(ports, "/api/search", {"q": "rescue"}),
            }
        finally:
            stop(procs)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def _hammer(ports: list[int], path: str, params: dict[str, str]) -> float:
    done = [0] * API_THREADS
    errors: list[str] = []
    stop_at = time.perf_counter() + API_SECONDS

    def client(n: int) -> None:
        port = ports[n % len(ports)]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}) as c:
            while time.perf_counter() < stop_at:
                r = c.get(path, params=params, timeout=30)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(API_THREADS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    return sum(done) / (time.perf_counter() - t0)


def _line(name: str, ours: float, base: float, unit: str, what: str) -> str:
    ratio = ours / base
    return f"{name}: ours {ours:.2f} {unit}, baseline {base:.2f} {unit}, ratio {ratio:.2f} ({what})"


def run() -> list[str]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("Redis is needed on 127.0.0.1:6379")
    rounds = _cpu_rounds()
    cpu1 = jobs_per_second(1, submit_cpu(rounds), "CPU jobs, 1 worker")
    cpu2 = jobs_per_second(2, submit_cpu(rounds), "CPU jobs, 2 workers")
    tr1 = jobs_per_second(1, submit_demo_transcriptions, "transcriptions, 1 worker")
    tr2 = jobs_per_second(2, submit_demo_transcriptions, "transcriptions, 2 workers")
    sqlite = api_rps("", 1)
    with pg_schema() as url:
        pg = api_rps(url, 2)
    return [
        _line("celery_cpu_jobs", cpu2, cpu1, "jobs/s", "2 Celery workers vs 1"),
        _line("celery_transcribe", tr2, tr1, "jobs/s", "demo calls, 2 workers vs 1"),
        _line("api_calls", pg["calls"], sqlite["calls"], "req/s", "PG + 2 API vs SQLite + 1"),
        _line("api_search", pg["search"], sqlite["search"], "req/s", "PG + 2 API vs SQLite + 1"),
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
