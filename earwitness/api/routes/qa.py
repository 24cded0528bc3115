"""QA scorecards: one call (JSON or HTML with timeline), agents over a period, overrides."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt, period
from earwitness.api.permissions import call_scope
from earwitness.api.routes.calls import check_call_scope
from earwitness.errors import Forbidden, NotFound
from earwitness.models import QaResult, Recording, utcnow
from earwitness.qa.report import agents_html, call_html
from earwitness.qa.store import (
    agent_scorecards,
    audit_recording,
    override_history,
    remove_override,
    scorecard,
    set_override,
)
from earwitness.timezones import EXAMPLES, last_days

router = APIRouter(tags=["qa"])


class OverrideIn(BaseModel):
    status: Literal["passed", "failed", "not_applicable"]
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/api/qa/calls/{recording_id}", response_model=None)
def call_scorecard(
    recording_id: DbInt,
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
    recording_id: DbInt, runtime: RuntimeDep, session: SessionDep, _: PrincipalDep
) -> dict[str, Any]:
    """Audit again now (after a rules change); overrides are kept."""
    audit_recording(session, recording_id, rules_file=runtime.settings.qa_rules_file)
    return scorecard(session, recording_id)


@router.put("/api/qa/calls/{recording_id}/overrides/{rule_id}")
def override(
    recording_id: DbInt, rule_id: str, body: OverrideIn, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Calibration: a QA person sets one rule's result; who, when and why are kept."""
    return set_override(session, recording_id, rule_id, body.status, body.reason, who.username)


@router.delete("/api/qa/calls/{recording_id}/overrides/{rule_id}")
def delete_override(
    recording_id: DbInt,
    rule_id: str,
    session: SessionDep,
    who: PrincipalDep,
    reason: Annotated[str, Query(max_length=2000)] = "",
) -> dict[str, Any]:
    """Withdraw an override (the machine's result applies again); kept in the history."""
    return remove_override(session, recording_id, rule_id, reason, who.username)


@router.get("/api/qa/calls/{recording_id}/overrides")
def overrides_history(recording_id: DbInt, session: SessionDep, _: PrincipalDep) -> dict[str, Any]:
    """Every override of the call, oldest first, with withdrawals (status ``removed``)."""
    return {"recording_id": recording_id, "history": override_history(session, recording_id)}


@router.get("/api/qa/agents", response_model=None)
def agents(
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
    start: Annotated[str | None, Query(alias="from", description=f"e.g. {EXAMPLES}")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    tz: Annotated[str | None, Query(description="IANA zone; default EARWITNESS_TIMEZONE")] = None,
    agent: str | None = None,
    format: Literal["json", "html"] = "json",  # noqa: A002
) -> dict[str, Any] | HTMLResponse:
    """Per-agent scorecards over [from, to) (default: the last 7 local days); an agent's own
    only. Trend days are local to ``tz``; the response echoes the period it covered."""
    scope = call_scope(who)
    if scope.nothing or (scope.agent is not None and agent not in (None, scope.agent)):
        raise Forbidden("agents see their own scorecards only")
    agent = scope.agent or agent
    now = utcnow()
    when = period(runtime, start, end, tz, now=now)
    stop = when.end or now
    begin = when.start or (last_days(7, when.zone, now=now).start or stop - timedelta(days=7))
    data = agent_scorecards(session, begin, stop, agent=agent, zone=when.zone)
    return HTMLResponse(agents_html(data)) if format == "html" else data
