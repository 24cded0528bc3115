"""Calls, SLA figures and the live wallboard (JSON and server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import select

from earwitness.api.deps import Principal, PrincipalDep, RuntimeDep, SessionDep, quick_read
from earwitness.api.params import DbInt, period
from earwitness.api.permissions import CallScope, call_in_scope, call_scope, sees_full_numbers
from earwitness.errors import Forbidden, NotFound
from earwitness.masking import redact
from earwitness.models import Call
from earwitness.runtime import Runtime
from earwitness.telephony.calls import TrackedCall
from earwitness.telephony.identities import all_identities, set_name
from earwitness.telephony.live_view import (
    TRACKER_SOURCE,
    AgentLabels,
    live_agent_states,
    live_record,
)
from earwitness.telephony.persist import SlaDefaults, live_changes
from earwitness.telephony.queries import (
    CallFilter,
    agent_board,
    agent_labels,
    agent_states,
    call_movement,
    call_page,
    call_summary,
    count_calls,
    live_records,
    target_of,
)
from earwitness.telephony.records import CallRecord
from earwitness.telephony.rings import SlaTarget
from earwitness.telephony.service import PbxService
from earwitness.telephony.sla import SlaFigures, live_snapshot
from earwitness.telephony.sla_export import XLSX_MEDIA_TYPE, heading, to_csv, to_xlsx
from earwitness.telephony.sla_sql import sla_groups
from earwitness.timezones import EXAMPLES, Period, day_start, local_day, zone_named

router = APIRouter(tags=["calls"])
PERIOD_HELP = f"a day, word or time ({EXAMPLES}); days are local to tz"
T = TypeVar("T")


class CallOut(BaseModel):
    id: int
    linkedid: str
    source: str
    kind: str
    caller: str | None
    queue: str | None
    agent: str | None
    entered_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_s: float | None
    rings: int | None
    cadence: str | None
    outcome: str
    transferred_to: str | None
    time_source: str
    recording_id: int | None


class CallPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[CallOut]


class CallEventOut(BaseModel):
    at: datetime
    time_source: str
    name: str
    channel: str | None
    data: dict[str, Any]


class AttemptOut(BaseModel):
    agent: str
    rang_at: datetime
    ended_at: datetime | None
    result: str


class QueueVisitOut(BaseModel):
    queue: str
    joined_at: datetime
    left_at: datetime | None
    wait_s: float | None
    result: str | None


class TransferOut(BaseModel):
    kind: str
    at: datetime
    transferer: str | None
    target: str | None
    result: str | None
    answered: bool
    answered_at: datetime | None
    answered_by: str | None


class CallDetail(CallOut):
    """One call; ``queue`` is its owner (the answering queue), ``queues`` every queue it
    waited in with the wait there (overflow), ``transfers`` who passed it on to whom."""

    caller_name: str | None
    hangup_cause: str | None
    attempts: list[AttemptOut]
    events: list[CallEventOut]
    queues: list[QueueVisitOut]
    transfers: list[TransferOut]


def _scoped(f: CallFilter, scope: CallScope) -> CallFilter | None:
    """The filter narrowed to what the user may see; None when that is nothing."""
    if scope.nothing or (scope.agent is not None and f.agent not in (None, scope.agent)):
        return None
    if scope.queues and f.queue is not None and f.queue not in scope.queues:
        return None
    return replace(f, agent=scope.agent or f.agent, queues=scope.queues)


def check_call_scope(session: Any, scope: CallScope, call_id: int) -> Call:
    """The call, if the user may see it: 404 when missing, 403 when not theirs."""
    row: Call | None = session.get(Call, call_id)
    if row is None:
        raise NotFound(f"call {call_id} does not exist")
    _check_row(scope, row)
    return row


def _check_row(scope: CallScope, row: Call) -> None:
    names = (row.agent.interface, row.agent.name) if row.agent else ()
    if not call_in_scope(scope, names, row.queue.name if row.queue else None):
        raise Forbidden(f"call {row.id} is not one of your calls")


def shown(principal: Principal, data: T, numbers: Any) -> T:
    """``data`` as this user may see it: phone numbers masked unless their role needs them."""
    return data if sees_full_numbers(principal) else redact(data, numbers)


def _filter(
    when: Period,
    queue: str | None,
    agent: str | None,
    outcome: str | None,
    caller: str | None,
    min_rings: DbInt | None = None,
) -> CallFilter:
    return CallFilter(when.start, when.end, queue, agent, outcome, caller, min_rings)


Outcome = Literal[
    "answered", "abandoned", "timeout", "busy", "unavailable", "failed", "in_progress"
]


#: Validates and encodes a page in one pass of pydantic-core (what FastAPI would do with
#: ``response_model``, then ``json.dumps`` again in Python: ~half the encoding time).
_CALL_PAGE = TypeAdapter(CallPage)


@router.get("/api/calls", response_model=CallPage, operation_id="list_calls_api_calls_get")
async def api_list_calls(
    runtime: RuntimeDep,
    who: PrincipalDep,
    start: Annotated[str | None, Query(alias="from", description=PERIOD_HELP)] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    tz: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    outcome: Outcome | None = None,
    caller: str | None = None,
    min_rings: Annotated[DbInt | None, Query(ge=0)] = None,
    limit: Annotated[DbInt, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> Response:
    """Calls, newest first; ``from``/``to`` bound the time the caller started ringing.

    Agents get their own calls, leads their queues' calls; numbers are masked for roles
    that do not call customers back."""
    page = await quick_read(
        runtime, list_calls, runtime, who, start, end, tz, queue, agent, outcome, caller,
        min_rings, limit, offset,
    )  # fmt: skip
    # The JSON FastAPI would make of ``response_model`` (which still documents it), in one
    # pass of pydantic-core instead of validation, then ``json.dumps`` in Python (issue 17).
    return Response(_CALL_PAGE.dump_json(_CALL_PAGE.validate_python(page)),
                    media_type="application/json")  # fmt: skip


def list_calls(
    runtime: Runtime,
    who: Principal,
    start: str | None = None,
    end: str | None = None,
    tz: str | None = None,
    queue: str | None = None,
    agent: str | None = None,
    outcome: str | None = None,
    caller: str | None = None,
    min_rings: int | None = None,
    limit: int = 50,
    offset: int = 0,
    session: Any = None,  # unused: the web page passes its own; we read in a short one
) -> dict[str, Any]:
    """The page ``GET /api/calls`` serves, as a dict (the web call list shows it too)."""
    when = period(runtime, start, end, tz)
    scoped = _scoped(_filter(when, queue, agent, outcome, caller, min_rings), call_scope(who))
    page: dict[str, Any] = {"total": 0, "limit": limit, "offset": offset, "items": []}
    if scoped is None:
        return page
    # A short session of our own, closed before the response is written (no request
    # session: a pooled connection held until FastAPI tears the dependency down after the
    # response starved the pool under 16 concurrent requests - 0 req/s on SQLite - and the
    # dependency cost two more thread-pool hops per request; issue 17).
    with runtime.db.session() as own:
        items = call_page(own, scoped, limit, offset)  # plain rows, no ORM objects
        # A page that is not full ends the list: its total needs no count (an empty page
        # past the end does not say how many there are: count then).
        short = len(items) < limit and (items or offset == 0)
        page["total"] = offset + len(items) if short else count_calls(own, scoped)
    page["items"] = shown(who, items, {i["caller"] for i in items})
    return page


@router.get("/api/calls/{call_id}", response_model=CallDetail)
def read_call(call_id: DbInt, session: SessionDep, who: PrincipalDep) -> dict[str, Any]:
    row = check_call_scope(session, call_scope(who), call_id)
    detail = {
        **call_summary(row),
        "caller_name": row.caller_name,
        "hangup_cause": row.hangup_cause,
        "attempts": [
            {
                "agent": a.agent.name or a.agent.interface,
                "rang_at": a.rang_at,
                "ended_at": a.ended_at,
                "result": a.result,
            }
            for a in row.attempts
        ],
        "events": [
            {
                "at": e.at,
                "time_source": e.time_source,
                "name": e.name,
                "channel": e.channel,
                "data": e.data,
            }
            for e in row.events
        ],
        **call_movement(row),
    }
    return shown(who, detail, {row.caller})


def _defaults(runtime: Runtime) -> SlaDefaults:
    return SlaDefaults(runtime.settings.sla_rings, runtime.settings.sla_cadence)


@router.get("/api/sla", response_model=None)
def sla(
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
    group_by: Literal["queue", "agent", "hour", "day", "total"] = "queue",
    start: Annotated[str | None, Query(alias="from", description=PERIOD_HELP)] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    queue: str | None = None,
    agent: str | None = None,
    tz: Annotated[str | None, Query(description="IANA zone; default EARWITNESS_TIMEZONE")] = None,
    format: Literal["json", "csv", "xlsx"] = "json",  # noqa: A002
) -> dict[str, Any] | Response:
    """Service level, ASA, waits, abandons, rings histogram and RONA per group.

    Each queue is measured against its own target; other groupings use the target of
    ``queue`` if given, else the default (3 rings, China cadence unless configured).
    Hours and days are local to ``tz``; the response echoes the period it covered.
    ``format=csv|xlsx`` downloads the same rows with the target and period above them.
    """
    when = period(runtime, start, end, tz)
    scoped = _scoped(_filter(when, queue, agent, None, None), call_scope(who))
    zone = when.zone
    defaults = _defaults(runtime)
    # Aggregated in the database (issue 17): same figures as the per-record Python path.
    groups = sla_groups(session, scoped, group_by, zone, defaults, queue)
    target = target_of(session, queue, defaults).describe()
    echo = when.echo()
    if format != "json":
        head = heading(target, echo, group_by)
        name = f"sla-{group_by}.{format}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if format == "csv":
            return Response(to_csv(groups, head), media_type="text/csv", headers=disposition)
        return Response(to_xlsx(groups, head), media_type=XLSX_MEDIA_TYPE, headers=disposition)
    body = {
        "group_by": group_by,
        "tz": zone.key,
        "period": jsonable_encoder(echo),
        "target": jsonable_encoder(target),
        "groups": [sla_json(g) for g in groups],
    }
    # Encoded once, here: returning the dict made FastAPI run jsonable_encoder over every
    # group a second time, and group_by=hour over a month carries ~144k agent counts
    # (1-4 s of the request on a 2-core machine; json.dumps of plain values is ~10x less).
    return Response(
        json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")),
        media_type="application/json",
    )


def sla_json(g: SlaFigures) -> dict[str, Any]:
    """One group as plain JSON values (the same as ``jsonable_encoder(asdict(g))``, without
    deep-copying its histograms and agent counts entry by entry)."""
    out = {f.name: getattr(g, f.name) for f in fields(g)}
    out["target"] = jsonable_encoder(asdict(g.target))
    return out


@dataclass(frozen=True)
class _Saved:
    """What the wallboard reads from the database. ``labels`` is set when the tracker's own
    calls are left out (they come from its memory, labelled with these names)."""

    labels: AgentLabels | None
    records: list[CallRecord]
    states: dict[str, str]
    members: list[dict[str, Any]]
    target: SlaTarget


def _read_saved(runtime: Runtime, but_tracker: bool) -> _Saved:
    but = TRACKER_SOURCE if but_tracker else None
    with runtime.db.session() as session:
        now = datetime.now(UTC)
        zone = zone_named(runtime.settings.timezone)
        day = day_start(local_day(now, zone), zone)  # today in the configured zone
        return _Saved(
            labels=agent_labels(session) if but_tracker else None,
            records=live_records(session, but_source=but),  # eagerly, in one read
            states=agent_states(session, but_source=but),
            members=agent_board(session, day, now),
            target=target_of(session, None, _defaults(runtime)),
        )


def _compose(runtime: Runtime, saved: _Saved, tracked: list[TrackedCall] | None) -> dict[str, Any]:
    """The wallboard now: the saved part, plus the tracker's calls from its memory."""
    in_progress, states = saved.records, saved.states
    if tracked is not None and saved.labels is not None:
        labels = saved.labels
        in_progress = sorted(
            [*in_progress, *(live_record(c, labels) for c in tracked)], key=lambda r: r.entered_at
        )
        states = {**states, **live_agent_states(tracked, labels)}
    now = datetime.now(UTC)
    snap = live_snapshot(in_progress, now, saved.target, states)
    waiting = [
        {
            "caller": r.caller,
            "queue": r.queue,
            "entered_at": r.entered_at,
            "wait_s": (now - r.entered_at).total_seconds(),
        }
        for r in in_progress
        if not r.answered
    ]
    ami = runtime.services.get("ami")
    return jsonable_encoder(
        {
            **asdict(snap),
            "agents": states,
            # Queue members as app_queue reports them: state now (paused + reason, available,
            # in_call, ringing, logged_out...), since when, seconds in each state today (local day).
            "members": saved.members,
            "waiting": waiting,
            "pbx": ami.health() if ami is not None else {"configured": False},
        }
    )


def _live(runtime: Runtime) -> dict[str, Any]:
    tracker = _tracker(runtime)
    tracked = tracker.live_calls() if tracker is not None else None
    # Without the tracker's memory (it runs elsewhere, or has not taken over yet), its
    # calls are what it committed.
    return _compose(runtime, _read_saved(runtime, tracked is not None), tracked)


def _shown_to(who: Principal, snapshot: dict[str, Any]) -> dict[str, Any]:
    return shown(who, snapshot, {w["caller"] for w in snapshot["waiting"]})


def _live_for(runtime: Runtime, who: Principal) -> dict[str, Any]:
    return _shown_to(who, _live(runtime))


@router.get("/api/live")
def live(runtime: RuntimeDep, who: PrincipalDep) -> dict[str, Any]:
    """The wallboard now: calls waiting, longest wait (s and rings), agents ringing/talking."""
    return _live_for(runtime, who)


#: Least time between two snapshots of one stream: a burst of tracker saves (50 calls
#: joining at once) becomes a few snapshots, not one per save.
COALESCE_S = 0.05
#: Least time between two database reads of one stream while the tracker's memory serves
#: its calls: members' states and other sources' calls are at most this much older than
#: the calls (a read cost 30-110 ms on a loaded 2-core host; on every change it was most
#: of the latency from an AMI event to the wallboard, issue 17).
SAVED_EVERY_S = 0.25


def _tracker(runtime: Runtime) -> PbxService | None:
    """The PBX tracker, when this process leads it (its changes are then announced
    in-process; otherwise, ``earwitness tracker`` or another ``serve`` leading, the stream
    follows the database for other processes' commits)."""
    service = runtime.services.get("ami")
    service = getattr(service, "service", service)  # behind its LeaderGate
    return service if isinstance(service, PbxService) else None


class _Board:
    """One stream's wallboard: the tracker's calls read from its memory on every change,
    the database part re-read in the background at most every ``SAVED_EVERY_S`` after a
    commit (and every ``interval_s`` regardless), so a change the tracker saw never waits
    for a database read. Without the tracker here, every snapshot reads the database."""

    def __init__(self, runtime: Runtime, who: Principal, interval_s: float) -> None:
        self.runtime, self.who, self.interval_s = runtime, who, interval_s
        self.saved: _Saved | None = None
        self.refresh: asyncio.Future[_Saved] | None = None
        self.read_at = 0.0
        self.commits = -1

    def _due(self, now: float) -> bool:
        age = now - self.read_at
        changed = live_changes.commits != self.commits
        return self.saved is None or age >= self.interval_s or (changed and age >= SAVED_EVERY_S)

    async def snapshot(self) -> dict[str, Any]:
        tracker = _tracker(self.runtime)
        tracked = tracker.live_calls() if tracker is not None else None
        if tracked is None:
            self.saved = None
            return await asyncio.to_thread(_live_for, self.runtime, self.who)
        loop = asyncio.get_running_loop()
        if self.refresh is not None and self.refresh.done():
            self.saved, self.refresh = self.refresh.result(), None
        if self.refresh is None and self._due(loop.time()):
            self.read_at, self.commits = loop.time(), live_changes.commits
            self.refresh = asyncio.ensure_future(asyncio.to_thread(_read_saved, self.runtime, True))
            if self.saved is None:  # the first snapshot waits for it
                self.saved, self.refresh = await self.refresh, None
        saved = self.saved
        assert saved is not None
        return await asyncio.to_thread(
            lambda: _shown_to(self.who, _compose(self.runtime, saved, tracked))
        )

    async def wait(self, seen: int) -> None:
        """Until a change, the background read's end, a commit's read falling due, or
        ``interval_s``."""
        timeout = self.interval_s
        if self.refresh is None and self.saved is not None and live_changes.commits != self.commits:
            # A commit came in less than SAVED_EVERY_S after the last read: read it then.
            due_in = self.read_at + SAVED_EVERY_S - asyncio.get_running_loop().time()
            timeout = min(timeout, max(0.0, due_in))
        changed = asyncio.ensure_future(live_changes.wait(seen, timeout))
        ends: set[asyncio.Future[Any]] = {changed}
        if self.refresh is not None:
            ends.add(self.refresh)
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()

    def close(self) -> None:
        if self.refresh is not None:
            self.refresh.cancel()


@router.get("/api/live/stream")
async def live_stream(
    request: Request,
    runtime: RuntimeDep,
    who: PrincipalDep,
    interval_s: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
    max_events: Annotated[DbInt | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Server-sent events: a ``snapshot`` event as soon as the tracker has seen a change
    (at most one per 50 ms), and at least one per ``interval_s`` (waits keep growing)."""

    async def events() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        sent = 0
        board = _Board(runtime, who, interval_s)
        here = _tracker(runtime) is not None
        following = nullcontext() if here else live_changes.follow(runtime.db)
        with following:
            try:
                while not await request.is_disconnected():
                    seen = live_changes.version  # before reading: a change meanwhile wakes us
                    began = loop.time()
                    payload = await board.snapshot()
                    last = loop.time()
                    yield f"event: snapshot\ndata: {json.dumps(payload)}\n\n".encode()
                    sent += 1
                    if max_events is not None and sent >= max_events:
                        return
                    await board.wait(seen)
                    # Coalesce: at most one snapshot per 50 ms, and never more than half the
                    # time spent reading snapshots (a loaded host must keep CPU for the writer).
                    gap = max(COALESCE_S, last - began)
                    await asyncio.sleep(max(0.0, gap - (loop.time() - last)))
            finally:
                board.close()

    return StreamingResponse(events(), media_type="text/event-stream")


class IdentityIn(BaseModel):
    identifier: str = Field(min_length=1, max_length=120, description="e.g. PJSIP/2001")
    name: str = Field(min_length=1, max_length=120, description="e.g. Lucy Zhao")


@router.get("/api/agents/identities")
def agent_identities(session: SessionDep, _: PrincipalDep) -> list[dict[str, Any]]:
    """Every agent with the PBX identifiers it is known by (interface, member name, ...)."""
    return all_identities(session)


@router.put("/api/agents/identities")
def set_agent_identity(body: IdentityIn, session: SessionDep, _: PrincipalDep) -> dict[str, Any]:
    """Say who an identifier is; SLA, QA and search then count it as that agent (past
    figures included), and a learned name never overrides this one."""
    return set_name(session, body.identifier, body.name)


@router.get("/api/calls/by-linkedid/{linkedid}", response_model=CallOut)
def call_by_linkedid(linkedid: str, session: SessionDep, who: PrincipalDep) -> dict[str, Any]:
    row = session.scalar(select(Call).where(Call.linkedid == linkedid))
    if row is None:
        raise NotFound(f"no call with linkedid {linkedid}")
    _check_row(call_scope(who), row)
    return shown(who, call_summary(row), {row.caller})
