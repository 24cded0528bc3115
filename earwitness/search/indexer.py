"""Feeding the index: one recording at a time (after transcription) or everything (reindex).

Only a recording's newest transcript is indexed, so a call re-transcribed with a
better model is found once, not twice. Rows are replaced per recording inside one
transaction; the database cascades deletions of segments to the index, and on
SQLite the FTS5 tables follow ``search_segments`` through triggers, so there is no
second copy to keep in step by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from earwitness.db import Database
from earwitness.models import SearchSegment, Segment, Transcript
from earwitness.search.backends import backend_for
from earwitness.search.normalize import fold, tokens


def index_rows(recording_id: int, segments: list[tuple[int, str]]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for segment_id, text in segments:
        norm = fold(text).text
        rows.append(
            {
                "segment_id": segment_id,
                "recording_id": recording_id,
                "norm": norm,
                "tokens": tokens(norm),
            }
        )
    return rows


def index_recording(session: Session, recording_id: int) -> int:
    """Replace the index rows of one recording; returns how many segments are indexed."""
    session.execute(delete(SearchSegment).where(SearchSegment.recording_id == recording_id))
    transcript_id = session.scalar(
        select(Transcript.id)
        .where(Transcript.recording_id == recording_id)
        .order_by(Transcript.id.desc())
        .limit(1)
    )
    if transcript_id is None:
        return 0
    segments = session.execute(
        select(Segment.id, Segment.text).where(Segment.transcript_id == transcript_id)
    ).all()
    rows = index_rows(recording_id, [(int(s.id), s.text or "") for s in segments])
    if rows:
        session.execute(insert(SearchSegment), rows)
    return len(rows)


@dataclass(frozen=True)
class ReindexReport:
    recordings: int
    segments: int


def reindex_all(
    db: Database, *, batch: int = 200, progress: Callable[[int, int], None] | None = None
) -> ReindexReport:
    """Rebuild the whole index from the stored transcripts, one transaction per batch of
    recordings so a long rebuild neither holds one giant transaction nor blocks writers."""
    with db.session() as session:
        recording_ids = list(session.scalars(select(Transcript.recording_id).distinct()))
        session.execute(delete(SearchSegment))
    recording_ids.sort()
    total = 0
    for start in range(0, len(recording_ids), batch):
        with db.session() as session:
            for rid in recording_ids[start : start + batch]:
                total += index_recording(session, rid)
        if progress is not None:
            progress(min(start + batch, len(recording_ids)), len(recording_ids))
    with db.session() as session:
        backend_for(session).after_bulk_load(session)
    return ReindexReport(len(recording_ids), total)


def indexed_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(SearchSegment)) or 0
