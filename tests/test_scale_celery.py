"""PostgreSQL + Celery with real ``celery worker`` processes (issue 16).

Each test has its own PostgreSQL schema, its own Celery queue prefix on Redis database
11 of the shared Redis (or a private ``redis-server`` when Redis itself is restarted),
and workers started as ``earwitness worker`` child processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from earwitness.config import Settings
from earwitness.jobs import get_job
from earwitness.jobs.celery_app import all_queues, queue_for
from earwitness.models import Job
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client
from tests.conftest import PG_ADMIN_URL, _postgres_schema
from tests.polling import wait_until
from tests.scale_support import (
    SHARED_REDIS,
    HandlerModule,
    PrivateRedis,
    Proc,
    celery_settings,
    install_handlers,
    private_redis,
    start_celery_worker,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_schema()


@pytest.fixture
def handlers(tmp_path: Path) -> HandlerModule:
    return install_handlers(tmp_path)


class Cluster:
    """An API runtime in this process plus worker processes, torn down together."""

    def __init__(self, tmp_path: Path, settings: Settings, handlers: HandlerModule) -> None:
        self.tmp_path, self.settings, self.handlers = tmp_path, settings, handlers
        self.runtime = Runtime.open(settings)
        self.workers: list[Proc] = []

    def worker(self, threads: int = 1, queues: list[str] | None = None) -> Proc:
        n = len(self.workers)
        proc = start_celery_worker(
            self.settings, self.handlers.env, self.tmp_path / f"worker{n}.log", threads, queues
        )
        self.workers.append(proc)
        return proc

    def job(self, job_id: int) -> Job:
        with self.runtime.db.session() as s:
            return get_job(s, job_id)

    def states(self, ids: list[int]) -> list[str]:
        with self.runtime.db.session() as s:
            return [get_job(s, i).state for i in ids]

    def all_succeeded(self, ids: list[int]) -> bool:
        return all(state == "succeeded" for state in self.states(ids))

    def logs(self) -> str:
        return "\n".join(f"--- {w.out.name}\n{w.output()}" for w in self.workers)

    def close(self) -> None:
        for proc in self.workers:
            proc.stop()
        self.runtime.close()
        if self.settings.celery_broker_url == SHARED_REDIS:
            # The test's queues and Kombu's bindings of them (its prefix is unique).
            client = redis.Redis.from_url(SHARED_REDIS)
            keys = list(client.scan_iter(f"*{self.settings.celery_queue_prefix}*"))
            client.delete(*all_queues(self.settings), *keys)
            client.close()


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, handlers: HandlerModule) -> Iterator[Cluster]:
    c = Cluster(tmp_path, celery_settings(tmp_path, pg_url), handlers)
    try:
        yield c
    finally:
        c.close()


def health(api: TestClient) -> dict[str, Any]:
    return api.get("/api/health").json()  # type: ignore[no-any-return]


def test_jobs_run_on_celery_workers_and_health_names_an_unserved_queue(
    cluster: Cluster, handlers: HandlerModule
) -> None:
    with api_client(cluster.runtime) as api:
        slow = cluster.runtime.submit("scale.slow", {"steps": 3})
        queue_name = queue_for(cluster.settings, "scale.slow")
        # No worker yet: degraded, naming the queue with work waiting.
        body = wait_until(lambda: (b := health(api))["status"] == "degraded" and b, 10, "503")
        assert (
            f"no worker consumes queue {queue_name} (1 job(s) waiting)" in body["worker"]["problem"]
        )
        assert body["worker"]["broker"]["ok"] is True and body["worker"]["workers"] == 0
        flaky = cluster.runtime.submit("scale.flaky", {"succeed_on": 3})
        other = cluster.runtime.submit("selfcheck", {"echo": 1})  # another kind, another queue
        cluster.worker(threads=2, queues=[queue_name])  # this worker serves one queue only
        wait_until(lambda: cluster.all_succeeded([slow, flaky]), 90, "jobs on Celery")
        out = api.get(f"/api/jobs/{slow}").json()
        assert out["state"] == "succeeded" and out["progress"] == 100.0
        assert out["result"]["steps"] == 3 and out["result"]["pid"] == cluster.workers[0].pid
        # Retried with the handler's back-off through the table, re-sent to Celery each time.
        assert cluster.job(flaky).attempts == 3 and cluster.job(flaky).result == {"attempt": 3}
        assert handlers.lines(f"flaky {flaky} ") == [f"flaky {flaky} {n}" for n in (1, 2, 3)]
        # The selfcheck job was not delivered to the scale queue's worker: still waiting,
        # and health names its queue.
        assert cluster.job(other).state == "queued"
        selfcheck_queue = queue_for(cluster.settings, "selfcheck")
        body = wait_until(
            lambda: (
                (b := health(api))["status"] == "degraded"
                and selfcheck_queue in b["worker"].get("problem", "")
                and b
            ),
            15,
            "the selfcheck queue named",
        )
        assert (
            f"no worker consumes queue {selfcheck_queue} (1 job(s) waiting)"
            == body["worker"]["problem"]
        )
        cluster.worker()  # all queues
        wait_until(lambda: cluster.all_succeeded([other]), 60, "the selfcheck job")
        ok = wait_until(lambda: (b := health(api))["status"] == "ok" and b, 15, "health ok")
        assert ok["worker"]["workers"] == 2
        assert ok["worker"]["queues"][queue_name]["consumers"] == 2
        assert ok["worker"]["queues"][selfcheck_queue]["consumers"] == 1


def test_kill_9_of_a_worker_mid_job_completes_exactly_once_on_another(
    cluster: Cluster, handlers: HandlerModule
) -> None:
    first = cluster.worker()
    job_id = cluster.runtime.submit("scale.slow", {"steps": 40})
    wait_until(lambda: cluster.job(job_id).progress >= 20, 60, "progress on the first worker")
    second = cluster.worker()
    assert handlers.lines(f"start {job_id} ") == [f"start {job_id} 1 {first.pid}"]
    first.kill9()
    wait_until(lambda: cluster.all_succeeded([job_id]), 90, "the job on the second worker")
    done = cluster.job(job_id)
    assert handlers.lines(f"done {job_id} ") == [f"done {job_id} {second.pid}"], cluster.logs()
    assert len(handlers.lines(f"start {job_id} ")) == 2
    assert done.attempts == 2 and done.worker_deaths == 1 and done.result is not None
    assert done.result["pid"] == second.pid


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    yield from private_redis(tmp_path)


def test_redis_restarted_during_work_loses_nothing_and_broker_down_is_visible(
    tmp_path: Path, pg_url: str, handlers: HandlerModule, own_redis: PrivateRedis
) -> None:
    settings = celery_settings(tmp_path, pg_url, celery_broker_url=own_redis.url)
    cluster = Cluster(tmp_path, settings, handlers)
    try:
        cluster.worker()
        cluster.worker()
        ids = [cluster.runtime.submit("scale.slow", {"steps": 5}) for _ in range(10)]
        wait_until(lambda: "succeeded" in cluster.states(ids), 60, "the first job done")
        own_redis.kill()  # messages in flight are gone with it (no persistence)
        # Broker down at enqueue: the job is kept, queued, and says why it waits.
        late = cluster.runtime.submit("scale.slow", {"steps": 1})
        waiting = cluster.job(late)
        assert waiting.state == "queued" and waiting.dispatched_at is None
        assert "not yet sent to the Celery broker" in waiting.message
        with api_client(cluster.runtime) as api:
            body = health(api)
            assert body["status"] == "degraded"
            assert "Celery broker unreachable" in body["worker"]["problem"]
        own_redis.start()
        wait_until(lambda: cluster.all_succeeded([*ids, late]), 120, "every job after restart")
        for job_id in [*ids, late]:
            assert len(handlers.lines(f"done {job_id} ")) == 1, cluster.logs()
    finally:
        cluster.close()


def test_dropped_postgresql_connections_are_reopened_by_api_and_workers(
    tmp_path: Path, pg_url: str, handlers: HandlerModule
) -> None:
    tag = f"ewscale-{tmp_path.name[-12:]}"
    settings = celery_settings(tmp_path, f"{pg_url}&application_name={tag}")
    cluster = Cluster(tmp_path, settings, handlers)
    admin = sa.create_engine(PG_ADMIN_URL)
    try:
        cluster.worker()
        with api_client(cluster.runtime) as api:
            first = cluster.runtime.submit("scale.slow", {"steps": 1})
            wait_until(lambda: cluster.all_succeeded([first]), 60, "a job before the drop")

            def terminate() -> int:
                with admin.begin() as conn:
                    return len(
                        conn.execute(
                            sa.text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE application_name = :tag AND pid <> pg_backend_pid()"
                            ),
                            {"tag": tag},
                        ).all()
                    )

            # The API's pooled connections and the worker's (task + sweeper) all die.
            assert terminate() >= 2
            assert api.get("/api/calls").status_code == 200
            second = cluster.runtime.submit("scale.slow", {"steps": 1})
            wait_until(lambda: cluster.all_succeeded([second]), 60, "a job after the drop")
            assert terminate() >= 1
            third = api.get(f"/api/jobs/{second}")
            assert third.status_code == 200 and third.json()["state"] == "succeeded"
    finally:
        admin.dispose()
        cluster.close()


@pytest.mark.slow
def test_upload_transcribe_index_search_on_postgresql_and_celery(
    tmp_path: Path, pg_url: str, handlers: HandlerModule
) -> None:
    """The transcription pipeline end to end with a real Celery worker: the API enqueues,
    the worker transcribes and queues indexing and QA (also on Celery), search finds it."""
    from earwitness.transcription.models import joined_base_dir
    from tests.speech_synth import EN_DIALOGUE, build_call, model_cache_dir

    call = build_call(tmp_path / "en", EN_DIALOGUE, noise_dbfs=-50)
    model = str(joined_base_dir(model_cache_dir()))
    settings = celery_settings(tmp_path, pg_url, whisper_model_multilingual=model)
    handlers.env["EARWITNESS_WHISPER_MODEL_MULTILINGUAL"] = model
    cluster = Cluster(tmp_path, settings, handlers)
    try:
        worker = cluster.worker()
        with api_client(cluster.runtime) as api:
            up = api.post(
                "/api/recordings",
                files={"file": ("en.wav", call.stereo.read_bytes(), "audio/wav")},
                data={"language": "en"},
            )
            assert up.status_code == 201, up.text
            rid = up.json()["recording"]["id"]

            def jobs_done() -> list[dict[str, Any]] | None:
                jobs = api.get("/api/jobs").json()
                kinds = {j["kind"]: j for j in jobs}
                finished = all(j["state"] in ("succeeded", "failed") for j in jobs)
                return jobs if finished and {"search.index", "qa.audit"} <= set(kinds) else None

            jobs = wait_until(jobs_done, 240, "transcribe, index and QA on Celery")
            assert {j["kind"]: j["state"] for j in jobs} == {
                "transcribe": "succeeded",
                "search.index": "succeeded",
                "qa.audit": "succeeded",
            }, cluster.logs()
            found = api.get("/api/search", params={"q": "compensation"}).json()
            assert found["total"] >= 1
            assert {hit["recording_id"] for hit in found["hits"]} == {rid}
        assert "transcribe" in worker.output() and worker.popen.poll() is None
    finally:
        cluster.close()
