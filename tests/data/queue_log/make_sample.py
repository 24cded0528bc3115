"""Write ``sample.queue_log``: one working day of two queues and three agents, known truth.

Run ``python tests/data/queue_log/make_sample.py`` to regenerate; the tests check that the
committed file equals ``render()``, so the table below and the file cannot drift apart.

The truth is the ``CALLS`` table itself (inputs, not anything an importer computed): each
row is one caller's queue visit as it really happened. The lines are written the way
Asterisk's app_queue writes them (see the Asterisk "Queue Logs" documentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

DAY = "2024-05-06"  # a Monday
LOCAL = timezone(timedelta(hours=8), "CST")  # China Standard Time, no DST
AGENTS = ("PJSIP/8001", "PJSIP/8002", "PJSIP/8003")
QUEUES = ("complaints", "rescue")
RONA_TIMEOUT_S = 15  # queues.conf timeout: a member rings this long before RINGNOANSWER
TRANSFER_TO = ("6000", "escalation")  # exten, context


@dataclass(frozen=True)
class Call:
    """One queue visit. kind: A answered, B answered then blind-transferred,
    X abandoned, K left with a key, T queue timeout, E queue empty."""

    n: int
    local: str  # HH:MM:SS local time of ENTERQUEUE
    queue: str
    kind: str
    wait: int  # seconds until CONNECT (answered) or until the exit event
    agent: str | None = None  # "8001".. for answered calls
    talk: int = 0
    rona: str | None = None  # agent that rang out first (RINGNOANSWER after RONA_TIMEOUT_S)

    @property
    def caller(self) -> str:
        return f"138000000{self.n:02d}"

    @property
    def entered_epoch(self) -> int:
        t = datetime.fromisoformat(f"{DAY}T{self.local}").replace(tzinfo=LOCAL)
        return int(t.timestamp())

    @property
    def callid(self) -> str:
        return f"{self.entered_epoch}.{100 + 3 * self.n}"


C, R = QUEUES
# fmt: off
CALLS: tuple[Call, ...] = (
    Call(1, "08:31:05", C, "A", 4, "8001", 95),
    Call(2, "08:47:40", C, "A", 5, "8002", 130),
    Call(3, "09:02:11", R, "A", 6, "8003", 240),
    Call(4, "09:05:30", C, "X", 3),
    Call(5, "09:10:00", C, "A", 15, "8001", 180),
    Call(6, "09:14:22", R, "A", 16, "8002", 200),
    Call(7, "09:20:45", C, "A", 21, "8003", 75, rona="8001"),
    Call(8, "09:33:10", C, "X", 12),
    Call(9, "09:41:00", R, "A", 2, "8001", 60),
    Call(10, "09:52:35", C, "B", 9, "8002", 140),
    Call(11, "10:03:03", C, "A", 7, "8001", 300),
    Call(12, "10:08:19", R, "A", 11, "8003", 95),
    Call(13, "10:15:00", C, "T", 60),
    Call(14, "10:22:48", C, "A", 1, "8002", 45),
    Call(15, "10:30:30", R, "X", 5),
    Call(16, "10:41:12", C, "A", 10, "8003", 210),
    Call(17, "10:55:55", C, "A", 14, "8001", 160),
    Call(18, "11:04:20", R, "A", 19, "8002", 90),
    Call(19, "11:12:00", C, "X", 30),
    Call(20, "11:26:40", C, "A", 3, "8003", 120),
    Call(21, "11:38:05", R, "A", 8, "8001", 75),
    Call(22, "11:49:50", C, "K", 20),
    Call(23, "12:05:10", C, "A", 25, "8002", 60),
    Call(24, "12:20:00", R, "E", 2),
    Call(25, "12:44:33", C, "A", 6, "8003", 180),
    Call(26, "13:01:17", C, "A", 4, "8001", 240),
    Call(27, "13:15:45", R, "A", 13, "8002", 100),
    Call(28, "13:29:09", C, "X", 1),
    Call(29, "13:40:00", C, "A", 9, "8003", 130),
    Call(30, "13:58:58", R, "T", 45),
    Call(31, "14:10:10", C, "A", 5, "8001", 300),
    Call(32, "14:25:25", C, "A", 17, "8002", 80),
    Call(33, "14:37:00", R, "A", 2, "8003", 70),
    Call(34, "14:50:44", C, "X", 8),
    Call(35, "15:05:05", C, "A", 12, "8001", 150),
    Call(36, "15:20:30", R, "A", 10, "8002", 110),
    Call(37, "15:42:12", C, "A", 33, "8003", 95),
    Call(38, "16:05:00", C, "A", 0, "8001", 40),
    Call(39, "16:30:30", R, "A", 7, "8002", 200),
    Call(40, "17:15:15", C, "A", 11, "8003", 90),
)
# fmt: on


def _epoch(local: str) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{local}").replace(tzinfo=LOCAL).timestamp())


def _call_lines(c: Call) -> list[tuple[int, int, str]]:
    """(epoch, order within the call, line) for one call, as app_queue logs it."""
    t0, cid = c.entered_epoch, c.callid
    out = [(t0, 0, f"{t0}|{cid}|{c.queue}|NONE|ENTERQUEUE||{c.caller}|1")]
    end = t0 + c.wait
    if c.kind in "AB":
        agent = f"PJSIP/{c.agent}"
        if c.rona:
            t = t0 + RONA_TIMEOUT_S
            out.append((t, 1, f"{t}|{cid}|{c.queue}|PJSIP/{c.rona}|RINGNOANSWER|15000"))
        ring = min(c.wait, 3) if not c.rona else c.wait - RONA_TIMEOUT_S
        bridged = f"{end - ring}.{100 + 3 * c.n + 1}"
        out.append((end, 2, f"{end}|{cid}|{c.queue}|{agent}|CONNECT|{c.wait}|{bridged}|{ring}"))
        hang = end + c.talk
        if c.kind == "B":
            exten, ctx = TRANSFER_TO
            line = f"{hang}|{cid}|{c.queue}|{agent}|BLINDTRANSFER|{exten}|{ctx}|{c.wait}|{c.talk}|1"
        else:
            who = "COMPLETECALLER" if c.n % 2 else "COMPLETEAGENT"
            line = f"{hang}|{cid}|{c.queue}|{agent}|{who}|{c.wait}|{c.talk}|1"
        out.append((hang, 3, line))
    elif c.kind == "K":
        out.append((end, 3, f"{end}|{cid}|{c.queue}|NONE|EXITWITHKEY|1|1|1|{c.wait}"))
    else:
        event = {"X": "ABANDON", "T": "EXITWITHTIMEOUT", "E": "EXITEMPTY"}[c.kind]
        out.append((end, 3, f"{end}|{cid}|{c.queue}|NONE|{event}|1|1|{c.wait}"))
    return out


def _housekeeping() -> list[tuple[int, int, str]]:
    """Queue start, members joining/pausing/leaving: lines an importer must ignore."""
    start, join = _epoch("08:00:00"), _epoch("08:25:00")
    out = [(start, 0, f"{start}|NONE|NONE|NONE|QUEUESTART|")]
    for q in QUEUES:
        for a in AGENTS:
            out.append((join, 0, f"{join}|NONE|{q}|{a}|ADDMEMBER|"))
    pause, unpause = _epoch("12:30:00"), _epoch("12:40:00")
    for q in QUEUES:
        out.append((pause, 0, f"{pause}|NONE|{q}|PJSIP/8002|PAUSE|lunch"))
        out.append((unpause, 0, f"{unpause}|NONE|{q}|PJSIP/8002|UNPAUSE|"))
    leave = _epoch("17:45:00")
    for q in QUEUES:
        for a in AGENTS:
            out.append((leave, 0, f"{leave}|NONE|{q}|{a}|REMOVEMEMBER|"))
    return out


def render() -> str:
    """The whole file, lines in time order as Asterisk appends them."""
    rows = _housekeeping()
    for c in CALLS:
        rows.extend(_call_lines(c))
    rows.sort(key=lambda r: (r[0], r[1]))
    return "".join(line + "\n" for _, _, line in rows)


if __name__ == "__main__":
    out = Path(__file__).with_name("sample.queue_log")
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out} ({len(CALLS)} calls)")
