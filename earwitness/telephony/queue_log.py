"""Asterisk ``queue_log`` import: turn a queue log's lines into call records.

Why: a site that installs earwitness already has months of history in
``/var/log/asterisk/queue_log``; importing it gives SLA figures from day one and lets the
live tracker's numbers be checked against Asterisk's own account of the same calls.

Format (Asterisk docs, "Queue Logs"): ``epoch|callid|queue|agent|event|data1|data2|...``,
one event per line, ``NONE`` where a field does not apply. Events used::

    ENTERQUEUE(url|callerid)                         caller starts waiting (ring clock starts)
    RINGNOANSWER(ringtime ms)                        agent rang out (RONA)
    CONNECT(holdtime|bridged uniqueid|ringtime)      answered by ``agent``
    COMPLETEAGENT / COMPLETECALLER(holdtime|calltime|origposition)
    TRANSFER / BLINDTRANSFER(extension|context|holdtime|calltime|origposition)
    ATTENDEDTRANSFER(method|data...|holdtime|calltime|origposition)
    ABANDON(position|origposition|waittime)          -> abandoned
    EXITWITHKEY(key|position|origposition|waittime)  -> abandoned (caller chose to leave)
    EXITWITHTIMEOUT(position|origposition|waittime)  -> timeout
    EXITEMPTY(position|origposition|waittime)        -> unavailable (no agents)

Member/agent housekeeping (QUEUESTART, ADDMEMBER, PAUSE, AGENTLOGIN, RINGCANCELED, ...) is
counted and ignored. Each queue visit becomes one record: the first keeps the callid as
its key, a later visit of the same callid (e.g. timed out of one queue, then entered
another) gets ``callid#2``, ``callid#3``... as per-queue statistics require.

Times come from the line's epoch (whole seconds in stock Asterisk). If the log starts in
the middle of a call, entry/answer times are rebuilt from holdtime/calltime/waittime.
Nothing here raises on bad input: every unusable line is reported with its number and the
reason. The one function that opens the file, :func:`read_since`, reads only what a resync
needs (the gap, found by reading backwards from the end or from the last read offset), so a
gigabyte of history is not re-read at every AMI reconnect; it follows ``logrotate``
(rename: the rest of the old file by its inode, then the new one) and ``copytruncate``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from earwitness.telephony.records import MAX_WAIT_S, CallOutcome, CallRecord

MAX_LINE_CHARS = 8192
_MAX_EPOCH = 7_258_118_400  # 2200-01-01: anything later is corruption, not a call
_NUMBER = re.compile(r"\d{1,20}(\.\d{1,9})?")

_ANSWER_ENDS = {
    "COMPLETEAGENT",
    "COMPLETECALLER",
    "TRANSFER",
    "BLINDTRANSFER",
    "ATTENDEDTRANSFER",
}
# event -> (outcome, index of waittime in data)
_UNANSWERED_ENDS = {
    "ABANDON": (CallOutcome.ABANDONED, 2),
    "EXITWITHKEY": (CallOutcome.ABANDONED, 3),
    "EXITWITHTIMEOUT": (CallOutcome.TIMEOUT, 2),
    "EXITEMPTY": (CallOutcome.UNAVAILABLE, 2),
}
_IGNORED = {
    "QUEUESTART",
    "CONFIGRELOAD",
    "ADDMEMBER",
    "REMOVEMEMBER",
    "PAUSE",
    "UNPAUSE",
    "PAUSEALL",
    "UNPAUSEALL",
    "PENALTY",
    "AGENTLOGIN",
    "AGENTLOGOFF",
    "AGENTCALLBACKLOGIN",
    "AGENTCALLBACKLOGOFF",
    "AGENTDUMP",
    "RINGCANCELED",
    "SYSCOMPAT",
    "DID",
    "INFO",
    "ENTERQUEUE_ANNOUNCE",
}


@dataclass(frozen=True)
class QueueLogEvent:
    """One parsed line."""

    line_no: int
    at: datetime
    callid: str
    queue: str | None
    agent: str | None
    event: str
    data: tuple[str, ...]


@dataclass(frozen=True)
class LineProblem:
    """A line that was skipped (or used with a repair): where, why, and what it said."""

    line_no: int
    reason: str
    text: str


@dataclass(frozen=True)
class QueueLogImport:
    """The result of one import: records plus an account of everything not used as-is."""

    calls: list[CallRecord]
    skipped: list[LineProblem]
    warnings: list[LineProblem]
    lines_read: int
    events_used: int
    events_ignored: int
    last_event_at: datetime | None
    #: (interface, member name) pairs seen in ADDMEMBER lines: the agent identity mapping
    members: list[tuple[str, str]] = field(default_factory=list)


class QueueLogLineError(ValueError):
    """A line that cannot be an event; the message is the reason reported."""


def _none(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "NONE") else value


def _number(data: tuple[str, ...], index: int, what: str, limit: float = MAX_WAIT_S) -> float:
    raw = data[index].strip() if index < len(data) else ""
    if not _NUMBER.fullmatch(raw):
        raise QueueLogLineError(f"{what} is not a number: {raw[:40]!r}")
    value = float(raw)
    if value > limit:
        raise QueueLogLineError(f"{what} out of range: {raw}")
    return value


def parse_line(text: str, line_no: int) -> QueueLogEvent:
    """Parse one decoded line (without its newline); raise QueueLogLineError if unusable."""
    if len(text) > MAX_LINE_CHARS:
        raise QueueLogLineError(f"line longer than {MAX_LINE_CHARS} characters")
    if "\x00" in text:
        raise QueueLogLineError("line contains NUL bytes")
    fields = text.split("|")
    if len(fields) < 5:
        raise QueueLogLineError(f"too few fields ({len(fields)} of at least 5)")
    epoch = _number((fields[0],), 0, "timestamp", _MAX_EPOCH)
    callid, event = fields[1].strip(), fields[4].strip().upper()
    if not event:
        raise QueueLogLineError("empty event name")
    return QueueLogEvent(
        line_no=line_no,
        at=datetime.fromtimestamp(epoch, UTC),
        callid=callid,
        queue=_none(fields[2]),
        agent=_none(fields[3]),
        event=event,
        data=tuple(fields[5:]),
    )


@dataclass
class _Visit:
    key: str
    queue: str | None
    caller: str | None
    entered_at: datetime
    agent: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: CallOutcome = CallOutcome.IN_PROGRESS
    rona: list[str] = field(default_factory=list)
    rona_times: list[tuple[datetime, datetime]] = field(default_factory=list)
    transferred_to: str | None = None

    def record(self) -> CallRecord:
        return CallRecord(
            key=self.key,
            caller=self.caller,
            queue=self.queue,
            agent=self.agent,
            entered_at=self.entered_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
            outcome=self.outcome,
            rona=tuple(self.rona),
            transferred_to=self.transferred_to,
            rona_times=tuple(self.rona_times),
        )


@dataclass
class _Importer:
    calls: list[CallRecord] = field(default_factory=list)
    skipped: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    open: dict[str, _Visit] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    members: list[tuple[str, str]] = field(default_factory=list)
    used: int = 0
    ignored: int = 0
    last_at: datetime | None = None

    def new_visit(self, ev: QueueLogEvent, entered_at: datetime, caller: str | None) -> _Visit:
        n = self.visits.get(ev.callid, 0) + 1
        self.visits[ev.callid] = n
        key = ev.callid if n == 1 else f"{ev.callid}#{n}"
        visit = _Visit(key=key, queue=ev.queue, caller=caller, entered_at=entered_at)
        self.open[ev.callid] = visit
        return visit

    def finish(self, callid: str, ev: QueueLogEvent, text: str) -> None:
        visit = self.open.pop(callid)
        try:
            self.calls.append(visit.record())
        except ValueError as exc:
            self.skipped.append(_problem(ev.line_no, f"inconsistent call: {exc}", text))

    def handle(self, ev: QueueLogEvent, text: str) -> None:
        if ev.event == "ADDMEMBER":
            self.member(ev)
        if ev.event in _IGNORED:
            self.ignored += 1
            return
        known = ev.event == "ENTERQUEUE" or ev.event in ("RINGNOANSWER", "CONNECT")
        if not (known or ev.event in _ANSWER_ENDS or ev.event in _UNANSWERED_ENDS):
            raise QueueLogLineError(f"unknown event {ev.event[:40]!r}")
        if ev.callid in ("", "NONE"):
            raise QueueLogLineError(f"{ev.event} without a call id")
        visit = self.open.get(ev.callid)
        if visit is None and ev.event != "ENTERQUEUE" and ev.callid in self.visits:
            self.warnings.append(_problem(ev.line_no, "event after the call ended", text))
            return
        if ev.event == "ENTERQUEUE":
            self.enter(visit, ev, text)
        elif ev.event == "RINGNOANSWER":
            if visit is None:
                raise QueueLogLineError("RINGNOANSWER for a call never seen entering")
            if ev.agent:
                # The line's own time is when the ringing stopped; its first field is how
                # long the agent rang (ms), so two ring-outs of one call get their own times.
                try:
                    ring_ms = _number(ev.data, 0, "ringtime", limit=MAX_WAIT_S * 1000)
                except QueueLogLineError as exc:
                    ring_ms = 0.0
                    self.warnings.append(_problem(ev.line_no, f"{exc}; ring start unknown", text))
                rang = max(visit.entered_at, ev.at - timedelta(milliseconds=ring_ms))
                visit.rona.append(ev.agent)
                visit.rona_times.append((rang, ev.at))
        elif ev.event == "CONNECT":
            self.connect(visit, ev, text)
        elif ev.event in _ANSWER_ENDS:
            self.end_answered(visit, ev, text)
        else:
            self.end_unanswered(visit, ev, text)
        self.used += 1

    def member(self, ev: QueueLogEvent) -> None:
        """``ADDMEMBER`` naming both an interface and a member name (agent field and data,
        in either order) links them; one with a single identifier has nothing to link."""
        names = [x.strip() for x in (ev.agent or "", *ev.data) if x and x.strip()]
        names = [x for x in names if x.upper() not in ("PAUSED", "NONE")]
        interfaces = [x for x in names if "/" in x]
        people = [x for x in names if "/" not in x]
        if interfaces and people:
            pair = (interfaces[0][:120], people[0][:120])
            if pair not in self.members:
                self.members.append(pair)

    def enter(self, visit: _Visit | None, ev: QueueLogEvent, text: str) -> None:
        if visit is not None:  # previous visit never logged its end
            self.open.pop(ev.callid)
            kept = visit.answered_at is not None
            if kept:  # answered: keep it, end unknown
                visit.outcome = CallOutcome.ANSWERED
                self.calls.append(visit.record())
            fate = "kept as answered, end unknown" if kept else "dropped, outcome unknown"
            reason = f"visit {visit.key} never logged its end ({fate}); a new ENTERQUEUE began"
            self.warnings.append(_problem(ev.line_no, reason, text))
        caller = _none(ev.data[1]) if len(ev.data) > 1 else None
        self.new_visit(ev, ev.at, caller)

    def connect(self, visit: _Visit | None, ev: QueueLogEvent, text: str) -> None:
        if visit is None:
            hold = _number(ev.data, 0, "holdtime")
            visit = self.new_visit(ev, ev.at - timedelta(seconds=hold), None)
        if visit.answered_at is not None:
            raise QueueLogLineError("second CONNECT for the same call")
        if ev.at < visit.entered_at:
            reason = "CONNECT logged before ENTERQUEUE (clock step?); wait taken as 0"
            self.warnings.append(_problem(ev.line_no, reason, text))
        visit.answered_at = max(ev.at, visit.entered_at)
        visit.agent = ev.agent or visit.agent

    def end_answered(self, visit: _Visit | None, ev: QueueLogEvent, text: str) -> None:
        base = {"TRANSFER": 2, "BLINDTRANSFER": 2}.get(ev.event, 0)
        if ev.event == "ATTENDEDTRANSFER":
            base = max(len(ev.data) - 3, 1)
        if visit is None or visit.answered_at is None:
            hold = _number(ev.data, base, "holdtime")
            talk = _number(ev.data, base + 1, "calltime")
            answered_at = ev.at - timedelta(seconds=talk)
            if visit is None:
                visit = self.new_visit(ev, answered_at - timedelta(seconds=hold), None)
            else:
                reason = f"{ev.event} without CONNECT; answer time rebuilt from calltime"
                self.warnings.append(_problem(ev.line_no, reason, text))
            visit.answered_at = max(answered_at, visit.entered_at)
        visit.agent = visit.agent or ev.agent
        visit.ended_at = ev.at
        visit.outcome = CallOutcome.ANSWERED
        if ev.event not in ("COMPLETEAGENT", "COMPLETECALLER"):
            visit.transferred_to = _transfer_target(ev.event, ev.data[:base])
        self.finish(ev.callid, ev, text)

    def end_unanswered(self, visit: _Visit | None, ev: QueueLogEvent, text: str) -> None:
        outcome, wait_index = _UNANSWERED_ENDS[ev.event]
        if visit is None:
            wait = _number(ev.data, wait_index, "waittime")
            visit = self.new_visit(ev, ev.at - timedelta(seconds=wait), None)
        if visit.answered_at is not None:
            raise QueueLogLineError(f"{ev.event} for a call already answered")
        visit.ended_at = ev.at
        visit.outcome = outcome
        self.finish(ev.callid, ev, text)


def _transfer_target(event: str, data: tuple[str, ...]) -> str:
    """``exten@context`` for (blind) transfers, ``METHOD:data`` for attended ones."""
    parts = [d.strip() for d in data if d.strip()]
    if event == "ATTENDEDTRANSFER" and parts:
        return f"{parts[0]}:{','.join(parts[1:])}" if len(parts) > 1 else parts[0]
    return "@".join(parts) or event.lower()


def _problem(line_no: int, reason: str, text: str) -> LineProblem:
    return LineProblem(line_no, reason, text[:200])


def _decode(line: bytes | str, line_no: int, warnings: list[LineProblem]) -> str:
    if isinstance(line, str):
        text = line
    else:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", errors="replace")
            warnings.append(_problem(line_no, "not UTF-8; bad bytes replaced", text))
    if line_no == 1:
        text = text.removeprefix("\ufeff")
    return text.rstrip("\r\n")


def parse_queue_log(lines: Iterable[bytes | str]) -> QueueLogImport:
    """Import a queue_log given as lines (bytes or text, newlines optional; caller opens it).

    Never raises on content: malformed lines go to ``skipped``, usable-but-odd ones to
    ``warnings``. Calls with no end event in the log (still going, or log cut off) come
    back ``IN_PROGRESS``. Records are sorted by entry time, then key.
    """
    imp = _Importer()
    line_no = 0
    for line_no, raw in enumerate(lines, start=1):
        text = _decode(raw, line_no, imp.warnings)
        if not text.strip():
            continue
        try:
            ev = parse_line(text, line_no)
            imp.handle(ev, text)
        except QueueLogLineError as exc:
            imp.skipped.append(_problem(line_no, str(exc), text))
            continue
        except (OverflowError, ValueError) as exc:  # e.g. timedelta beyond datetime range
            imp.skipped.append(_problem(line_no, f"unusable values: {exc}", text))
            continue
        imp.last_at = ev.at if imp.last_at is None else max(imp.last_at, ev.at)
    for visit in list(imp.open.values()):
        try:
            imp.calls.append(visit.record())
        except ValueError as exc:
            imp.skipped.append(_problem(line_no, f"inconsistent open call: {exc}", visit.key))
    imp.calls.sort(key=lambda c: (c.entered_at, c.key))
    return QueueLogImport(
        calls=imp.calls,
        skipped=imp.skipped,
        warnings=imp.warnings,
        lines_read=line_no,
        events_used=imp.used,
        events_ignored=imp.ignored,
        last_event_at=imp.last_at,
        members=imp.members,
    )


# -- reading only the tail a resync needs --------------------------------------------------

_BLOCK = 1 << 16


@dataclass(frozen=True)
class LogPosition:
    """Where the last read stopped: the file (inode), its size then, and the byte offset just
    after the last complete line consumed."""

    inode: int
    size: int
    offset: int


@dataclass(frozen=True)
class TailRead:
    lines: list[bytes]  # complete lines with epoch >= since, oldest first
    position: LogPosition
    bytes_read: int  # what it cost: the gap plus a block, not the whole file
    rotated: bool = False  # the file was replaced since the last read (logrotate)
    truncated: bool = False  # the file shrank below the last offset (copytruncate)


def line_epoch(line: bytes) -> float | None:
    """The epoch a raw queue_log line starts with; None when it has none."""
    head = line.split(b"|", 1)[0]
    try:
        value = float(head)
    except ValueError:
        return None
    return value if 0 <= value < _MAX_EPOCH else None


def _window_start(f: BinaryIO, end: int, since: float) -> tuple[int, int]:
    """Offset of the first line at or after ``since``, scanning backwards from ``end``; the
    log is appended in time order, so the scan stops at the first older line it meets.
    Returns (offset, bytes read)."""
    pos, cost = end, 0
    while pos > 0:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        chunk = f.read(pos - start)
        cost += len(chunk)
        first = 0
        if start > 0:
            newline = chunk.find(b"\n")
            if newline < 0:  # one line longer than a block: junk, keep going back
                pos = start
                continue
            first = newline + 1
        offset, cut = start + first, None
        for line in chunk[first:].split(b"\n"):
            epoch = line_epoch(line)
            if epoch is not None and epoch < since:
                cut = offset + len(line) + 1
            offset += len(line) + 1
        if cut is not None:
            return min(cut, end), cost
        if start == 0:
            return 0, cost
        pos = start + first
    return 0, cost


def _read_lines(f: BinaryIO, start: int, since: float) -> tuple[list[bytes], int, int]:
    """Complete lines from ``start`` to EOF with epoch >= since; (lines, end offset, cost)."""
    f.seek(start)
    data = f.read()
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    lines = [
        line + b"\n"
        for line in data[:end].split(b"\n")[:-1]
        if (epoch := line_epoch(line)) is None or epoch >= since
    ]
    return lines, start + end, len(data)


def _rotated_away(path: Path, inode: int) -> Path | None:
    """The file that had ``inode`` before logrotate renamed it (queue_log.1, ...)."""
    for sibling in sorted(path.parent.glob(path.name + ".*")):
        try:
            if sibling.stat().st_ino == inode and sibling.is_file():
                return sibling
        except OSError:
            continue
    return None


def read_since(path: Path, since_epoch: float, last: LogPosition | None) -> TailRead:
    """The complete lines of ``path`` stamped ``since_epoch`` or later, and where to go on.

    With ``last`` from the previous call the read starts at its offset (stepping back only
    as far as ``since_epoch`` needs). A new inode means the file was rotated: the old file's
    rest (found beside it by inode) comes first, then the new file from its start. A file
    shorter than ``last.offset`` was truncated in place and is read from its start.
    Raises OSError when the file cannot be read (the caller decides what that means).
    """
    stat = os.stat(path)
    lines: list[bytes] = []
    cost = 0
    rotated = truncated = False
    start: int | None = None
    if last is not None and last.inode != stat.st_ino:
        rotated = True
        old = _rotated_away(path, last.inode)
        if old is not None:
            with old.open("rb") as f:
                rest, _, spent = _read_lines(f, min(last.offset, old.stat().st_size), since_epoch)
            lines += rest
            cost += spent
        start = 0
    elif last is not None and stat.st_size < last.offset:
        truncated, start = True, 0
    with path.open("rb") as f:
        if start is None:
            anchor = last.offset if last is not None else stat.st_size
            start, spent = _window_start(f, anchor, since_epoch)
            cost += spent
        new, end, spent = _read_lines(f, start, since_epoch)
    lines += new
    cost += spent
    return TailRead(lines, LogPosition(stat.st_ino, stat.st_size, end), cost, rotated, truncated)
