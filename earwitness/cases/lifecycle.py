"""A complaint case from registration to closure, with every step an action on record.

- Status workflow: registered → assigned → investigating → resolved → follow_up →
  closed; resolved/follow_up/closed can be reopened (``reopened`` → investigating).
- First-ask responsibility (seed 001): the agent who took the first call owns the
  case; ownership moves only by an explicit hand-over with a reason, which is also
  written into the custody log of every evidence item on the case.
- Promises (seed 004, "he will call you within 10 minutes") have a due time and are
  kept by a later ``promise_kept`` action; nothing is edited in place.
Case actions are append-only: the history *is* the audit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.cases.policy import URGENCIES, Milestones, Policy
from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.evidence import custody
from earwitness.masking import mask_phone  # noqa: F401  (re-exported: cases.deadlines, review)
from earwitness.models import Case, CaseAction, Evidence, utcnow
from earwitness.timezones import local_day

STATUSES = (
    "registered",
    "assigned",
    "investigating",
    "resolved",
    "follow_up",
    "closed",
    "reopened",
)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "registered": ("assigned",),
    "assigned": ("investigating", "resolved"),
    "investigating": ("resolved",),
    "resolved": ("follow_up", "closed"),
    "follow_up": ("closed",),
    "closed": (),
    "reopened": ("investigating", "resolved"),
}
REOPENABLE = ("resolved", "follow_up", "closed")
MILESTONE_KINDS = ("response", "solution", "contact", "follow_up")


def get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def _action(
    case: Case,
    kind: str,
    actor: str | None,
    text: str = "",
    *,
    data: dict[str, Any] | None = None,
    due_at: datetime | None = None,
    at: datetime | None = None,
) -> CaseAction:
    action = CaseAction(
        kind=kind, actor=actor, text=text, data=data or {}, due_at=due_at, at=at or utcnow()
    )
    case.actions.append(action)
    return action


def check_fields(policy: Policy, fields: dict[str, Any]) -> None:
    if "category" in fields and fields["category"] not in policy.categories:
        raise BadInput(f"category {fields['category']!r}: one of {', '.join(policy.categories)}")
    cause = fields.get("root_cause")
    if cause is not None and cause not in policy.root_causes:
        raise BadInput(f"root cause {cause!r}: one of {', '.join(policy.root_causes)}")
    if "urgency" in fields and fields["urgency"] not in URGENCIES:
        raise BadInput(f"urgency {fields['urgency']!r}: A, B or C (A = major service failure)")
    if "tier" in fields and fields["tier"] not in (1, 2, 3):
        raise BadInput(f"escalation tier {fields['tier']!r}: 1, 2 or 3")


def create_case(
    session: Session,
    policy: Policy,
    *,
    actor: str | None,
    owner: str | None = None,
    complainant_phone: str | None = None,
    complainant_name: str | None = None,
    category: str = "other",
    root_cause: str | None = None,
    urgency: str = "B",
    tier: int = 1,
    summary: str = "",
    opened_at: datetime | None = None,
    source_call_id: int | None = None,
    zone: tzinfo = UTC,
) -> Case:
    """Register a complaint; ``owner`` is the first-ask owner (default: who registers it).

    The number's date is the local day in ``zone`` (EARWITNESS_TIMEZONE): a complaint taken
    at 07:06 on 30 November in Beijing is ``EW-20261130-…``, not the UTC day before."""
    fields = {"category": category, "root_cause": root_cause, "urgency": urgency, "tier": tier}
    check_fields(policy, fields)
    first = owner or actor
    opened = opened_at or utcnow()
    case = Case(
        number=f"pending-{uuid.uuid4().hex}",  # replaced once the id is known
        complainant_phone=complainant_phone,
        complainant_name=complainant_name,
        owner=first,
        first_owner=first,
        summary=summary,
        opened_at=opened,
        source_call_id=source_call_id,
        facts={},
        **fields,
    )
    session.add(case)
    session.flush()
    case.number = f"EW-{local_day(opened, zone):%Y%m%d}-{case.id:05d}"
    _action(case, "registered", actor, f"registered; first-ask owner {first}", at=opened)
    session.flush()
    return case


def update_case(
    session: Session, policy: Policy, case: Case, actor: str | None, fields: dict[str, Any]
) -> Case:
    """Change classification (category, root cause, urgency, tier, summary); logged."""
    allowed = {"category", "root_cause", "urgency", "tier", "summary", "complainant_name"}
    unknown = set(fields) - allowed
    if unknown:
        raise BadInput(f"cannot change {', '.join(sorted(unknown))} here (owner: use hand-over)")
    check_fields(policy, fields)
    changes = {k: [getattr(case, k), v] for k, v in fields.items() if getattr(case, k) != v}
    if not changes:
        return case
    for key, (_, new) in changes.items():
        setattr(case, key, new)
    kind = "escalation" if "tier" in changes else "update"
    text = ", ".join(f"{k}: {old} → {new}" for k, (old, new) in changes.items())
    _action(case, kind, actor, text, data={"changes": changes})
    session.flush()
    return case


def change_status(session: Session, case: Case, to: str, actor: str | None, note: str = "") -> Case:
    if to == "reopened":
        return reopen(session, case, actor, note)
    if to not in STATUSES:
        raise BadInput(f"unknown status {to!r}; one of {', '.join(STATUSES)}")
    if to not in TRANSITIONS[case.status]:
        allowed = ", ".join(TRANSITIONS[case.status]) or "none (reopen it)"
        raise Conflict(f"case {case.number} is {case.status}; next can be: {allowed}")
    if to == "assigned" and not case.owner:
        raise Conflict(f"case {case.number} has no owner to assign; hand it over first")
    now = utcnow()
    if to == "resolved":
        case.resolved_at = now
    if to == "closed":
        case.closed_at = now
    _action(case, "status", actor, note, data={"from": case.status, "to": to}, at=now)
    case.status = to
    session.flush()
    return case


def reopen(session: Session, case: Case, actor: str | None, reason: str) -> Case:
    if case.status not in REOPENABLE:
        raise Conflict(f"case {case.number} is {case.status}; only resolved/closed cases reopen")
    if not reason.strip():
        raise BadInput("a reason is required to reopen a case")
    _action(case, "status", actor, reason, data={"from": case.status, "to": "reopened"})
    case.status = "reopened"
    case.resolved_at = case.closed_at = None
    case.reopened_count += 1
    session.flush()
    return case


def handover(session: Session, case: Case, to: str, actor: str | None, reason: str) -> Case:
    """Move ownership explicitly; the only way the first-ask owner stops owning a case."""
    if not to.strip() or not reason.strip():
        raise BadInput("a hand-over needs the new owner and a reason")
    if to == case.owner:
        raise Conflict(f"{to} already owns case {case.number}")
    previous = case.owner
    _action(case, "handover", actor, reason, data={"from": previous, "to": to})
    case.owner = to
    for evidence in session.scalars(select(Evidence).where(Evidence.case_id == case.id)):
        custody.append(
            session,
            evidence,
            "handover",
            actor=actor,
            detail=f"case {case.number} handed from {previous} to {to}: {reason}"[:500],
            data={"case_id": case.id, "from": previous, "to": to},
        )
    session.flush()
    return case


def record_action(
    session: Session, case: Case, kind: str, actor: str | None, text: str, data: dict[str, Any]
) -> CaseAction:
    """Free-form note or a milestone (response, solution, contact, follow_up)."""
    if kind not in (*MILESTONE_KINDS, "note", "call_back", "visit"):
        raise BadInput(f"unknown action kind {kind!r}")
    if kind == "follow_up":
        if case.resolved_at is None:
            raise Conflict("a follow-up comes after resolution; resolve the case first")
        if not isinstance(data.get("satisfied"), bool):
            raise BadInput("a follow-up records whether the customer was satisfied (true/false)")
    action = _action(case, kind, actor, text, data=data)
    session.flush()
    return action


def add_promise(
    session: Session,
    case: Case,
    actor: str | None,
    text: str,
    *,
    due_at: datetime | None = None,
    within_minutes: float | None = None,
) -> CaseAction:
    if (due_at is None) == (within_minutes is None):
        raise BadInput("give either due_at or within_minutes for a promise")
    made = utcnow()
    due = due_at or made + timedelta(minutes=float(within_minutes or 0))
    if due <= made - timedelta(minutes=1):
        raise BadInput("a promise cannot be due in the past")
    action = _action(case, "promise", actor, text, due_at=due, at=made)
    session.flush()
    return action


def keep_promise(
    session: Session, case: Case, promise_id: int, actor: str | None, note: str = ""
) -> CaseAction:
    promise = next((a for a in case.actions if a.id == promise_id and a.kind == "promise"), None)
    if promise is None:
        raise NotFound(f"case {case.number} has no promise {promise_id}")
    if any(
        a.kind == "promise_kept" and a.data.get("promise_id") == promise_id for a in case.actions
    ):
        raise Conflict(f"promise {promise_id} is already marked kept")
    action = _action(case, "promise_kept", actor, note, data={"promise_id": promise_id})
    session.flush()
    return action


def promise_states(case: Case, now: datetime) -> list[dict[str, Any]]:
    kept = {a.data.get("promise_id"): a for a in case.actions if a.kind == "promise_kept"}
    out = []
    for promise in (a for a in case.actions if a.kind == "promise"):
        done = kept.get(promise.id)
        due = promise.due_at
        assert due is not None
        if done is not None:
            state = "kept" if done.at <= due else "kept_late"
        else:
            state = "open" if now <= due else "broken"
        out.append(
            {
                "id": promise.id,
                "text": promise.text,
                "made_at": promise.at.isoformat(),
                "made_by": promise.actor,
                "due_at": due.isoformat(),
                "kept_at": done.at.isoformat() if done else None,
                "state": state,
                "broken": state in ("broken", "kept_late"),
            }
        )
    return out


def milestones(case: Case) -> Milestones:
    """When each deadline clock stopped, from the action history."""

    def first(kinds: tuple[str, ...], to: tuple[str, ...] = ()) -> datetime | None:
        times = [
            a.at
            for a in case.actions
            if a.kind in kinds or (a.kind == "status" and a.data.get("to") in to)
        ]
        return min(times) if times else None

    resolved = case.resolved_at
    follow = [a.at for a in case.actions if a.kind == "follow_up" and resolved and a.at >= resolved]
    return Milestones(
        opened_at=case.opened_at,
        responded_at=first(
            ("response", "contact", "solution", "call_back"),
            ("assigned", "investigating", "resolved"),
        ),
        solved_at=first(("solution",), ("resolved",)),
        contacted_at=first(("contact", "call_back")),
        resolved_at=resolved,
        followed_up_at=min(follow) if follow else None,
        closed_at=case.closed_at,
    )
