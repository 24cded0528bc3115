"""Transcription: offline ASR per channel, diarization, agent/customer roles, exports.

Stages, one module each: ``models`` (which Whisper), ``engine`` (ASR of one
stream), ``timing`` (VAD-true times), ``cleanup`` (hallucinations, simplified
Chinese), ``diarization`` (+ ``voice_encoder``, ``pyannote_backend``), ``roles``,
``exports``, ``metrics``, ``pipeline`` (recording → stored transcript), ``jobs``.
"""

from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
from earwitness.transcription.exports import FORMATS, render
from earwitness.transcription.pipeline import (
    CallTranscript,
    store_transcript,
    transcribe_audio,
    transcribe_recording,
)

__all__ = [
    "FORMATS",
    "CallTranscript",
    "SpeechEngine",
    "TranscribeOptions",
    "render",
    "store_transcript",
    "transcribe_audio",
    "transcribe_recording",
]
