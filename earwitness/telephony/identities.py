"""One agent identity: every PBX identifier of a person mapped to one display name.

The SLA groups calls by ``agent.name or agent.interface``, QA stores that label with each
audit and search filters on it, so an agent who is ``PJSIP/2001`` in queue_log and
``Lucy Zhao`` on AMI must end up with one label everywhere. This module keeps the mapping
(:class:`~earwitness.models.AgentIdentity`) and applies it to the agent rows and stored
QA labels whenever it changes:

- learned: AMI events that name a member (``Interface`` + ``MemberName``, also the
  ``StateInterface``) and queue_log ``ADDMEMBER`` lines that carry both;
- edited: ``PUT /api/agents/identities`` or ``earwitness agents name``; a manual name is
  never overwritten by a learned one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from earwitness.errors import BadInput
from earwitness.models import Agent, AgentIdentity, QaResult

MANUAL = "manual"


def _clean(value: str | None) -> str:
    return (value or "").strip()[:120]


def learn(session: Session, identifier: str | None, name: str | None, source: str) -> bool:
    """Record that ``identifier`` is ``name`` (unless a person already said otherwise);
    True when the mapping changed."""
    identifier, name = _clean(identifier), _clean(name)
    if not identifier or not name or identifier == name:
        return False
    row = session.scalar(select(AgentIdentity).where(AgentIdentity.identifier == identifier))
    if row is not None and (row.name == name or (row.source == MANUAL and source != MANUAL)):
        return False
    old = row.name if row is not None else None
    if row is None:
        row = AgentIdentity(identifier=identifier, name=name, source=source)
        session.add(row)
    else:
        row.name, row.source = name, source
    session.flush()
    _apply(session, identifier, name, old)
    return True


def set_name(session: Session, identifier: str, name: str) -> dict[str, Any]:
    """A person's decision: ``identifier`` is ``name`` from now on (and in past figures)."""
    if not _clean(identifier) or not _clean(name):
        raise BadInput("an agent identity needs an identifier and a name")
    learn(session, identifier, name, MANUAL)
    return describe(session, identifier)


def name_for(session: Session, identifier: str | None) -> str | None:
    """The display name of ``identifier``, if one is known."""
    if not identifier:
        return None
    return session.scalar(select(AgentIdentity.name).where(AgentIdentity.identifier == identifier))


def labels_of(session: Session, label: str) -> set[str]:
    """Every identifier and name that means the same agent as ``label`` (for filters)."""
    name = name_for(session, label) or label
    others = session.scalars(select(AgentIdentity.identifier).where(AgentIdentity.name == name))
    return {label, name, *others}


def describe(session: Session, identifier: str) -> dict[str, Any]:
    row = session.scalar(select(AgentIdentity).where(AgentIdentity.identifier == identifier))
    if row is None:
        return {"identifier": identifier, "name": None, "source": None}
    return {"identifier": row.identifier, "name": row.name, "source": row.source}


def all_identities(session: Session) -> list[dict[str, Any]]:
    """Every agent with every identifier it is known by, and where each mapping came from."""
    rows = session.scalars(select(AgentIdentity).order_by(AgentIdentity.name, AgentIdentity.id))
    people: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        people.setdefault(row.name, []).append({"identifier": row.identifier, "source": row.source})
    unnamed = session.scalars(
        select(Agent.interface).where(Agent.name.is_(None)).order_by(Agent.interface)
    )
    return [{"name": n, "identifiers": ids} for n, ids in people.items()] + [
        {"name": None, "identifiers": [{"identifier": i, "source": None}]} for i in unnamed
    ]


def _apply(session: Session, identifier: str, name: str, old: str | None) -> None:
    """Rename the agent rows this identifier names, and the labels QA stored for them."""
    same = or_(Agent.interface == identifier, Agent.name == identifier)
    previous = {n for n in session.scalars(select(Agent.name).where(same)) if n}
    session.execute(update(Agent).where(same).values(name=name))
    stale = {identifier, *previous} | ({old} if old else set())
    session.execute(update(QaResult).where(QaResult.agent.in_(stale)).values(agent=name))
    session.flush()
