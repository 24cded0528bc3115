"""Evidence: file intake on a case, content with logged access, supersede, verify, custody."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from earwitness.api.deps import PrincipalDep, RuntimeDep, SessionDep
from earwitness.api.params import DbInt
from earwitness.evidence import custody
from earwitness.evidence.intake import (
    IntakeRequest,
    case_evidence,
    get_evidence,
    intake,
    note_of,
    open_for_view,
    recording_id_of,
    supersede,
    superseded_by,
)
from earwitness.evidence.signing import CustodyKeys
from earwitness.evidence.sniff import attachment
from earwitness.evidence.store import CHUNK
from earwitness.evidence.verify import verify
from earwitness.models import CustodyEntry, Evidence

router = APIRouter(tags=["evidence"])


class EvidenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    case_id: int | None
    kind: str
    sha256: str
    size_bytes: int
    media_type: str
    original_name: str
    received_at: datetime
    received_by: str | None
    source: str
    supersedes_id: int | None
    supersede_reason: str | None
    superseded_by: int | None = None
    note: str = ""  # given at intake; also in the intake custody entry and bundle manifest
    recording_id: int | None = None  # for a call recording filed at audio intake


def _out(session: Any, evidence: Evidence) -> EvidenceOut:
    out = EvidenceOut.model_validate(evidence)
    out.superseded_by = superseded_by(session, evidence.id)
    out.note = note_of(evidence)
    out.recording_id = recording_id_of(evidence)
    return out


@router.post("/api/cases/{case_id}/evidence", response_model=EvidenceOut, status_code=201)
def file_evidence(
    case_id: DbInt,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="any file: recording, track, photo, ...")],
    source: Annotated[str, Form()] = "upload",
    kind: Annotated[str | None, Form()] = None,
    note: Annotated[str, Form()] = "",
) -> EvidenceOut:
    """Hash, store read-only and file the upload on the case; opens its custody chain."""
    request = IntakeRequest(case_id, file.filename, principal.username, source, kind, note)
    evidence = intake(
        session,
        runtime.blobs,
        request,
        file.file,
        max_bytes=runtime.settings.max_upload_bytes,
    )
    return _out(session, evidence)


@router.get("/api/cases/{case_id}/evidence", response_model=list[EvidenceOut])
def list_case_evidence(case_id: DbInt, session: SessionDep, _: PrincipalDep) -> list[EvidenceOut]:
    return [_out(session, e) for e in case_evidence(session, case_id)]


@router.get("/api/evidence/verify")
def verify_all_get(
    runtime: RuntimeDep, session: SessionDep, _: PrincipalDep, full: bool = False
) -> dict[str, Any]:
    """The same check as ``POST /api/evidence/verify`` (it only reads and re-hashes):
    declared before ``/api/evidence/{evidence_id}`` so "verify" is never read as an id."""
    return verify(session, runtime.blobs, full=full, keys=CustodyKeys(runtime.settings)).as_dict()


@router.get("/api/evidence/{evidence_id}", response_model=EvidenceOut)
def read_evidence(evidence_id: DbInt, session: SessionDep, _: PrincipalDep) -> EvidenceOut:
    return _out(session, get_evidence(session, evidence_id))


@router.get("/api/evidence/{evidence_id}/content")
def evidence_content(
    evidence_id: DbInt, runtime: RuntimeDep, session: SessionDep, principal: PrincipalDep
) -> StreamingResponse:
    """The stored bytes, checked against the intake hash; every read is a ``view`` entry.

    A file that no longer matches its intake hash is refused (409 problem+json,
    ``evidence-tampered``) and none of its bytes are sent.
    """
    evidence, stream = open_for_view(
        session, runtime.blobs, evidence_id, principal.username, "downloaded through the API"
    )
    session.commit()  # the access is logged even if the client stops reading

    def chunks(src: BinaryIO) -> Iterator[bytes]:
        with src:
            yield from iter(lambda: src.read(CHUNK), b"")

    return StreamingResponse(
        chunks(stream),
        media_type=evidence.media_type,
        headers={
            "Content-Disposition": attachment(evidence.original_name),
            "X-Content-SHA256": evidence.sha256,
        },
    )


@router.post("/api/evidence/{evidence_id}/supersede", response_model=EvidenceOut, status_code=201)
def supersede_evidence(
    evidence_id: DbInt,
    runtime: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File()],
    reason: Annotated[str, Form(min_length=1)],
    source: Annotated[str, Form()] = "upload",
) -> EvidenceOut:
    """File a corrected version; the old item is kept and marked superseded with the reason."""
    old = get_evidence(session, evidence_id)
    request = IntakeRequest(old.case_id or 0, file.filename, principal.username, source, old.kind)
    new = supersede(
        session,
        runtime.blobs,
        evidence_id,
        request,
        file.file,
        reason=reason,
        max_bytes=runtime.settings.max_upload_bytes,
    )
    return _out(session, new)


@router.post("/api/evidence/{evidence_id}/verify")
def verify_one(
    evidence_id: DbInt, runtime: RuntimeDep, session: SessionDep, _: PrincipalDep
) -> dict[str, Any]:
    """Re-hash the file, its row and the signed custody chain; names what changed."""
    keys = CustodyKeys(runtime.settings)
    return verify(session, runtime.blobs, evidence_ids=[evidence_id], keys=keys).as_dict()


@router.post("/api/evidence/verify")
def verify_all(
    runtime: RuntimeDep, session: SessionDep, _: PrincipalDep, full: bool = False
) -> dict[str, Any]:
    """Everything; ``full=true`` walks every custody entry instead of from the checkpoint."""
    return verify(session, runtime.blobs, full=full, keys=CustodyKeys(runtime.settings)).as_dict()


@router.get("/api/evidence/{evidence_id}/custody")
def custody_log(evidence_id: DbInt, session: SessionDep, _: PrincipalDep) -> list[dict[str, Any]]:
    get_evidence(session, evidence_id)
    entries = session.scalars(
        select(CustodyEntry)
        .where(CustodyEntry.evidence_id == evidence_id)
        .order_by(CustodyEntry.id)
    )
    return [custody.entry_dict(e) for e in entries]
