"""queue_log backfill on a 1 GB log: it reads the gap, not the file; it follows rotation and
truncation; and the PBX service remembers where it stopped across restarts (database row).

The log is generated in the test's tmp dir in a few seconds (1 MiB of old history written
1024 times, then a tail of recent calls) and deleted at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from earwitness.config import load_settings
from earwitness.models import Call, QueueLogCursor
from earwitness.runtime import Runtime
from earwitness.telephony.queue_log import parse_queue_log, read_since
from earwitness.telephony.records import CallOutcome
from earwitness.telephony.service import PbxService

pytestmark = pytest.mark.slow

GIB = 1 << 30
OLD = 1_700_000_000  # the history: a year before the gap
NOW = 1_735_000_000


def _call(epoch: int, callid: str, agent: str = "Local/lucy@agents") -> bytes:
    """One answered queue call: entry, connect after 7 s, completion after 60 s."""
    return (
        f"{epoch}|{callid}|complaints|NONE|ENTERQUEUE||13800138000|1\n"
        f"{epoch + 7}|{callid}|complaints|{agent}|CONNECT|7|{callid}.b|7\n"
        f"{epoch + 67}|{callid}|complaints|{agent}|COMPLETECALLER|7|60|1\n"
    ).encode()


def _in_time_order(*blocks: bytes) -> bytes:
    """Asterisk appends events as they happen: the lines of overlapping calls interleave."""
    lines = [ln for block in blocks for ln in block.splitlines(keepends=True)]
    return b"".join(sorted(lines, key=lambda ln: int(ln.split(b"|", 1)[0])))


def _history_block() -> bytes:
    lines = []
    size = 0
    n = 0
    while size < (1 << 20):
        block = _call(OLD + n, f"{OLD + n}.{n}")
        lines.append(block)
        size += len(block)
        n += 1
    return b"".join(lines)[: 1 << 20].rsplit(b"\n", 1)[0] + b"\n"


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("queue_log") / "queue_log"
    block = _history_block()
    with path.open("wb") as f:
        while f.tell() < GIB:
            f.write(block)
    try:
        yield path
    finally:
        for sibling in path.parent.iterdir():
            sibling.unlink()


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_read_since_reads_the_gap_of_a_1_gb_log_and_follows_rotation(big_log: Path) -> None:
    history = big_log.stat().st_size
    assert history >= GIB
    _append(big_log, _call(NOW, "g1") + _call(NOW + 100, "g2"))

    first = read_since(big_log, NOW - 120, None)
    calls = parse_queue_log(first.lines).calls
    assert [c.key for c in calls] == ["g1", "g2"]
    assert all(c.outcome is CallOutcome.ANSWERED for c in calls)
    assert first.bytes_read < 256 * 1024  # the gap plus a block, of a 1 GiB file
    assert first.position.offset == big_log.stat().st_size

    # more calls, and one line still being written: read from the remembered offset
    _append(big_log, _call(NOW + 300, "g3") + f"{NOW + 400}|g4|complaints|NONE|ENTER".encode())
    second = read_since(big_log, NOW + 200, first.position)
    assert [c.key for c in parse_queue_log(second.lines).calls] == ["g3"]
    assert second.bytes_read < 256 * 1024
    assert second.position.offset == big_log.stat().st_size - len(
        f"{NOW + 400}|g4|complaints|NONE|ENTER"
    )

    # logrotate: the rest of g4 lands in the old file, which is renamed; a new file starts
    _append(big_log, b"QUEUE||13800138000|1\n")
    rotated = big_log.with_name("queue_log.1")
    os.rename(big_log, rotated)
    big_log.write_bytes(_in_time_order(_call(NOW + 500, "g5"), _call(NOW + 520, "g5b")))
    third = read_since(big_log, NOW + 350, second.position)
    assert third.rotated and not third.truncated
    assert [c.key for c in parse_queue_log(third.lines).calls] == ["g4", "g5", "g5b"]
    assert third.bytes_read < 256 * 1024

    # copytruncate: the same inode, shorter than where we stopped
    big_log.write_bytes(b"")
    _append(big_log, _call(NOW + 900, "g6"))
    assert big_log.stat().st_size < third.position.offset
    fourth = read_since(big_log, NOW + 800, third.position)
    assert fourth.truncated and [c.key for c in parse_queue_log(fourth.lines).calls] == ["g6"]
    rotated.unlink()


def test_read_since_on_small_logs_matches_a_full_filter(tmp_path: Path) -> None:
    """The backwards scan returns exactly the lines a full read would keep, at every cut."""
    path = tmp_path / "queue_log"
    data = _in_time_order(*(_call(NOW + 30 * i, f"c{i}") for i in range(200)))
    path.write_bytes(data)
    lines = data.splitlines(keepends=True)
    for since in range(NOW - 50, NOW + 30 * 200 + 100, 997):
        expected = [ln for ln in lines if int(ln.split(b"|", 1)[0]) >= since]
        assert read_since(path, since, None).lines == expected


def test_pbx_backfill_remembers_its_offset_across_restarts(tmp_path: Path) -> None:
    log_path = tmp_path / "pbx" / "queue_log"
    log_path.parent.mkdir()
    block = _history_block()
    with log_path.open("wb") as f:  # 64 MiB of history
        for _ in range(64):
            f.write(block)
    _append(log_path, _call(NOW + 2000, "b1"))
    settings = load_settings(
        data_dir=tmp_path / "data",
        demo="never",
        worker_mode="off",
        ami_host="127.0.0.1",
        ami_user="earwitness",
        ami_secret="unused",
        ami_queue_log_path=log_path,
    )
    gap = datetime.fromtimestamp(NOW + 1990, UTC)
    runtime = Runtime.open(settings)
    try:
        service = PbxService(settings, runtime.db)
        service._backfill_from_queue_log(gap)
        assert service.queue_log_bytes_read < 256 * 1024
        with runtime.db.session() as session:
            cursor = session.get(QueueLogCursor, str(log_path.resolve()))
            assert cursor is not None and cursor.read_offset == log_path.stat().st_size
            assert session.scalar(select(func.count()).select_from(Call)) == 1
        # a new process: the cursor comes from the database, the next gap costs its size
        _append(log_path, _call(NOW + 3000, "b2"))
        again = PbxService(settings, runtime.db)
        again._backfill_from_queue_log(datetime.fromtimestamp(NOW + 2990, UTC))
        assert again.queue_log_bytes_read < 160 * 1024
        with runtime.db.session() as session:
            keys = sorted(session.scalars(select(Call.caller_uniqueid)))
        assert keys == ["b1", "b2"]
    finally:
        runtime.close()
        log_path.unlink(missing_ok=True)


def test_backfill_keeps_calls_a_pbx_restart_cut_off(tmp_path: Path) -> None:
    """kill -9 writes no end event: an unfinished call in the log whose channel is not live
    at resync ended unseen (kept, answered or abandoned, end marked resync); one still live
    is left to the tracker."""
    log_path = tmp_path / "queue_log"
    talking = f"{NOW}|cut1|complaints|NONE|ENTERQUEUE||13900000001|1\n"
    talking += f"{NOW + 4}|cut1|complaints|Local/lucy@agents|CONNECT|4|cut1.b|4\n"
    waiting = f"{NOW + 5}|cut2|complaints|NONE|ENTERQUEUE||13900000002|1\n"
    alive = f"{NOW + 6}|live3|complaints|NONE|ENTERQUEUE||13900000003|1\n"
    # waiting when the link dropped, closed by the tracker's resync as abandoned; the log
    # says it was answered after 9 s and completed in the gap
    done = _call(NOW + 7, "done4").decode().replace("|CONNECT|7|", "|CONNECT|9|")
    done = done.replace(f"{NOW + 14}|", f"{NOW + 16}|")
    restart = f"{NOW + 20}|NONE|NONE|NONE|QUEUESTART|\n"  # Asterisk came back after a kill
    newcomer = f"{NOW + 21}|new5|complaints|NONE|ENTERQUEUE||13900000005|1\n"  # not yet live
    log_path.write_text(
        _in_time_order((talking + waiting + alive + done + restart + newcomer).encode()).decode()
    )
    settings = load_settings(
        data_dir=tmp_path / "data",
        demo="never",
        worker_mode="off",
        ami_host="127.0.0.1",
        ami_user="earwitness",
        ami_secret="unused",
        ami_queue_log_path=log_path,
    )
    runtime = Runtime.open(settings)
    entered = datetime.fromtimestamp(NOW + 7.4, UTC)
    try:
        with runtime.db.session() as session:
            session.add(
                Call(
                    source="ami",
                    linkedid="done4",
                    caller_uniqueid="done4",
                    kind="queue",
                    caller="13800138000",
                    entered_at=entered,
                    ended_at=entered,
                    outcome="abandoned",
                    time_source="resync",
                )  # fmt: skip
            )
        service = PbxService(settings, runtime.db)
        service._backfill_from_queue_log(datetime.fromtimestamp(NOW, UTC), frozenset({"live3"}))
        with runtime.db.session() as session:
            rows = {c.caller_uniqueid: c for c in session.scalars(select(Call))}
            assert sorted(rows) == ["cut1", "cut2", "done4"]
            assert rows["cut1"].outcome == "answered" and rows["cut2"].outcome == "abandoned"
            assert {c.time_source for c in rows.values()} == {"resync"}
            fixed = rows["done4"]
            assert fixed.outcome == "answered" and fixed.wait_s == 9.0
            assert fixed.entered_at == entered  # the tracker's precise entry is kept
    finally:
        runtime.close()
