"""The edges of follow-ups: placing calls through AMI and sending SMS, as durable jobs.

Each try is one job. A survey call is an AMI ``Originate`` of
``Local/<number>@<dial context>`` into the survey context (docs/README: the dialplan
snippet), with ``ChannelId`` chosen here, so the call's linkedid is known before it
exists: the PBX service tracks and records it like any other call and this job links
it to the case. The job listens on a connection of its own for that linkedid's
``DialEnd``, the ``FollowUpAnswer`` user event and the final ``Hangup``; the pure
:func:`survey_result` says what they mean. An agent call-back rings the agent's phone
first (``followup_agent_channel``) and then dials the customer from the dial context.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from earwitness.cases.followup import (
    add_linkedid,
    get_follow_up,
    link_calls,
    record_answer,
    record_try,
)
from earwitness.cases.followup_rules import OPEN_STATES, next_allowed, survey_result
from earwitness.cases.policy import policy_for
from earwitness.cases.sms import sender_from_settings
from earwitness.config import Settings
from earwitness.errors import ServiceUnavailable
from earwitness.jobs.queue import enqueue
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.models import utcnow
from earwitness.telephony.ami import AmiClient, AmiMessage
from earwitness.telephony.ami.client import AmiError
from earwitness.telephony.calls import ORIGINATED_PREFIX


@dataclass
class PlacedCall:
    """What the PBX said about one originated call (events of its linkedid, in order)."""

    linkedid: str
    events: list[dict[str, str]] = field(default_factory=list)
    refused: str | None = None  # Originate answered with Response: Error


@dataclass(frozen=True)
class CallSpec:
    channel: str
    context: str
    exten: str
    variables: dict[str, str]
    ring_timeout_s: float
    max_s: float
    callerid: str | None = None


async def _place(settings: Settings, spec: CallSpec, linkedid: str) -> PlacedCall:
    assert settings.ami_host and settings.ami_user and settings.ami_secret is not None
    placed = PlacedCall(linkedid)
    done = asyncio.Event()

    async def on_event(message: AmiMessage) -> None:
        ev = message.as_dict()
        ev["Event"] = message.name
        mine = ev.get("Linkedid") == linkedid or (
            message.name == "OriginateResponse"
            and (ev.get("Uniqueid") == linkedid or ev.get("Channel") == spec.channel)
        )
        if not mine:
            return
        placed.events.append(ev)
        if message.name == "OriginateResponse" and ev.get("Response") == "Failure":
            done.set()
        if message.name == "Hangup" and ev.get("Uniqueid") == linkedid:
            done.set()

    client = AmiClient(
        settings.ami_host,
        settings.ami_port,
        settings.ami_user,
        settings.ami_secret.get_secret_value(),
        ping_interval=settings.ami_ping_interval_s,
    )
    client.on_event(on_event)
    client.start()
    try:
        try:
            await client.wait_connected(15)
        except AmiError as exc:
            raise ServiceUnavailable(f"PBX not reachable for a follow-up call: {exc}") from None
        headers: dict[str, Any] = {
            "Channel": spec.channel,
            "Context": spec.context,
            "Exten": spec.exten,
            "Priority": 1,
            "Async": "true",
            "Timeout": int(spec.ring_timeout_s * 1000),
            "ChannelId": linkedid,
            "OtherChannelId": f"{linkedid}-2",
            "Variable": [f"{k}={v}" for k, v in spec.variables.items()],
        }
        if spec.callerid:
            headers["CallerID"] = spec.callerid
        try:
            await client.send("Originate", **headers)
        except AmiError as exc:  # Response: Error — the PBX refused the request itself
            placed.refused = str(exc)
            return placed
        with contextlib.suppress(TimeoutError):  # a timeout is a result: survey_result says so
            await asyncio.wait_for(done.wait(), spec.ring_timeout_s + spec.max_s)
        return placed
    finally:
        await client.close()


def _link_when_tracked(ctx: JobContext, follow_up_id: int, wait_s: float = 10.0) -> None:
    """The PBX service saves the call from its own event stream; give it a bounded moment."""
    deadline = time.monotonic() + wait_s
    while True:
        with ctx.env.db.session() as session:
            fu = get_follow_up(session, follow_up_id)
            if link_calls(session, fu) or time.monotonic() > deadline:
                return
        time.sleep(0.25)


def _defer(ctx: JobContext, follow_up_id: int, at: datetime) -> dict[str, Any]:
    with ctx.env.db.session() as session:
        fu = get_follow_up(session, follow_up_id)
        fu.next_try_at = at
        enqueue(session, "followup.call" if fu.channel != "sms" else "followup.sms",
                {"follow_up_id": fu.id, "try": fu.tries + 1},
                idempotency_key=f"followup.defer:{fu.id}:{fu.tries + 1}:{at.isoformat()}",
                run_after=at)  # fmt: skip
    return {"deferred_to": at.isoformat()}


@job_handler("followup.call", max_attempts=2, backoff_s=30.0)
def follow_up_call(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """One survey try or one agent call-back (see the module docstring)."""
    settings = ctx.env.settings
    policy = policy_for(settings.case_policy_file)
    rules = policy.follow_up
    fid = int(payload["follow_up_id"])
    now = utcnow()
    with ctx.env.db.session() as session:
        fu = get_follow_up(session, fid)
        if fu.state not in OPEN_STATES:
            return {"skipped": fu.state}
        channel = fu.channel
        defer_to = next_allowed(rules, now) if channel == "survey" else now
        if defer_to == now:
            if not settings.ami_enabled or not settings.ami_user or settings.ami_secret is None:
                record_try(session, policy, fu, "pbx_unconfigured",
                           "EARWITNESS_AMI_HOST/USER/SECRET are not set")  # fmt: skip
                return {"result": "pbx_unconfigured"}
            linkedid = f"{ORIGINATED_PREFIX}fu-{fu.id}-{uuid.uuid4().hex[:8]}"
            add_linkedid(fu, linkedid)
            fu.state = "calling"
            spec = _call_spec(settings, fu, rules.ring_timeout_s, rules.survey_max_s)
    if defer_to != now:
        return _defer(ctx, fid, defer_to)
    ctx.progress(10.0, f"calling ({channel})")
    placed = asyncio.run(_place(settings, spec, linkedid))
    _link_when_tracked(ctx, fid, wait_s=0 if placed.refused else 10.0)
    result = survey_result(placed.events)
    with ctx.env.db.session() as session:
        fu = get_follow_up(session, fid)
        if placed.refused is not None:
            record_try(session, policy, fu, "rejected", f"the PBX refused: {placed.refused}",
                       linkedid=linkedid)  # fmt: skip
            return {"result": "rejected"}
        if channel == "agent":
            reached = result.outcome in ("answered", "no_digit", "invalid_digit")
            if not reached:
                record_try(session, policy, fu, result.outcome, result.detail, linkedid=linkedid)
            else:
                fu.tries, fu.state, fu.last_result = fu.tries + 1, "placed", "connected"
                fu.case.actions.append(_placed_action(fu, linkedid))
            return {"result": result.outcome if not reached else "connected"}
        if result.outcome == "answered":
            record_answer(session, policy, fu, result.digit, None, note="automated survey",
                          linkedid=linkedid)  # fmt: skip
        else:
            record_try(session, policy, fu, result.outcome, result.detail,
                       linkedid=linkedid, digit=result.digit)  # fmt: skip
        return {"result": result.outcome, "digit": result.digit}


def _call_spec(settings: Settings, fu: Any, ring_s: float, survey_s: float) -> CallSpec:
    variables = {"EW_FOLLOWUP": str(fu.id), "EW_CASE": fu.case.number,
                 "EW_PROMPT": settings.followup_prompt}  # fmt: skip
    if fu.channel == "agent":  # the agent's phone first, then the customer from the dial context
        return CallSpec(settings.followup_agent_channel.format(agent=fu.agent),
                        settings.followup_dial_context, fu.phone or "", variables,
                        ring_s, 3600.0, settings.followup_caller_id)  # fmt: skip
    return CallSpec(f"Local/{fu.phone}@{settings.followup_dial_context}/n",
                    settings.followup_survey_context, "s", variables, ring_s, survey_s,
                    settings.followup_caller_id)  # fmt: skip


def _placed_action(fu: Any, linkedid: str) -> Any:
    from earwitness.models import CaseAction

    return CaseAction(kind="follow_up_attempt", actor=fu.agent, at=utcnow(),
                      text=f"agent call-back by {fu.agent}: connected; outcome to record",
                      data={"follow_up_id": fu.id, "try": fu.tries, "result": "connected",
                            "linkedid": linkedid})  # fmt: skip


@job_handler("followup.sms", max_attempts=3, backoff_s=60.0)
def follow_up_sms(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Send the follow-up question by SMS; the answer comes to the reply endpoint."""
    settings = ctx.env.settings
    policy = policy_for(settings.case_policy_file)
    fid = int(payload["follow_up_id"])
    now = utcnow()
    if next_allowed(policy.follow_up, now) != now:
        return _defer(ctx, fid, next_allowed(policy.follow_up, now))
    with ctx.env.db.session() as session:
        fu = get_follow_up(session, fid)
        if fu.state not in OPEN_STATES:
            return {"skipped": fu.state}
        phone, number = fu.phone or "", fu.case.number
    sender = sender_from_settings(settings)
    if sender is None:
        with ctx.env.db.session() as session:
            record_try(session, policy, get_follow_up(session, fid), "pbx_unconfigured",
                       "EARWITNESS_SMS_GATEWAY_URL is not set")  # fmt: skip
        return {"result": "sms_unconfigured"}
    receipt = sender.send(phone, settings.sms_template.format(case=number))  # raises: job retry
    with ctx.env.db.session() as session:
        fu = get_follow_up(session, fid)
        fu.state, fu.tries, fu.last_result = "placed", fu.tries + 1, "sent"
        from earwitness.models import CaseAction

        fu.case.actions.append(CaseAction(kind="follow_up_attempt", at=utcnow(),
                                          text=f"sms sent ({receipt})",
                                          data={"follow_up_id": fid, "result": "sent",
                                                "receipt": receipt}))  # fmt: skip
    return {"result": "sent", "receipt": receipt}
