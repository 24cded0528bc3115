"""QA scorecards: one call (JSON or HTML with timeline), agents over a period, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from earwitness.api.deps import Principal, RuntimeDep, SessionDep, require_role
from earwitness.errors import BadInput
from earwitness.models import QaResult, utcnow
from earwitness.qa.report import agents_html, call_html
from earwitness.qa.store import agent_scorecards, audit_recording, scorecard, set_override

router = APIRouter(tags=["qa"])
Reader = Annotated[Principal, require_role("qa", "supervisor", "investigator")]
Reviewer = Annotated[Principal, require_role("qa", "supervisor")]


class OverrideIn(BaseModel):
    status: Literal["passed", "failed", "not_applicable"]
    reason: str = Field(min_length=1, max_length=2000)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise BadInput(f"{name} needs a timezone (e.g. 2026-11-26T08:00:00+08:00 or ...Z)")
    return value


@router.get("/api/qa/calls/{recording_id}", response_model=None)
def call_scorecard(
    recording_id: int,
    runtime: RuntimeDep,
    session: SessionDep,
    _: Reader,
    format: Literal["json", "html"] = "json",  # noqa: A002
) -> dict[str, Any] | HTMLResponse:
    """The call's scorecard; audited now (words and timing) if no audit job has run yet."""
    exists = session.scalar(select(QaResult.id).where(QaResult.recording_id == recording_id))
    if exists is None:
        audit_recording(session, recording_id, rules_file=runtime.settings.qa_rules_file)
    card = scorecard(session, recording_id)
    return HTMLResponse(call_html(card)) if format == "html" else card


@router.post("/api/qa/calls/{recording_id}/audit")
def reaudit(
    recording_id: int, runtime: RuntimeDep, session: SessionDep, _: Reviewer
) -> dict[str, Any]:
    """Audit again now (after a rules change); overrides are kept."""
    audit_recording(session, recording_id, rules_file=runtime.settings.qa_rules_file)
    return scorecard(session, recording_id)


@router.put("/api/qa/calls/{recording_id}/overrides/{rule_id}")
def override(
    recording_id: int, rule_id: str, body: OverrideIn, session: SessionDep, who: Reviewer
) -> dict[str, Any]:
    """Calibration: a QA person sets one rule's result; who, when and why are kept."""
    return set_override(session, recording_id, rule_id, body.status, body.reason, who.username)


@router.get("/api/qa/agents", response_model=None)
def agents(
    session: SessionDep,
    _: Reader,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    agent: str | None = None,
    format: Literal["json", "html"] = "json",  # noqa: A002
) -> dict[str, Any] | HTMLResponse:
    """Per-agent scorecards over [from, to) (default: the last 7 days)."""
    stop = _aware(end, "to") if end else utcnow()
    begin = _aware(start, "from") if start else stop - timedelta(days=7)
    data = agent_scorecards(session, begin, stop, agent=agent)
    return HTMLResponse(agents_html(data)) if format == "html" else data
