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
Nothing here opens files or raises on bad input: every unusable line is reported with its
number and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
        )


@dataclass
class _Importer:
    calls: list[CallRecord] = field(default_factory=list)
    skipped: list[LineProblem] = field(default_factory=list)
    warnings: list[LineProblem] = field(default_factory=list)
    open: dict[str, _Visit] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
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
                visit.rona.append(ev.agent)
        elif ev.event == "CONNECT":
            self.connect(visit, ev, text)
        elif ev.event in _ANSWER_ENDS:
            self.end_answered(visit, ev, text)
        else:
            self.end_unanswered(visit, ev, text)
        self.used += 1

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
    )
