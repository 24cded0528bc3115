"""Caller history: every call and case of one phone number, newest first (seed 004: pull the
complainant's earlier recordings before calling back)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from earwitness.models import Call, Case, Recording, case_calls
from earwitness.search.service import CaseRef, phone_variants


@dataclass
class HistoryCall:
    id: int
    entered_at: datetime
    queue: str | None
    agent: str | None
    outcome: str
    wait_s: float | None
    rings: int | None
    recording_ids: list[int]
    cases: list[CaseRef]


@dataclass
class HistoryCase:
    id: int
    number: str
    category: str
    status: str
    urgency: str
    opened_at: datetime
    summary: str


@dataclass
class CallerHistory:
    number: str
    variants: list[str]
    calls: list[HistoryCall] = field(default_factory=list)
    cases: list[HistoryCase] = field(default_factory=list)


def caller_history(session: Session, number: str, *, limit: int = 200) -> CallerHistory:
    variants = phone_variants(number)
    calls = list(
        session.scalars(
            sa.select(Call)
            .where(Call.caller.in_(variants))
            .order_by(Call.entered_at.desc(), Call.id.desc())
            .limit(limit)
        ).unique()
    )
    call_ids = [c.id for c in calls]
    recordings: dict[int, list[int]] = {}
    for rid, cid in session.execute(
        sa.select(Recording.id, Recording.call_id)
        .where(Recording.call_id.in_(call_ids))
        .order_by(Recording.id)
    ):
        if cid is not None:
            recordings.setdefault(cid, []).append(rid)
    links = session.execute(
        sa.select(case_calls.c.call_id, case_calls.c.case_id).where(
            case_calls.c.call_id.in_(call_ids)
        )
    ).all()
    case_rows = list(
        session.scalars(
            sa.select(Case)
            .where(
                Case.complainant_phone.in_(variants)
                | Case.id.in_({link.case_id for link in links})
                | Case.source_call_id.in_(call_ids)
            )
            .order_by(Case.opened_at.desc(), Case.id.desc())
        )
    )
    refs = {c.id: CaseRef(c.id, c.number, c.category) for c in case_rows}
    history = CallerHistory(number=number, variants=variants)
    for call in calls:
        linked = sorted(
            {link.case_id for link in links if link.call_id == call.id}
            | {c.id for c in case_rows if c.source_call_id == call.id}
        )
        history.calls.append(
            HistoryCall(
                id=call.id,
                entered_at=call.entered_at,
                queue=call.queue.name if call.queue else None,
                agent=(call.agent.name or call.agent.interface) if call.agent else None,
                outcome=call.outcome,
                wait_s=call.wait_s,
                rings=call.rings,
                recording_ids=recordings.get(call.id, []),
                cases=[refs[i] for i in linked if i in refs],
            )
        )
    history.cases = [
        HistoryCase(c.id, c.number, c.category, c.status, c.urgency, c.opened_at, c.summary)
        for c in case_rows
    ]
    return history
