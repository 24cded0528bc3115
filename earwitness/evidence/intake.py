"""Filing a file as evidence on a case, reading it back, superseding it.

Order matters for integrity: the bytes go into the content-addressed store first
(hashed while streaming, size-limited), then the database row and its ``intake``
custody entry are written in the caller's transaction. A failed transaction leaves
at most an unreferenced blob, never a row pointing at missing bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, Conflict, NotFound
from earwitness.evidence import custody
from earwitness.evidence.sniff import SNIFF_BYTES, display_name, kind_for, sniff_media_type
from earwitness.evidence.store import BlobStore
from earwitness.models import Case, Evidence, utcnow

KINDS = ("recording", "transcript", "track", "photo", "document")


@dataclass(frozen=True)
class IntakeRequest:
    """What the caller says about a file; the bytes decide hash, size and media type."""

    case_id: int
    original_name: str | None
    actor: str | None
    source: str = "upload"
    kind: str | None = None
    note: str = ""


def intake_data(evidence: Evidence) -> dict[str, Any]:
    """The evidence row's identity as written into (and later checked against) its intake entry."""
    return {
        "case_id": evidence.case_id,
        "sha256": evidence.sha256,
        "size_bytes": evidence.size_bytes,
        "media_type": evidence.media_type,
        "kind": evidence.kind,
        "original_name": evidence.original_name,
        "source": evidence.source,
        "received_by": evidence.received_by,
        "supersedes_id": evidence.supersedes_id,
        "supersede_reason": evidence.supersede_reason,
    }


def _get_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


def intake(
    session: Session,
    blobs: BlobStore,
    request: IntakeRequest,
    stream: BinaryIO,
    *,
    max_bytes: int | None = None,
    supersedes: Evidence | None = None,
    reason: str | None = None,
) -> Evidence:
    """Store the bytes, file them on the case and open their custody chain."""
    name = display_name(request.original_name)  # refuse hostile names before storing
    if request.kind is not None and request.kind not in KINDS:
        raise BadInput(f"unknown evidence kind {request.kind!r}; one of {', '.join(KINDS)}")
    _get_case(session, request.case_id)
    info = blobs.put_stream(stream, max_bytes=max_bytes)
    if info.size == 0:
        raise BadInput("the file is empty; nothing was filed")
    existing = session.scalar(
        select(Evidence).where(Evidence.case_id == request.case_id, Evidence.sha256 == info.sha256)
    )
    if existing is not None:
        raise Conflict(
            f"these bytes are already evidence {existing.id} on case {request.case_id} "
            f"(sha256 {info.sha256[:12]}…)"
        )
    with blobs.open(info.sha256) as blob:
        media_type = sniff_media_type(blob.read(SNIFF_BYTES))
    evidence = Evidence(
        case_id=request.case_id,
        kind=request.kind or kind_for(media_type),
        sha256=info.sha256,
        size_bytes=info.size,
        media_type=media_type,
        original_name=name,
        received_at=utcnow(),
        received_by=request.actor,
        source=request.source[:200],
        supersedes_id=supersedes.id if supersedes is not None else None,
        supersede_reason=reason,
        meta={"note": request.note} if request.note else {},
    )
    session.add(evidence)
    session.flush()
    custody.append(
        session,
        evidence,
        "intake",
        actor=request.actor,
        detail=f"received {name!r} from {request.source}",
        data=intake_data(evidence),
        at=evidence.received_at,
    )
    return evidence


def supersede(
    session: Session,
    blobs: BlobStore,
    old_id: int,
    request: IntakeRequest,
    stream: BinaryIO,
    *,
    reason: str,
    max_bytes: int | None = None,
) -> Evidence:
    """File a replacement; the old item stays untouched and gets a ``supersede`` entry."""
    if not reason or not reason.strip():
        raise BadInput("a reason is required to supersede evidence")
    old = get_evidence(session, old_id)
    if old.case_id != request.case_id:
        raise BadInput(f"evidence {old_id} belongs to case {old.case_id}, not {request.case_id}")
    later = superseded_by(session, old.id)
    if later is not None:
        raise Conflict(f"evidence {old_id} was already superseded by evidence {later}")
    new = intake(
        session, blobs, request, stream, max_bytes=max_bytes, supersedes=old, reason=reason.strip()
    )
    custody.append(
        session,
        old,
        "supersede",
        actor=request.actor,
        detail=f"superseded by evidence {new.id}: {reason.strip()}"[:500],
        data={"superseded_by": new.id, "reason": reason.strip()},
    )
    return new


def superseded_by(session: Session, evidence_id: int) -> int | None:
    return session.scalar(select(Evidence.id).where(Evidence.supersedes_id == evidence_id))


def get_evidence(session: Session, evidence_id: int) -> Evidence:
    evidence = session.get(Evidence, evidence_id)
    if evidence is None:
        raise NotFound(f"evidence {evidence_id} does not exist")
    return evidence


def open_for_view(
    session: Session, blobs: BlobStore, evidence_id: int, actor: str | None, purpose: str = ""
) -> tuple[Evidence, BinaryIO]:
    """Open the stored bytes and log the access (``view``) in the custody chain."""
    evidence = get_evidence(session, evidence_id)
    stream = blobs.open(evidence.sha256)
    custody.append(session, evidence, "view", actor=actor, detail=purpose or "content read")
    return evidence, stream


def case_evidence(session: Session, case_id: int) -> list[Evidence]:
    _get_case(session, case_id)
    return list(
        session.scalars(select(Evidence).where(Evidence.case_id == case_id).order_by(Evidence.id))
    )
