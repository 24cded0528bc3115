"""Follow-ups on the database: schedule on resolution, record each try, store the answer.

The rules (hours, retries, scores) are in :mod:`followup_rules`; placing calls and
sending messages is in :mod:`followup_jobs`. Every try becomes a case action
(``follow_up_attempt``), every answer a ``follow_up`` action — the kind the deadline
clock, the timeline and the Monday review already read — so nothing is kept twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from earwitness.cases.followup_rules import (
    FINAL_FAILURES,
    OPEN_STATES,
    check_phone,
    is_satisfied,
    next_allowed,
    next_try_at,
    parse_score,
    within_allowed_hours,
)
from earwitness.cases.policy import Policy
from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.jobs.queue import enqueue
from earwitness.masking import mask_phone
from earwitness.models import Call, Case, CaseAction, FollowUp, case_calls, utcnow

JOB_CALL = "followup.call"
JOB_SMS = "followup.sms"


def _note(case: Case, kind: str, actor: str | None, text: str, data: dict[str, Any]) -> None:
    case.actions.append(CaseAction(kind=kind, actor=actor, text=text, data=data, at=utcnow()))


def get_follow_up(session: Session, follow_up_id: int, case_id: int | None = None) -> FollowUp:
    fu = session.get(FollowUp, follow_up_id)
    if fu is None or (case_id is not None and fu.case_id != case_id):
        raise NotFound(f"follow-up {follow_up_id} does not exist on this case")
    return fu


def _enqueue_try(session: Session, fu: FollowUp, at: datetime) -> None:
    fu.next_try_at = at
    kind = JOB_SMS if fu.channel == "sms" else JOB_CALL
    enqueue(
        session,
        kind,
        {"follow_up_id": fu.id, "try": fu.tries + 1},
        idempotency_key=f"{kind}:{fu.id}:{fu.tries + 1}",
        max_attempts=2,
        run_after=at,
    )


def start_follow_up(
    session: Session,
    policy: Policy,
    case: Case,
    channel: str,
    actor: str | None,
    *,
    agent: str | None = None,
    now: datetime | None = None,
    strict: bool = True,
) -> FollowUp:
    """A follow-up of a resolved case, its first try queued for the first allowed time.

    ``strict`` (a person asked for it): a missing or undialable number, or an agent
    call-back outside allowed hours, is an error now. Scheduled on resolution instead,
    the follow-up is kept in state ``failed`` with the reason: nothing silently dropped.
    """
    now = now or utcnow()
    rules = policy.follow_up
    if case.resolved_at is None:
        raise Conflict(f"case {case.number} is not resolved; a follow-up comes after resolution")
    if channel not in ("survey", "agent", "sms"):
        raise BadInput(f"follow-up channel {channel!r}: survey, agent or sms")
    if channel == "agent" and not (agent or "").strip():
        raise BadInput("an agent call-back needs the agent whose phone rings first")
    due = case.resolved_at + policy.deadline(case.urgency, "follow_up")
    fu = FollowUp(
        case=case, channel=channel, agent=agent, state="scheduled", due_at=due,
        max_tries=1 if channel == "agent" else rules.attempts, data={"linkedids": []},
        detail="",
    )  # fmt: skip
    try:
        fu.phone = check_phone(case.complainant_phone)
    except BadInput as exc:
        if strict:
            raise
        fu.phone = case.complainant_phone
        fu.state = "failed"
        fu.last_result = (
            "no_phone" if not (case.complainant_phone or "").strip() else "invalid_number"
        )
        fu.detail = exc.detail
    if channel == "agent" and not within_allowed_hours(rules, now):
        raise Conflict(
            f"outside the allowed calling hours {rules.record()['allowed_hours']} "
            f"(UTC{rules.utc_offset_h:+g}); next allowed: {next_allowed(rules, now).isoformat()}"
        )
    session.add(fu)
    session.flush()
    text = f"{channel} follow-up due by {due.isoformat()}"
    if fu.state == "failed":
        text = f"{channel} follow-up cannot be made: {fu.detail}"
    _note(case, "follow_up_scheduled", actor, text, {"follow_up_id": fu.id, "state": fu.state})
    if fu.state != "failed":
        first = now if channel == "agent" else next_allowed(rules, now)
        _enqueue_try(session, fu, first)
    session.flush()
    return fu


def schedule_on_resolution(
    session: Session, policy: Policy, case: Case, actor: str | None
) -> FollowUp | None:
    """What a resolution sets off (policy ``follow_up.auto``); None when it is ``none``."""
    if policy.follow_up.auto == "none":
        return None
    open_ = session.scalar(
        select(FollowUp).where(FollowUp.case_id == case.id, FollowUp.state.in_(OPEN_STATES))
    )
    if open_ is not None:  # resolved again after a reopen: the running one goes on
        return open_
    return start_follow_up(session, policy, case, policy.follow_up.auto, actor, strict=False)


def record_try(
    session: Session,
    policy: Policy,
    fu: FollowUp,
    result: str,
    detail: str = "",
    *,
    linkedid: str | None = None,
    digit: str | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """One try that brought no valid answer: retry per policy, or give up clearly."""
    now = now or utcnow()
    fu.tries += 1
    fu.last_result, fu.detail = result, detail
    data: dict[str, Any] = {"follow_up_id": fu.id, "try": fu.tries, "result": result}
    if linkedid:
        data["linkedid"] = linkedid
    if digit is not None:
        data["digit"] = digit
    if result in FINAL_FAILURES:
        fu.state, fu.next_try_at = "failed", None
    else:
        following = (
            next_try_at(policy.follow_up, fu.tries, now) if fu.tries < fu.max_tries else None
        )
        if following is None:
            fu.state, fu.next_try_at = "unreachable", None
        else:
            fu.state = "retry_wait"
            _enqueue_try(session, fu, following)
            data["next_try_at"] = following.isoformat()
    text = f"{fu.channel} try {fu.tries}: {result}" + (f" ({detail})" if detail else "")
    _note(fu.case, "follow_up_attempt", None, text, data)
    if fu.state == "unreachable":
        _note(fu.case, "follow_up_unreachable", None,
              f"customer unreachable after {fu.tries} tries", {"follow_up_id": fu.id})  # fmt: skip
    session.flush()
    return fu


def record_answer(
    session: Session,
    policy: Policy,
    fu: FollowUp,
    answer: object,
    actor: str | None,
    *,
    note: str = "",
    linkedid: str | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """The customer's 1-5; stops the follow-up clock and counts in the review."""
    if fu.state == "answered":
        raise Conflict(f"follow-up {fu.id} already has its answer ({fu.score})")
    score = parse_score(answer)
    now = now or utcnow()
    # an agent's call was counted when it was placed; a survey or SMS answer is its try
    fu.tries = max(fu.tries, 1) if fu.channel == "agent" else fu.tries + 1
    fu.state, fu.score, fu.answered_at, fu.next_try_at = "answered", score, now, None
    fu.last_result = "answered"
    satisfied = is_satisfied(policy.follow_up, score)
    data: dict[str, Any] = {
        "follow_up_id": fu.id, "channel": fu.channel, "score": score, "satisfied": satisfied,
    }  # fmt: skip
    if linkedid:
        data["linkedid"] = linkedid
    text = f"{fu.channel} follow-up: satisfaction {score}/5" + (f"; {note}" if note else "")
    fu.case.actions.append(CaseAction(kind="follow_up", actor=actor, text=text, data=data, at=now))
    session.flush()
    return fu


def link_calls(session: Session, fu: FollowUp) -> list[int]:
    """Put the tracked calls placed for this follow-up on the case (idempotent)."""
    linkedids = list((fu.data or {}).get("linkedids") or [])
    if not linkedids:
        return []
    calls = session.scalars(select(Call.id).where(Call.linkedid.in_(linkedids))).all()
    have = set(
        session.scalars(
            select(case_calls.c.call_id).where(case_calls.c.case_id == fu.case_id)
        ).all()
    )
    for call_id in calls:
        if call_id in have:
            continue
        # Another writer (the job, or a request reading the follow-up) may link the same call
        # at the same moment: the loser's insert is dropped, never failing the job (a failed
        # try is retried, and a retry phones the customer again).
        try:
            with session.begin_nested():
                session.execute(case_calls.insert().values(case_id=fu.case_id, call_id=call_id))
        except IntegrityError:
            pass
    session.flush()
    return list(calls)


def add_linkedid(fu: FollowUp, linkedid: str) -> None:
    data = dict(fu.data or {})
    data["linkedids"] = [*data.get("linkedids", []), linkedid]
    fu.data = data


def follow_up_view(fu: FollowUp, *, masked: bool) -> dict[str, Any]:
    return {
        "id": fu.id,
        "case_id": fu.case_id,
        "channel": fu.channel,
        "state": fu.state,
        "phone": mask_phone(fu.phone) if masked else fu.phone,
        "agent": fu.agent,
        "tries": fu.tries,
        "max_tries": fu.max_tries,
        "due_at": fu.due_at.isoformat() if fu.due_at else None,
        "next_try_at": fu.next_try_at.isoformat() if fu.next_try_at else None,
        "last_result": fu.last_result,
        "detail": fu.detail,
        "score": fu.score,
        "answered_at": fu.answered_at.isoformat() if fu.answered_at else None,
        "linkedids": list((fu.data or {}).get("linkedids") or []),
    }


def list_follow_ups(session: Session, case: Case) -> list[FollowUp]:
    return list(
        session.scalars(select(FollowUp).where(FollowUp.case_id == case.id).order_by(FollowUp.id))
    )


def sms_reply(
    session: Session, policy: Policy, sender: str, text: str, now: datetime | None = None
) -> tuple[FollowUp, str | None]:
    """A customer's SMS answer, matched to their latest open SMS follow-up.

    A reply that is not 1-5 is kept as a try (``invalid_reply``, with its text) and the
    problem returned, not raised, so the caller commits what the customer wrote first.
    """
    try:
        phone = check_phone(sender)
    except BadInput:
        raise BadInput(f"SMS reply from {sender!r}: not a phone number") from None
    fu = session.scalar(
        select(FollowUp)
        .where(FollowUp.channel == "sms", FollowUp.phone == phone,
               FollowUp.state.in_(OPEN_STATES))
        .order_by(FollowUp.id.desc())
    )  # fmt: skip
    if fu is None:
        raise NotFound(f"no open SMS follow-up for {mask_phone(phone)}")
    try:
        parse_score(text)
    except BadInput as exc:
        _note(fu.case, "follow_up_attempt", None, f"sms reply not understood: {text[:80]!r}",
              {"follow_up_id": fu.id, "result": "invalid_reply", "text": text[:500]})  # fmt: skip
        session.flush()
        return fu, f"{exc.detail}; reply kept on case {fu.case.number}"
    return record_answer(session, policy, fu, text, None, note="SMS reply", now=now), None
