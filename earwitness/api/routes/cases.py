"""Complaint cases: lifecycle, hand-over, promises, facts, deadlines, timeline, bundle, review."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date, datetime
from typing import IO, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from earwitness.api.deps import Principal, PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.api.permissions import call_scope, sees_full_numbers
from earwitness.api.routes.calls import check_call_scope
from earwitness.cases import lifecycle as lc
from earwitness.cases.deadlines import list_deadlines
from earwitness.cases.followup import schedule_on_resolution
from earwitness.cases.from_call import open_from_call, refresh_facts, review_fact
from earwitness.cases.policy import Policy, deadline_states, policy_for
from earwitness.cases.review import to_csv, to_html, weekly_review
from earwitness.cases.timeline import build_timeline
from earwitness.evidence.bundle import write_bundle
from earwitness.evidence.sniff import attachment, safe_member_name
from earwitness.evidence.store import CHUNK
from earwitness.masking import mask_phone, redact
from earwitness.models import Call, Case, case_calls, utcnow
from earwitness.runtime import Runtime
from earwitness.timezones import week_monday, zone_named

router = APIRouter(tags=["cases"])


def _policy(runtime: Runtime) -> Policy:
    return policy_for(runtime.settings.case_policy_file)


def _zone(runtime: Runtime) -> ZoneInfo:
    return zone_named(runtime.settings.timezone)


class CaseIn(BaseModel):
    complainant_phone: str | None = Field(default=None, max_length=40)
    complainant_name: str | None = Field(default=None, max_length=120)
    category: str = "other"
    root_cause: str | None = None
    urgency: Literal["A", "B", "C"] = "B"
    tier: int = Field(default=1, ge=1, le=3)
    summary: str = ""
    owner: str | None = Field(default=None, description="first-ask owner; default: you")

    @model_validator(mode="after")
    def _says_something(self) -> CaseIn:
        """A case must say who complains or about what; ``{}`` is not a complaint."""
        given = (self.complainant_phone, self.complainant_name, self.summary)
        if not any(v and v.strip() for v in given):
            raise ValueError("a case needs a complainant_phone, a complainant_name or a summary")
        return self


class CaseFromCallIn(BaseModel):
    category: str = "other"
    urgency: Literal["A", "B", "C"] | None = None
    summary: str = ""


class CasePatch(BaseModel):
    category: str | None = None
    root_cause: str | None = None
    urgency: Literal["A", "B", "C"] | None = None
    tier: int | None = Field(default=None, ge=1, le=3)
    summary: str | None = None
    complainant_name: str | None = None


class StatusIn(BaseModel):
    to: str
    note: str = ""


class HandoverIn(BaseModel):
    to: str = Field(min_length=1, max_length=120)
    reason: str = Field(min_length=1)


class ActionIn(BaseModel):
    kind: str
    text: str = ""
    data: dict[str, Any] = {}


class PromiseIn(BaseModel):
    text: str = Field(min_length=1)
    due_at: datetime | None = None
    within_minutes: float | None = Field(default=None, gt=0)


class FactReviewIn(BaseModel):
    status: Literal["confirmed", "edited", "rejected"]
    value: str | None = None


def case_summary(case: Case, *, masked: bool) -> dict[str, Any]:
    return {
        "id": case.id,
        "number": case.number,
        "complainant_phone": mask_phone(case.complainant_phone)
        if masked
        else case.complainant_phone,
        "complainant_name": case.complainant_name,
        "category": case.category,
        "root_cause": case.root_cause,
        "urgency": case.urgency,
        "tier": case.tier,
        "status": case.status,
        "owner": case.owner,
        "first_owner": case.first_owner,
        "summary": case.summary,
        "opened_at": case.opened_at,
        "resolved_at": case.resolved_at,
        "closed_at": case.closed_at,
        "reopened_count": case.reopened_count,
    }


def case_detail(session: Any, policy: Policy, case: Case, principal: Principal) -> dict[str, Any]:
    now = utcnow()
    calls = session.scalars(
        select(case_calls.c.call_id).where(case_calls.c.case_id == case.id)
    ).all()
    masked = not sees_full_numbers(principal)
    detail = case_summary(case, masked=masked) | {
        "source_call_id": case.source_call_id,
        "call_ids": sorted(calls),
        "facts": case.facts or {},
        "actions": [
            {
                "id": a.id,
                "at": a.at,
                "actor": a.actor,
                "kind": a.kind,
                "text": a.text,
                "due_at": a.due_at,
                "data": a.data,
            }
            for a in case.actions
        ],
        "promises": lc.promise_states(case, now),
        "deadlines": deadline_states(policy, case.urgency, lc.milestones(case), now),
    }
    # Facts and action texts quote numbers too: the same masking as the timeline.
    return redact(detail, _case_numbers(session, case.id)) if masked else detail


@router.get("/api/cases")
def list_cases(
    session: SessionDep,
    _: PrincipalDep,
    status: str | None = None,
    urgency: str | None = None,
    owner: str | None = None,
    phone: str | None = None,
    limit: Annotated[DbInt, Query(ge=1, le=500)] = 50,
    offset: Annotated[DbInt, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Cases, newest first; phone numbers are masked in lists."""
    query = select(Case).order_by(Case.id.desc()).limit(limit).offset(offset)
    if status:
        query = query.where(Case.status == status)
    if urgency:
        query = query.where(Case.urgency == urgency)
    if owner:
        query = query.where(Case.owner == owner)
    if phone:
        query = query.where(Case.complainant_phone == phone)
    return [case_summary(c, masked=True) for c in session.scalars(query)]


@router.post("/api/cases", status_code=201)
def create(
    body: CaseIn, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    policy = _policy(runtime)
    case = lc.create_case(
        session, policy, actor=who.username, zone=_zone(runtime), **body.model_dump()
    )
    return case_detail(session, policy, case, who)


@router.post("/api/calls/{call_id}/case", status_code=201)
def create_from_call(
    call_id: DbInt,
    body: CaseFromCallIn,
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """Open a case from a call: links all earlier calls of the number, suggests facts."""
    check_call_scope(session, call_scope(who), call_id)
    policy = _policy(runtime)
    case = open_from_call(
        session, policy, call_id, actor=who.username, zone=_zone(runtime), **body.model_dump()
    )
    return case_detail(session, policy, case, who)


@router.get("/api/cases/deadlines")
def deadlines(
    runtime: RuntimeDep,
    session: SessionDep,
    _: PrincipalDep,
    breached_only: bool = True,
) -> list[dict[str, Any]]:
    """Breached deadlines and broken promises of open cases (or all running clocks)."""
    return list_deadlines(session, _policy(runtime), utcnow(), breached_only=breached_only)


@router.get("/api/review/weekly", response_model=None)
def review(
    runtime: RuntimeDep,
    session: SessionDep,
    _: PrincipalDep,
    week: date | None = None,
    format: Literal["json", "html", "csv"] = "json",
) -> dict[str, Any] | HTMLResponse | PlainTextResponse:
    """Monday review: counts by category/root cause/urgency/agent, breaches, satisfaction.

    Weeks are local to EARWITNESS_TIMEZONE; the default is the week it is now there."""
    zone = _zone(runtime)
    monday = week or week_monday(utcnow(), zone)
    data = weekly_review(session, _policy(runtime), monday, zone=zone)
    if format == "html":
        return HTMLResponse(to_html(data))
    if format == "csv":
        return PlainTextResponse(
            to_csv(data),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="review-{data["week"]}.csv"'},
        )
    return data


@router.get("/api/cases/{case_id}")
def read_case(
    case_id: DbInt, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    return case_detail(session, _policy(runtime), lc.get_case(session, case_id), who)


@router.patch("/api/cases/{case_id}")
def patch_case(
    case_id: DbInt, body: CasePatch, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    policy = _policy(runtime)
    case = lc.get_case(session, case_id)
    lc.update_case(session, policy, case, who.username, body.model_dump(exclude_unset=True))
    return case_detail(session, policy, case, who)


@router.post("/api/cases/{case_id}/status")
def set_status(
    case_id: DbInt, body: StatusIn, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    case = lc.change_status(
        session, lc.get_case(session, case_id), body.to, who.username, body.note
    )
    if case.status == "resolved":  # the follow-up clock starts: schedule its first try
        schedule_on_resolution(session, _policy(runtime), case, who.username)
    return case_detail(session, _policy(runtime), case, who)


@router.post("/api/cases/{case_id}/handover")
def hand_over(
    case_id: DbInt, body: HandoverIn, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Explicit, recorded hand-over: the only way ownership moves (first-ask rule)."""
    case = lc.handover(session, lc.get_case(session, case_id), body.to, who.username, body.reason)
    return case_detail(session, _policy(runtime), case, who)


@router.post("/api/cases/{case_id}/actions", status_code=201)
def add_action(
    case_id: DbInt, body: ActionIn, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Milestones (response, solution, contact, follow_up with satisfied) and notes."""
    case = lc.get_case(session, case_id)
    action = lc.record_action(session, case, body.kind, who.username, body.text, body.data)
    return {"id": action.id, "kind": action.kind, "at": action.at}


@router.post("/api/cases/{case_id}/promises", status_code=201)
def promise(
    case_id: DbInt, body: PromiseIn, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Record a time commitment made to the customer (seed 004)."""
    case = lc.get_case(session, case_id)
    action = lc.add_promise(
        session,
        case,
        who.username,
        body.text,
        due_at=body.due_at,
        within_minutes=body.within_minutes,
    )
    return next(p for p in lc.promise_states(case, utcnow()) if p["id"] == action.id)


@router.post("/api/cases/{case_id}/promises/{promise_id}/kept")
def promise_kept(
    case_id: DbInt, promise_id: DbInt, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    case = lc.get_case(session, case_id)
    lc.keep_promise(session, case, promise_id, who.username)
    return next(p for p in lc.promise_states(case, utcnow()) if p["id"] == promise_id)


@router.post("/api/cases/{case_id}/facts/refresh")
def facts_refresh(case_id: DbInt, session: SessionDep, _: PrincipalDep) -> dict[str, Any]:
    return refresh_facts(session, case_id)


@router.post("/api/cases/{case_id}/facts/{fact_id}")
def fact_review(
    case_id: DbInt, fact_id: DbInt, body: FactReviewIn, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Confirm, edit or reject a suggested fact; the change is an action on record."""
    return review_fact(
        session, case_id, fact_id, actor=who.username, status=body.status, value=body.value
    )


@router.get("/api/cases/{case_id}/timeline")
def timeline(
    case_id: DbInt, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    data = build_timeline(session, _policy(runtime), case_id, zone=_zone(runtime))
    if sees_full_numbers(who):
        return data
    return redact(data, _case_numbers(session, case_id))


@router.get("/api/cases/{case_id}/bundle")
def bundle(
    case_id: DbInt,
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
    allow_tampered: Annotated[
        bool,
        Query(
            description="export even if verification fails (the zip then opens with TAMPERED.txt)"
        ),
    ] = False,
) -> StreamingResponse:
    """Zip of files, recordings, transcripts, track analyses, timeline, custody log, manifest,
    SHA256SUMS. A case whose evidence fails verification is refused (409, naming each
    failure) unless ``allow_tampered=true``."""
    case = lc.get_case(session, case_id)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115
    try:
        timeline_data = build_timeline(session, _policy(runtime), case_id, zone=_zone(runtime))
        write_bundle(
            session,
            runtime.blobs,
            case_id,
            spool,
            actor=who.username,
            timeline=timeline_data,
            allow_tampered=allow_tampered,
            settings=runtime.settings,
        )
        session.commit()  # the export entries are on record before the bytes leave
    except BaseException:
        spool.close()
        raise
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            yield from iter(lambda: spool.read(CHUNK), b"")

    name = f"{safe_member_name(case.number, fallback=f'case-{case_id}')}-bundle.zip"
    return StreamingResponse(
        chunks(),
        media_type="application/zip",
        headers={"Content-Disposition": attachment(name)},
    )


@router.get("/api/cases/{case_id}/calls")
def case_calls_list(case_id: DbInt, session: SessionDep, who: PrincipalDep) -> list[dict[str, Any]]:
    lc.get_case(session, case_id)
    full = sees_full_numbers(who)
    calls = session.scalars(
        select(Call)
        .join(case_calls, case_calls.c.call_id == Call.id)
        .where(case_calls.c.case_id == case_id)
        .order_by(Call.entered_at)
    )
    return [
        {
            "id": c.id,
            "entered_at": c.entered_at,
            "answered_at": c.answered_at,
            "wait_s": c.wait_s,
            "rings": c.rings,
            "outcome": c.outcome,
            "caller": c.caller if full else mask_phone(c.caller),
        }
        for c in calls
    ]


def _case_numbers(session: Any, case_id: int) -> set[str | None]:
    """The complainant's number and every linked call's caller number."""
    case = lc.get_case(session, case_id)
    callers = session.scalars(
        select(Call.caller)
        .join(case_calls, case_calls.c.call_id == Call.id)
        .where(case_calls.c.case_id == case_id)
    ).all()
    return {case.complainant_phone, *callers}
