"""Recordings: decode and check audio, repair PBX headers, store and register recordings.

Sits between telephony (which produces recordings) and transcription (which reads them).
"""

from earwitness.recordings.intake import ingest_file, ingest_upload
from earwitness.recordings.probe import AudioInfo, decode_channels, probe
from earwitness.recordings.wavfix import looks_interleaved, repair_wav_channels

__all__ = [
    "AudioInfo",
    "decode_channels",
    "ingest_file",
    "ingest_upload",
    "looks_interleaved",
    "probe",
    "repair_wav_channels",
]
