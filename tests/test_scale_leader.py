"""One AMI tracker per PBX across processes (issue 16): the leader lock with real processes,
then two ``earwitness tracker`` processes on a real Asterisk with the leader killed mid-call."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from earwitness.config import load_settings
from earwitness.models import Call, Recording
from earwitness.runtime import Runtime
from tests.conftest import _postgres_schema
from tests.pbx.asterisk import Asterisk
from tests.polling import wait_until
from tests.scale_support import Proc, spawn

pytest_plugins = ["tests.pbx.fixtures"]

CANDIDATE = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from earwitness.db import Database
    from earwitness.locks import LeaderGate, leader_lock

    url, lock_dir, log = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

    def note(line):
        with open(log, "a") as f:
            f.write(f"{line} {os.getpid()}\\n")

    class Service:
        def start(self): note("lead")
        def stop(self): note("stop")
        def health(self): return {"ok": True}

    db = Database(url)
    gate = LeaderGate("ami-tracker:test", leader_lock(db.engine, "ami-tracker:test", lock_dir),
                      Service, check_s=0.2)
    gate.start()
    while gate.tries < 3:
        threading.Event().wait(0.05)  # until this candidate has tried the lock a few times
    note("tried")
    threading.Event().wait()
    """
)


def lines(log: Path, word: str) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.startswith(word + " ")]


def test_standby_takes_over_within_seconds_when_the_leader_is_killed(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "leader.log"
    log.touch()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    args = [sys.executable, "-c", CANDIDATE, db_url, str(tmp_path), str(log)]
    first = spawn(args, env, tmp_path / "c1.out")
    second: Proc | None = None
    try:
        wait_until(lambda: lines(log, "lead"), 30, "a leader")
        second = spawn(args, env, tmp_path / "c2.out")
        wait_until(lambda: f"tried {second.pid}" in log.read_text(), 30, "the standby trying")
        assert lines(log, "lead") == [f"lead {first.pid}"], first.output()
        first.kill9()
        t0 = time.monotonic()
        wait_until(lambda: len(lines(log, "lead")) == 2, 15, "the standby to take over")
        assert time.monotonic() - t0 < 5.0
        assert lines(log, "lead") == [f"lead {first.pid}", f"lead {second.pid}"]
    finally:
        first.stop()
        if second is not None:
            second.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_schema()


def tracker_env(pbx: Asterisk, url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.getcwd(),
        EARWITNESS_DATABASE_URL=url,
        EARWITNESS_DATA_DIR=str(data_dir),
        EARWITNESS_DEMO="never",
        EARWITNESS_AMI_HOST=pbx.ami_host,
        EARWITNESS_AMI_PORT=str(pbx.ami_port),
        EARWITNESS_AMI_USER=pbx.ami_user,
        EARWITNESS_AMI_SECRET=pbx.ami_secret,
        EARWITNESS_AMI_PING_INTERVAL_S="5",
        EARWITNESS_AMI_RECORDING_DIR=str(pbx.recordings_dir),
        EARWITNESS_LEADER_CHECK_S="0.3",
    )
    return env


@pytest.mark.slow
@pytest.mark.asterisk(agents=2, member_timeout=30)
def test_two_trackers_leader_killed_mid_call_counts_once_records_once(
    asterisk: Asterisk, pg_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = tracker_env(asterisk, pg_url, data_dir)
    # This process only runs the inline worker that ingests recordings (no PBX settings).
    runtime = Runtime.open(
        load_settings(data_dir=data_dir, database_url=pg_url, demo="never", job_poll_s=0.1)
    )
    runtime.start_worker()
    cmd = [sys.executable, "-m", "earwitness.cli", "tracker"]
    first = spawn(cmd, env, tmp_path / "tracker1.out")
    second: Proc | None = None
    ami = asterisk.ami()

    def call_rows(caller: str) -> list[Call]:
        with runtime.db.session() as s:
            return list(s.scalars(select(Call).where(Call.caller == caller)).all())

    try:
        wait_until(lambda: "now the leader" in first.output(), 60, "tracker 1 leading")
        second = spawn(cmd, env, tmp_path / "tracker2.out")
        wait_until(lambda: "standby until leader" in second.output(), 60, "tracker 2 up")
        asterisk.make_prompt("ew-cust", "My parcel never arrived and nobody called me back.")
        asterisk.make_prompt("ew-agent", "I am sorry, I will open a complaint for you now.")
        response = asterisk.originate_queue_call(
            ami, callerid="13900001601", agent_delay=1, agent_talk=10, phone_say="ew-cust",
            phone_say_wait=1, agent_say="ew-agent", agent_say_wait=6,
        )  # fmt: skip
        assert response.get("Response") == "Success", response
        wait_until(lambda: [c for c in call_rows("13900001601") if c.answered_at], 30, "answered")
        wait_until(
            lambda: list((asterisk.recordings_dir / "earwitness").glob("*.wav")), 10, "MixMonitor"
        )
        assert "now the leader" not in second.output()
        first.kill9()  # mid-call: the agent talks on for several seconds
        wait_until(lambda: "now the leader" in second.output(), 15, "the standby taking over")
        wait_until(
            lambda: [c for c in call_rows("13900001601") if c.ended_at], 60, "the call's end"
        )
        # A call after the takeover is tracked by the new leader.
        response = asterisk.originate_queue_call(
            ami, callerid="13900001602", agent_delay=1, agent_talk=1
        )
        assert response.get("Response") == "Success", response
        wait_until(lambda: [c for c in call_rows("13900001602") if c.ended_at], 60, "2nd call")

        def recordings() -> list[Recording]:
            with runtime.db.session() as s:
                return list(s.scalars(select(Recording).where(Recording.call_id == call.id)))

        (call,) = call_rows("13900001601")  # counted once
        assert call.outcome == "answered" and call.answered_at is not None
        ingested = wait_until(
            lambda: [r for r in recordings() if r.state == "ingested"], 60, "recording ingested"
        )
        assert len(recordings()) == 1 and len(ingested) == 1 and ingested[0].channels == 2
        files = sorted((asterisk.recordings_dir / "earwitness").glob("*.wav"))
        assert len(files) == 2, files  # one per call: MixMonitor never started twice
        assert len(call_rows("13900001602")) == 1
    finally:
        ami.close()
        first.stop()
        if second is not None:
            second.stop()
        runtime.close()


@pytest.mark.asterisk(agents=2)
def test_tracker_answers_pings_while_the_database_is_locked(
    asterisk: Asterisk, tmp_path: Path
) -> None:
    """The tracker's writes wait on a writer thread: with SQLite's write lock held by another
    connection, AMI keep-alives still go out and come back, and the call is saved after."""
    import sqlite3

    settings = load_settings(
        data_dir=tmp_path / "data",
        demo="never",
        ami_host=asterisk.ami_host,
        ami_port=asterisk.ami_port,
        ami_user=asterisk.ami_user,
        ami_secret=asterisk.ami_secret,
        ami_ping_interval_s=0.5,
        ami_record_calls=False,
        leader_check_s=0.2,
    )
    runtime = Runtime.open(settings)
    runtime.start_services()
    ami = asterisk.ami()
    blocker: sqlite3.Connection | None = None
    try:
        gate = runtime.services["ami"]
        wait_until(lambda: gate.health()["ok"] and gate.health().get("role") == "leader", 30, "AMI")
        client = gate.client
        blocker = sqlite3.connect(settings.resolved_database_url.split(":///", 1)[1])
        blocker.execute("BEGIN IMMEDIATE")  # every other writer now waits (busy timeout 30 s)
        pings = client.counters.pings
        response = asterisk.originate_queue_call(
            ami, callerid="13900001701", agent_delay=1, agent_talk=1
        )
        assert response.get("Response") == "Success", response
        wait_until(lambda: gate.health()["write_backlog"] > 0, 20, "writes waiting on the lock")
        wait_until(lambda: client.counters.pings - pings >= 8, 20, "keep-alives meanwhile")
        assert client.counters.missed_pongs == 0 and client.counters.disconnects == 0
        with runtime.db.session() as s:
            assert s.scalars(select(Call)).all() == []  # nothing could be written yet
        blocker.rollback()
        blocker.close()
        blocker = None

        def finished() -> list[Call]:
            with runtime.db.session() as s:
                return list(s.scalars(select(Call).where(Call.ended_at.is_not(None))).all())

        (call,) = wait_until(finished, 40, "the call saved once the lock is gone")
        assert call.caller == "13900001701" and call.outcome == "answered"
    finally:
        if blocker is not None:
            blocker.close()
        ami.close()
        runtime.close()
