"""The signed, hash-chained custody log: who did what to which evidence, in a fixed order.

Every entry's hash covers its own fields *and* the previous entry's hash, in one chain
across all evidence (ordered by id). Editing an entry changes its hash; deleting or
reordering entries breaks the ``prev_hash`` link of the next one.

A hash chain stored in the database it protects does not stop someone who can write
that database: they edit an entry and recompute every hash after it. So each entry is
also signed (Ed25519, key outside the database: earwitness/evidence/signing.py) over
exactly the bytes its hash covers, and after each commit the newest entry is written
to a signed head file outside the database, so deleting the newest entries shows too.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from earwitness.errors import BadInput
from earwitness.evidence.signing import CustodyKeys, canonical_json, keys_for
from earwitness.logs import request_id_var
from earwitness.models import CustodyEntry, Evidence, utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
ACTIONS = ("intake", "view", "export", "analysis", "handover", "supersede", "verify")
_PG_LOCK_KEY = 0x6561727769746E  # "earwitn": one advisory lock for custody appends


def canonical_time(at: datetime) -> str:
    """One spelling of a timestamp, identical whether SQLite or PostgreSQL returns it."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_bytes(
    *,
    evidence_id: int,
    at: datetime,
    actor: str | None,
    action: str,
    detail: str,
    data: dict[str, Any],
    prev_hash: str,
) -> bytes:
    """The canonical JSON of an entry: what its hash covers *and* what its signature covers.

    One function for both, so a hashed entry and a signed entry can never differ; the
    same bytes go into bundles so an outsider checks them with sha256sum and openssl.
    """
    payload = {
        "evidence_id": evidence_id,
        "at": canonical_time(at),
        "actor": actor,
        "action": action,
        "detail": detail,
        "data": data,
        "prev_hash": prev_hash,
    }
    return canonical_json(payload)


def entry_digest(**fields: Any) -> str:
    """SHA-256 over :func:`entry_bytes`; the same fields give the same hash."""
    return hashlib.sha256(entry_bytes(**fields)).hexdigest()


class EntryFields(Protocol):
    """A custody row as the ORM or a plain ``select`` of its columns returns it."""

    @property
    def evidence_id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str | None: ...
    @property
    def action(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...


def stored_bytes(entry: EntryFields) -> bytes:
    """The canonical bytes of a stored entry, as they are now in the database."""
    return entry_bytes(
        evidence_id=entry.evidence_id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        detail=entry.detail,
        data=entry.data or {},
        prev_hash=entry.prev_hash,
    )


def recompute(entry: EntryFields) -> str:
    return hashlib.sha256(stored_bytes(entry)).hexdigest()


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
    """Add one signed entry at the head of the chain (flushes so the next append sees it).

    Inside an API request the request id goes into ``data`` (so it is hashed and signed
    with the rest), tying the entry to the request's log lines.
    """
    if action not in ACTIONS:
        raise BadInput(f"unknown custody action {action!r}; one of {', '.join(ACTIONS)}")
    if evidence.id is None:
        session.flush()
    _lock_chain(session)
    prev = chain_head(session)
    when = (at or utcnow()).astimezone(UTC)
    payload = dict(data or {})
    request_id = request_id_var.get()
    if request_id != "-":
        payload.setdefault("request_id", request_id)
    fields: dict[str, Any] = {
        "evidence_id": evidence.id,
        "at": when,
        "actor": actor,
        "action": action,
        "detail": detail[:500],
        "data": payload,
        "prev_hash": prev,
    }
    # Hash, signature and row are built from the very same bytes, so they cannot disagree.
    blob = entry_bytes(**fields)
    keys = keys_for(session)
    signature: str | None = None
    key_id: str | None = None
    if keys is not None:
        raw, key_id = keys.sign(blob)
        signature = raw.hex()
    entry = CustodyEntry(
        **fields,
        entry_hash=hashlib.sha256(blob).hexdigest(),
        signature=signature,
        key_id=key_id,
    )
    session.add(entry)
    session.flush()
    if keys is not None:
        _note_pending_head(session, keys, entry)
    return entry


# -- the signed head, written after the transaction that added entries commits ----------
_PENDING = "custody_pending_head"


def _note_pending_head(session: Session, keys: CustodyKeys, entry: CustodyEntry) -> None:
    pending: dict[str, Any] = session.info.setdefault(_PENDING, {})
    if entry.id > pending.get("entry_id", 0):
        pending.update(keys=keys, entry_id=entry.id, entry_hash=entry.entry_hash)
    pending["signed_since"] = min(pending.get("signed_since", entry.id), entry.id)


@event.listens_for(Session, "after_commit")
def _write_head_after_commit(session: Session) -> None:
    """Only committed entries may be named by the head, or verify would report a phantom
    deletion. A failure here cannot undo the commit, so it is logged: the head then lags,
    which weakens the deletion check until the next commit but never raises a false alarm."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    try:
        pending["keys"].advance_head(
            pending["entry_id"], pending["entry_hash"], pending["signed_since"]
        )
    except Exception:
        log.exception("could not write the signed custody head")


@event.listens_for(Session, "after_soft_rollback")
def _forget_head_on_rollback(session: Session, _previous: Any) -> None:
    # Any rollback (a savepoint included) may have dropped noted entries: forget them all;
    # a lagging head is safe, a head naming a rolled-back entry is not.
    session.info.pop(_PENDING, None)


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
        "signature": entry.signature,
        "key_id": entry.key_id,
    }
