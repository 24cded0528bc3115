"""The default mono diarizer on real human speech: it must *find* the number of speakers.

Data: ``tests/data/speech`` (AISHELL-1, LibriSpeech, LJ Speech; see its README and SOURCES).
The two-speaker mixes carry exact RTTM; the one- and three-speaker files are built here from
the clips, so the truth is known by construction. Real models only (silero VAD, the shipped
GE2E weights run in numpy); no mocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earwitness.errors import ServiceUnavailable
from earwitness.transcription import metrics, voice_encoder
from earwitness.transcription.diarization import Diarization, EncoderDiarizer
from earwitness.transcription.types import Turn

DATA = Path(__file__).parent / "data" / "speech"
RATE = 16000
MAX_DER = 0.25


def _read(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE and audio.ndim == 1
    return audio


def _rttm(path: Path) -> list[Turn]:
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        start, duration = float(fields[3]), float(fields[4])
        turns.append(Turn(start, start + duration, fields[7]))
    return turns


def _trimmed(clip: np.ndarray, level_dbfs: float = -26.0) -> np.ndarray:
    """The clip's speech (10 ms frames within 30 dB of its loudest), levelled to ``level_dbfs``."""
    frames = clip[: len(clip) // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - 30)
    speech = frames[loud[0] : loud[-1] + 1].reshape(-1)
    return speech * (10 ** (level_dbfs / 20) / float(np.sqrt(np.mean(speech**2))))


def _mix(clips: list[str], gap_s: float = 1.2, seed: int = 3) -> tuple[np.ndarray, list[Turn]]:
    """Clips in turn, ``gap_s`` apart, over -60 dBFS noise; speaker: the name less its utterance."""
    speech = [_trimmed(_read(DATA / "clips" / f"{name}.wav")) for name in clips]
    truth: list[Turn] = []
    at = 0.5
    for name, piece in zip(clips, speech, strict=True):
        truth.append(Turn(at, at + len(piece) / RATE, name.rsplit("_", 1)[0]))
        at += len(piece) / RATE + gap_s
    audio = np.random.default_rng(seed).normal(0, 10 ** (-60 / 20), int((at + 0.5) * RATE))
    for piece, turn in zip(speech, truth, strict=True):
        start = int(round(turn.start * RATE))
        audio[start : start + len(piece)] += piece
    return audio.astype(np.float32), truth


def _speakers(result: Diarization) -> set[str]:
    return {t.speaker for t in result.turns}


@pytest.mark.parametrize("name", ["mono_01", "mono_03"])  # Mandarin, English
def test_two_real_speakers_are_found(name: str) -> None:
    audio = _read(DATA / "mono" / f"{name}.wav")
    truth = _rttm(DATA / "mono" / f"{name}.rttm")
    result = EncoderDiarizer().diarize(audio)
    assert len(_speakers(result)) == 2
    assert set(result.centroids) == _speakers(result)
    assert result.params["speakers_found"] == 2 and "merge_similarity" in result.params
    assert metrics.der(truth, result.turns) <= MAX_DER


def test_one_real_speaker_stays_one() -> None:
    audio, truth = _mix(["zh_aishell1_S0002_W0122", "zh_aishell1_S0002_W0123"])
    result = EncoderDiarizer().diarize(audio)
    assert _speakers(result) == {"S0"}
    assert metrics.der(truth, result.turns) <= MAX_DER


def test_three_real_speakers_are_found() -> None:
    audio, truth = _mix(
        [
            "zh_aishell1_S0002_W0122",
            "en_ljspeech_LJ001-0004",
            "zh_aishell1_S0765_W0124",
            "zh_aishell1_S0002_W0123",
        ]
    )
    assert len({t.speaker for t in truth}) == 3
    result = EncoderDiarizer().diarize(audio)
    assert len(_speakers(result)) == 3
    assert metrics.der(truth, result.turns) <= MAX_DER


def test_num_speakers_forces_the_count() -> None:
    audio, _ = _mix(["zh_aishell1_S0002_W0122", "zh_aishell1_S0002_W0123"])
    assert len(_speakers(EncoderDiarizer().diarize(audio, num_speakers=2))) == 2


def test_shipped_weights_match_their_checksum() -> None:
    weights = voice_encoder.load_weights()
    assert weights["linear.weight"].shape == (256, 256)
    assert weights["lstm.weight_ih_l0"].dtype == np.float32
    notice = voice_encoder.WEIGHTS_PATH.parent / "LICENSE-resemblyzer-Apache-2.0.txt"
    assert "Apache License" in notice.read_text()


def test_weights_with_a_wrong_checksum_are_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "ge2e.npz"
    data = bytearray(voice_encoder.WEIGHTS_PATH.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(ServiceUnavailable, match="checksum"):
        voice_encoder.load_weights(tampered)
    with pytest.raises(ServiceUnavailable, match="missing"):
        voice_encoder.load_weights(tmp_path / "absent.npz")
