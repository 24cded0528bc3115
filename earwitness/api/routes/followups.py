"""Follow-ups of resolved cases: list, schedule, agent call-back, outcome, SMS replies."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.api.permissions import sees_full_numbers
from earwitness.cases import followup as fx
from earwitness.cases import lifecycle as lc
from earwitness.cases.policy import policy_for
from earwitness.errors import BadInput, Forbidden, ServiceUnavailable

router = APIRouter(tags=["follow-ups"])


class FollowUpIn(BaseModel):
    channel: Literal["survey", "sms"] = "survey"


class CallBackIn(BaseModel):
    agent: str = Field(min_length=1, max_length=120, description="whose phone rings first")


class OutcomeIn(BaseModel):
    reached: bool = True
    score: int | None = Field(default=None, description="the customer's satisfaction, 1-5")
    note: str = ""


class SmsReplyIn(BaseModel):
    sender: str = Field(alias="from", max_length=40)
    text: str = Field(max_length=1600)


@router.get("/api/cases/{case_id}/follow-ups")
def list_follow_ups(case_id: DbInt, session: SessionDep, who: PrincipalDep) -> list[dict[str, Any]]:
    case = lc.get_case(session, case_id)
    masked = not sees_full_numbers(who)
    out = []
    for fu in fx.list_follow_ups(session, case):
        fx.link_calls(session, fu)
        out.append(fx.follow_up_view(fu, masked=masked))
    return out


@router.post("/api/cases/{case_id}/follow-ups", status_code=201)
def schedule(
    case_id: DbInt, body: FollowUpIn, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """An automated survey call or an SMS, first try at the first allowed hour."""
    policy = policy_for(runtime.settings.case_policy_file)
    case = lc.get_case(session, case_id)
    fu = fx.start_follow_up(session, policy, case, body.channel, who.username)
    _wake(runtime)
    return fx.follow_up_view(fu, masked=not sees_full_numbers(who))


@router.post("/api/cases/{case_id}/call-back", status_code=202)
def call_back(
    case_id: DbInt, body: CallBackIn, runtime: RuntimeDep, session: SessionDep, who: PrincipalDep
) -> dict[str, Any]:
    """Ring the agent's phone, then the customer; tracked, recorded and linked to the case."""
    policy = policy_for(runtime.settings.case_policy_file)
    case = lc.get_case(session, case_id)
    fu = fx.start_follow_up(session, policy, case, "agent", who.username, agent=body.agent)
    _wake(runtime)
    return fx.follow_up_view(fu, masked=not sees_full_numbers(who))


@router.post("/api/cases/{case_id}/follow-ups/{follow_up_id}/outcome")
def outcome(
    case_id: DbInt,
    follow_up_id: DbInt,
    body: OutcomeIn,
    runtime: RuntimeDep,
    session: SessionDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """What the agent heard: the 1-5 answer, or that the customer was not reached."""
    policy = policy_for(runtime.settings.case_policy_file)
    fu = fx.get_follow_up(session, follow_up_id, case_id)
    if body.reached:
        if body.score is None:
            raise BadInput("a reached customer's satisfaction (score 1-5) is required")
        fx.record_answer(session, policy, fu, body.score, who.username, note=body.note)
    else:
        fx.record_try(session, policy, fu, "no_answer", body.note)
    fx.link_calls(session, fu)
    return fx.follow_up_view(fu, masked=not sees_full_numbers(who))


@router.post("/api/follow-ups/sms-reply")
def sms_reply(
    body: SmsReplyIn,
    runtime: RuntimeDep,
    session: SessionDep,
    secret: Annotated[str | None, Header(alias="X-Earwitness-Gateway-Secret")] = None,
) -> dict[str, Any]:
    """The SMS gateway's webhook (no login: it proves itself with the shared secret)."""
    expected = runtime.settings.sms_reply_secret
    if expected is None:
        raise ServiceUnavailable("SMS replies are not configured (EARWITNESS_SMS_REPLY_SECRET)")
    if secret is None or not hmac.compare_digest(secret, expected.get_secret_value()):
        raise Forbidden("wrong or missing X-Earwitness-Gateway-Secret")
    policy = policy_for(runtime.settings.case_policy_file)
    fu, problem = fx.sms_reply(session, policy, body.sender, body.text)
    if problem is not None:
        session.commit()  # the unreadable reply stays on the case
        raise BadInput(problem)
    return {"follow_up_id": fu.id, "case_id": fu.case_id, "score": fu.score, "state": fu.state}


def _wake(runtime: Any) -> None:
    if runtime.worker is not None:
        runtime.worker.notify()
