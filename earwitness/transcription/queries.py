"""Reading transcripts back, without importing the speech engine (cases and bundles use it)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.models import Transcript


def find_latest_transcript(session: Session, recording_id: int) -> Transcript | None:
    """The newest transcript of a recording (a re-run replaces what people should read)."""
    return session.scalar(
        select(Transcript)
        .where(Transcript.recording_id == recording_id)
        .order_by(Transcript.id.desc())
        .limit(1)
    )
