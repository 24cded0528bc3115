"""QA scorecards: one call (JSON or HTML with timeline), agents over a period, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.permissions import call_scope
from earwitness.api.routes.calls import check_call_scope
from earwitness.errors import BadInput, Forbidden, NotFound
from earwitness.models import QaResult, Recording, utcnow
from earwitness.qa.report import agents_html, call_html
from earwitness.qa.store import agent_scorecards, audit_recording, scorecard, set_override

router = APIRouter(tags=["qa"])


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
    who: PrincipalDep,
    format: Literal["json", "html"] = "json",  # noqa: A002
) -> dict[str, Any] | HTMLResponse:
    """The call's scorecard; audited now (words and timing) if no audit job has run yet.

    An agent sees the scorecards of their own calls only."""
    scope = call_scope(who)
    if not scope.everything:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise NotFound(f"recording {recording_id} does not exist")
        if recording.call_id is None:
            raise Forbidden(f"recording {recording_id} is not one of your calls")
        check_call_scope(session, scope, recording.call_id)
    exists = session.scalar(select(QaResult.id).where(QaResult.recording_id == recording_id))
    if exists is None:
        audit_recording(session, recording_id, rules_file=runtime.settings.qa_rules_file)
    card = scorecard(session, recording_id)
    return HTMLResponse(call_html(card)) if format == "html" else card


@router.post("/api/qa/calls/{recording_id}/audit")
def reaudit(
    recording_id: int, runtime: RuntimeDep, session: SessionDep, _: PrincipalDep
) -> dict[str, Any]:
    """Audit again now (after a rules change); overrides are kept."""
    audit_recording(session, recording_id, rules_file=runtime.settings.qa_rules_file)
    return scorecard(session, recording_id)


@router.put("/api/qa/calls/{recording_id}/overrides/{rule_id}")
def override(
    recording_id: int, rule_id: str, body: OverrideIn, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Calibration: a QA person sets one rule's result; who, when and why are kept."""
    return set_override(session, recording_id, rule_id, body.status, body.reason, who.username)


@router.get("/api/qa/agents", response_model=None)
def agents(
    session: SessionDep,
    who: PrincipalDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    agent: str | None = None,
    format: Literal["json", "html"] = "json",  # noqa: A002
) -> dict[str, Any] | HTMLResponse:
    """Per-agent scorecards over [from, to) (default: the last 7 days); an agent's own only."""
    scope = call_scope(who)
    if scope.nothing or (scope.agent is not None and agent not in (None, scope.agent)):
        raise Forbidden("agents see their own scorecards only")
    agent = scope.agent or agent
    stop = _aware(end, "to") if end else utcnow()
    begin = _aware(start, "from") if start else stop - timedelta(days=7)
    data = agent_scorecards(session, begin, stop, agent=agent)
    return HTMLResponse(agents_html(data)) if format == "html" else data
