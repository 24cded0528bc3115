"""Deadline listing across cases: what is breached now, and what is about to be.

Closed cases keep their history (a late close is still a breach for the review)
but only cases still open are listed here: this is the to-do list of the team.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.cases.lifecycle import mask_phone, milestones, promise_states
from earwitness.cases.policy import Policy, deadline_states
from earwitness.models import Case


def list_deadlines(
    session: Session, policy: Policy, now: datetime, *, breached_only: bool = True
) -> list[dict[str, Any]]:
    """Per open case and clock: breached (overdue by) or, unless ``breached_only``, time left.

    Broken promises are listed beside the deadlines: to the customer they are one.
    """
    rows: list[dict[str, Any]] = []
    for case in session.scalars(select(Case).where(Case.status != "closed").order_by(Case.id)):
        base = {
            "case_id": case.id,
            "number": case.number,
            "urgency": case.urgency,
            "owner": case.owner,
            "phone": mask_phone(case.complainant_phone),
            "status": case.status,
        }
        for state in deadline_states(policy, case.urgency, milestones(case), now):
            if state["state"] == "breached" or (not breached_only and state["state"] == "open"):
                rows.append(base | {"what": state["label"], **state})
        for promise in promise_states(case, now):
            if promise["state"] == "broken" or (not breached_only and promise["state"] == "open"):
                rows.append(
                    base
                    | {
                        "what": f"promise: {promise['text']}",
                        "clock": "promise",
                        "due_at": promise["due_at"],
                        "state": promise["state"],
                        "breach": promise["state"] == "broken",
                        "text": promise["state"],
                    }
                )
    rows.sort(key=lambda r: (not r["breach"], r["due_at"]))
    return rows
