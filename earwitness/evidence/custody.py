"""The hash-chained custody log: who did what to which evidence, in an order nobody can rewrite.

Every entry's hash covers its own fields *and* the previous entry's hash, in one chain
across all evidence (ordered by id). Editing an entry changes its hash; deleting or
reordering entries breaks the ``prev_hash`` link of the next one. The chain's head hash,
printed by ``verify`` and written into every bundle, lets an outsider notice a rewrite
of the newest entries too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from earwitness.errors import BadInput
from earwitness.models import CustodyEntry, Evidence, utcnow

GENESIS = "0" * 64
ACTIONS = ("intake", "view", "export", "analysis", "handover", "supersede", "verify")
_PG_LOCK_KEY = 0x6561727769746E  # "earwitn": one advisory lock for custody appends


def canonical_time(at: datetime) -> str:
    """One spelling of a timestamp, identical whether SQLite or PostgreSQL returns it."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_digest(
    *,
    evidence_id: int,
    at: datetime,
    actor: str | None,
    action: str,
    detail: str,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 over a canonical JSON of the entry; the same fields give the same hash."""
    payload = {
        "evidence_id": evidence_id,
        "at": canonical_time(at),
        "actor": actor,
        "action": action,
        "detail": detail,
        "data": data,
        "prev_hash": prev_hash,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def recompute(entry: CustodyEntry) -> str:
    return entry_digest(
        evidence_id=entry.evidence_id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        detail=entry.detail,
        data=entry.data or {},
        prev_hash=entry.prev_hash,
    )


def _lock_chain(session: Session) -> None:
    """Serialise appenders so two of them never read the same chain head.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a no-op write takes the
    database's single write lock before the head is read. ``UNIQUE(prev_hash)`` is
    the last line of defence either way.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    else:
        session.execute(update(CustodyEntry).where(CustodyEntry.id == -1).values(detail=""))


def chain_head(session: Session) -> str:
    last = session.scalar(select(CustodyEntry.entry_hash).order_by(CustodyEntry.id.desc()))
    return last or GENESIS


def append(
    session: Session,
    evidence: Evidence,
    action: str,
    *,
    actor: str | None,
    detail: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> CustodyEntry:
    """Add one entry at the head of the chain (flushes so the next append sees it)."""
    if action not in ACTIONS:
        raise BadInput(f"unknown custody action {action!r}; one of {', '.join(ACTIONS)}")
    if evidence.id is None:
        session.flush()
    _lock_chain(session)
    prev = chain_head(session)
    when = (at or utcnow()).astimezone(UTC)
    fields: dict[str, Any] = {
        "evidence_id": evidence.id,
        "at": when,
        "actor": actor,
        "action": action,
        "detail": detail[:500],
        "data": data or {},
        "prev_hash": prev,
    }
    # The row and its hash are built from the very same fields, so they cannot disagree.
    entry = CustodyEntry(**fields, entry_hash=entry_digest(**fields))
    session.add(entry)
    session.flush()
    return entry


def entry_dict(entry: CustodyEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "evidence_id": entry.evidence_id,
        "at": canonical_time(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "detail": entry.detail,
        "data": entry.data or {},
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }
