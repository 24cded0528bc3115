"""Recording → transcript: channels, ASR, diarization, roles, stored idempotently.

Stereo calls are transcribed channel by channel (the channel is the speaker,
exactly; the channels at the same time, see ``SpeechEngine.transcribe_streams``) and
merged by time, overlaps kept. Mono and dual-mono calls are
transcribed once and split into speakers by a :class:`MonoDiarizer`. Storing
replaces an earlier transcript of the same recording and model in one
transaction, so re-running a job (after a crash, or on purpose) never
duplicates segments.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from earwitness.config import Settings
from earwitness.db import Database
from earwitness.errors import BadInput, NotFound
from earwitness.evidence.store import BlobStore
from earwitness.models import Recording, Segment, Transcript, Word
from earwitness.recordings.intake import copy_blob_to
from earwitness.recordings.probe import decode_channels, probe
from earwitness.transcription.diarization import MonoDiarizer, make_diarizer, split_by_speaker
from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
from earwitness.transcription.queries import find_latest_transcript
from earwitness.transcription.roles import RoleDecision, assign_channel_roles, assign_mono_roles
from earwitness.transcription.types import ChannelResult, SegmentOut, WordOut

Progress = Callable[[float, str], None]


@dataclass
class CallTranscript:
    """A finished transcription of one call, before or after storing."""

    model: str
    diarization: str
    segments: list[SegmentOut]
    languages: dict[str, str | None]
    roles: RoleDecision
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def language(self) -> str | None:
        found = [x for x in self.languages.values() if x]
        return max(set(found), key=found.count) if found else None


def software_versions() -> dict[str, str]:
    """The decoder's own versions: the same weights decode differently across releases."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("faster-whisper", "ctranslate2", "onnxruntime", "earwitness"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _noop(_pct: float, _msg: str) -> None:
    return None


def transcribe_audio(
    path: Path,
    engine: SpeechEngine,
    *,
    diarizer: MonoDiarizer | None = None,
    channel_map: Mapping[int, str] | None = None,
    agent_voices: list[np.ndarray] | None = None,
    force_mono: bool = False,
    progress: Progress = _noop,
) -> CallTranscript:
    """Transcribe an audio file end to end (no database)."""
    info = probe(path)
    audio = decode_channels(path)
    progress(5.0, "decoded")
    results: list[ChannelResult] = []
    if info.speech_channels >= 2 and not force_mono:
        n = audio.shape[0]
        done = [0.0] * n

        def report(ch: int, frac: float) -> None:
            done[ch] = frac  # channels may run at the same time: report their sum
            progress(5 + 90 * sum(done) / n, f"channel {ch}")

        results += engine.transcribe_streams([(audio[ch], ch) for ch in range(n)], report)
        segments = sorted((s for r in results for s in r.segments), key=lambda s: (s.start, s.end))
        roles = assign_channel_roles(segments, channel_map)
        diarization, diar_params = "channel", {}
    else:
        mix = audio.mean(axis=0).astype(np.float32)
        result = engine.transcribe_stream(
            mix, channel=None, progress=lambda f: progress(5 + 75 * f, "mono mix")
        )
        results.append(result)
        backend = diarizer or make_diarizer()
        progress(85.0, f"diarizing ({backend.name})")
        diar = backend.diarize(mix)
        segments = split_by_speaker(result.segments, diar.turns)
        roles = assign_mono_roles(segments, diar.centroids, agent_voices)
        diarization, diar_params = diar.backend, diar.params
    params = {
        "options": engine.options.as_params(),
        "software": software_versions(),
        "diarization": diar_params,
        "role_rule": roles.rule,
        "role_detail": roles.detail,
        "roles": roles.roles,
        "dual_mono": info.dual_mono,
        "models": {str(r.channel): r.model for r in results if r.model},
        "model_files": engine.model_files(),
        "language_probability": {str(r.channel): round(r.language_probability, 3) for r in results},
        "dropped": [d for r in results for d in r.dropped],
    }
    progress(95.0, "transcribed")
    return CallTranscript(
        model=engine.label,
        diarization=diarization,
        segments=segments,
        languages={str(r.channel): r.language for r in results},
        roles=roles,
        params=params,
    )


def store_transcript(session: Session, recording_id: int, result: CallTranscript) -> Transcript:
    """Replace any transcript of this recording by the same model, then insert this one."""
    old = session.scalars(
        select(Transcript.id).where(
            Transcript.recording_id == recording_id, Transcript.model == result.model
        )
    ).all()
    if old:
        segment_ids = select(Segment.id).where(Segment.transcript_id.in_(old))
        session.execute(delete(Word).where(Word.segment_id.in_(segment_ids)))
        session.execute(delete(Segment).where(Segment.transcript_id.in_(old)))
        session.execute(delete(Transcript).where(Transcript.id.in_(old)))
        session.flush()
    transcript = Transcript(
        recording_id=recording_id,
        model=result.model,
        language=result.language,
        diarization=result.diarization,
        params={**result.params, "languages": result.languages},
    )
    for seg in result.segments:
        transcript.segments.append(
            Segment(
                channel=seg.channel,
                speaker=seg.speaker,
                role=seg.role,
                language=seg.language,
                start_s=round(seg.start, 3),
                end_s=round(seg.end, 3),
                text=seg.text,
                avg_logprob=seg.avg_logprob,
                words=[
                    Word(
                        start_s=round(w.start, 3),
                        end_s=round(w.end, 3),
                        word=w.word[:200],
                        probability=w.probability,
                    )
                    for w in seg.words
                ],
            )
        )
    session.add(transcript)
    session.flush()
    return transcript


def segments_of(transcript: Transcript) -> list[SegmentOut]:
    """Stored rows back into export-ready segments."""
    return [
        SegmentOut(
            start=s.start_s,
            end=s.end_s,
            text=s.text,
            channel=s.channel,
            speaker=s.speaker,
            role=s.role,
            language=s.language,
            avg_logprob=s.avg_logprob,
            words=[WordOut(w.start_s, w.end_s, w.word, w.probability) for w in s.words],
        )
        for s in sorted(transcript.segments, key=lambda s: (s.start_s, s.end_s))
    ]


def latest_transcript(session: Session, recording_id: int) -> Transcript:
    transcript = find_latest_transcript(session, recording_id)
    if transcript is None:
        raise NotFound(f"recording {recording_id} has no transcript yet")
    return transcript


def transcribe_recording(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    recording_id: int,
    options: TranscribeOptions | None = None,
    *,
    diarizer: MonoDiarizer | None = None,
    progress: Progress = _noop,
) -> int:
    """Transcribe a stored recording and store the result; returns the transcript id."""
    with db.session() as session:
        recording = session.get(Recording, recording_id)
        if recording is None:
            raise NotFound(f"recording {recording_id} does not exist")
        if recording.state != "ingested" or not recording.sha256:
            raise BadInput(f"recording {recording_id} has no audio (state {recording.state})")
        sha, dual = recording.sha256, recording.dual_mono
    engine = SpeechEngine(settings, options)
    with tempfile.TemporaryDirectory(prefix="ew-asr-") as tmp:
        path = copy_blob_to(blobs, sha, Path(tmp) / "audio")
        result = transcribe_audio(
            path, engine, diarizer=diarizer, force_mono=dual, progress=progress
        )
    with db.session() as session:
        transcript = store_transcript(session, recording_id, result)
        return transcript.id
