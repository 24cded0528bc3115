"""Open a case from a call: link every earlier call of the number, pre-fill facts.

Seed 004: before calling an escalated complainant back, listen to their earlier
recordings. So a case opened from a call links that call *and all earlier calls
from the same number*; the first-ask owner is the agent who answered the first of
them (seed 001); facts are suggested from their transcripts, each with its line.
"""

from __future__ import annotations

from datetime import UTC, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.cases.facts import Fact, Line, extract, suggested_urgency
from earwitness.cases.lifecycle import create_case, get_case
from earwitness.cases.policy import Policy
from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.models import (
    Call,
    Case,
    CaseAction,
    Recording,
    Segment,
    case_calls,
    utcnow,
)
from earwitness.transcription.queries import find_latest_transcript


def calls_of_number(session: Session, call: Call) -> list[Call]:
    """This call and every earlier call from the same caller number, oldest first."""
    if not call.caller:
        return [call]
    return list(
        session.scalars(
            select(Call)
            .where(Call.caller == call.caller, Call.entered_at <= call.entered_at)
            .order_by(Call.entered_at, Call.id)
        )
    )


def transcript_lines(session: Session, calls: list[Call]) -> list[Line]:
    """Lines of the newest transcript of each call's recordings, with their source."""
    lines: list[Line] = []
    for call in calls:
        recordings = session.scalars(
            select(Recording).where(Recording.call_id == call.id).order_by(Recording.id)
        )
        for recording in recordings:
            transcript = find_latest_transcript(session, recording.id)
            if transcript is None:
                continue
            base = call.answered_at or call.entered_at
            segments = session.scalars(
                select(Segment)
                .where(Segment.transcript_id == transcript.id)
                .order_by(Segment.start_s)
            )
            for seg in segments:
                lines.append(
                    Line(
                        seg.text,
                        {
                            "call_id": call.id,
                            "recording_id": recording.id,
                            "transcript_id": transcript.id,
                            "segment_id": seg.id,
                            "start_s": seg.start_s,
                            "role": seg.role,
                            "at": (base + timedelta(seconds=seg.start_s)).isoformat(),
                        },
                    )
                )
    return lines


def facts_record(facts: list[Fact]) -> dict[str, Any]:
    items = []
    for number, fact in enumerate(facts, 1):
        items.append(fact.as_dict() | {"id": number})
    return {
        "items": items,
        "suggested": suggested_urgency(facts),
        "extracted_at": utcnow().isoformat(),
    }


def open_from_call(
    session: Session,
    policy: Policy,
    call_id: int,
    *,
    actor: str | None,
    category: str = "other",
    urgency: str | None = None,
    summary: str = "",
    zone: tzinfo = UTC,
) -> Case:
    call = session.get(Call, call_id)
    if call is None:
        raise NotFound(f"call {call_id} does not exist")
    existing = session.scalar(select(case_calls.c.case_id).where(case_calls.c.call_id == call_id))
    if existing is not None:
        raise Conflict(f"call {call_id} already belongs to case {existing}")
    calls = calls_of_number(session, call)
    answered = next((c for c in calls if c.agent is not None), None)
    owner = (
        (answered.agent.name or answered.agent.interface) if answered and answered.agent else None
    )
    facts = extract(transcript_lines(session, calls))
    record = facts_record(facts)
    case = create_case(
        session,
        policy,
        actor=actor,
        owner=owner or actor,
        complainant_phone=call.caller,
        complainant_name=call.caller_name,
        category=category,
        urgency=urgency or record["suggested"]["urgency"],
        summary=summary,
        opened_at=utcnow(),
        zone=zone,
        source_call_id=call.id,
    )
    case.facts = record
    for linked in calls:
        session.execute(case_calls.insert().values(case_id=case.id, call_id=linked.id))
    case.actions.append(
        CaseAction(
            kind="calls_linked",
            actor=actor,
            text=f"linked {len(calls)} call(s) from {call.caller or 'unknown number'}",
            data={
                "call_ids": [c.id for c in calls],
                "first_ask_call": answered.id if answered else None,
            },
        )
    )
    session.flush()
    return case


def refresh_facts(session: Session, case_id: int) -> dict[str, Any]:
    """Re-extract from the case's calls; confirmed/edited/rejected facts are kept as they are."""
    case = get_case(session, case_id)
    calls = list(
        session.scalars(
            select(Call)
            .join(case_calls, case_calls.c.call_id == Call.id)
            .where(case_calls.c.case_id == case.id)
            .order_by(Call.entered_at)
        )
    )
    fresh = facts_record(extract(transcript_lines(session, calls)))
    old = (case.facts or {}).get("items", [])
    decided = [f for f in old if f.get("status") != "suggested"]
    keys = {(f["kind"], repr(f["normalized"])) for f in decided}
    next_id = max((f["id"] for f in old), default=0)
    items = list(decided)
    for fact in fresh["items"]:
        if (fact["kind"], repr(fact["normalized"])) not in keys:
            next_id += 1
            items.append(fact | {"id": next_id})
    case.facts = fresh | {"items": items}
    return case.facts


def review_fact(
    session: Session,
    case_id: int,
    fact_id: int,
    *,
    actor: str | None,
    status: str,
    value: str | None = None,
) -> dict[str, Any]:
    """A person confirms, edits (new value, original kept) or rejects a suggested fact."""
    if status not in ("confirmed", "edited", "rejected"):
        raise BadInput("status must be confirmed, edited or rejected")
    if status == "edited" and not value:
        raise BadInput("an edit needs the corrected value")
    case = get_case(session, case_id)
    facts = dict(case.facts or {})
    items = [dict(f) for f in facts.get("items", [])]
    fact = next((f for f in items if f.get("id") == fact_id), None)
    if fact is None:
        raise NotFound(f"case {case.number} has no fact {fact_id}")
    before = {"status": fact.get("status"), "value": fact.get("value")}
    if status == "edited":
        fact.setdefault("original", fact["value"])
        fact["value"] = value
    fact.update({"status": status, "reviewed_by": actor, "reviewed_at": utcnow().isoformat()})
    case.facts = facts | {"items": items}  # new object so the JSON column is saved
    case.actions.append(
        CaseAction(
            kind="fact",
            actor=actor,
            text=f"fact {fact_id} {status}",
            data={
                "fact_id": fact_id,
                "before": before,
                "after": {"status": status, "value": fact["value"]},
            },
        )
    )
    session.flush()
    return fact
