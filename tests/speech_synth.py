"""Synthetic call recordings whose truth is known by construction (espeak-ng + sox).

Two speakers on separate channels at 8 kHz (channel 0 = customer, channel 1 =
agent, as MixMonitor ``D`` records them), utterances placed at chosen times
with pauses and an overlap, optional noise, and the mono mix of the same call.
The truth of each utterance is the *audible* extent of its samples (espeak pads
with silence), so timing checks compare against the speech itself.

Mandarin uses pinyin with tone numbers and the ``cmn-latn-pinyin`` voice, since
Debian's ``cmn`` voice spells characters out letter by letter (DESIGN.md).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from earwitness.config import Settings

RATE = 8000
CHANNEL = {"customer": 0, "agent": 1}
VOICES = {
    ("en", "agent"): "en-us+f3",
    ("en", "customer"): "en-us+m3",
    ("zh", "agent"): "cmn-latn-pinyin+f3",
    ("zh", "customer"): "cmn-latn-pinyin+m3",
}


@dataclass(frozen=True)
class Line:
    role: str
    text: str
    at: float  # seconds from the start of the call


@dataclass(frozen=True)
class Truth:
    role: str
    channel: int
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Call:
    stereo: Path
    mono: Path
    truth: list[Truth]
    duration_s: float
    language: str


EN_DIALOGUE = [
    Line("agent", "Thank you for calling the complaint hotline, how can I help you today?", 0.5),
    Line("customer", "My rescue truck was more than one hour late on the airport expressway.", 5.4),
    Line("agent", "I am very sorry. Can you tell me the plate number of your car?", 11.0),
    # starts before the agent has finished: an overlap of about one second
    Line("customer", "The plate number is seven seven five, and I want compensation.", 14.2),
    Line("agent", "A supervisor will call you back within ten minutes.", 20.5),
    Line("customer", "Okay, thank you, goodbye.", 25.6),
]

ZH_DIALOGUE = [
    Line("agent", "您好，这里是投诉热线，请问有什么可以帮您？", 0.5),
    Line("customer", "我的救援车晚到了一个多小时。", 7.6),
    Line("agent", "非常抱歉，请告诉我您的车牌号。", 12.6),
    Line("customer", "车牌是京A一二三四五。", 17.8),
    Line("agent", "好的，我们会在十分钟内给您回电话。", 22.2),
]


def to_pinyin(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))


def speak(text: str, voice: str, language: str) -> np.ndarray:
    """One utterance as float32 samples at 8 kHz."""
    spoken = to_pinyin(text) if language == "zh" else text
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), spoken], check=True)
        subprocess.run(["sox", "-G", str(raw), "-r", str(RATE), "-b", "16", str(out)], check=True)
        samples, _ = sf.read(out, dtype="float32")
    return samples


def audible_extent(samples: np.ndarray, threshold: float = 0.02) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return int(loud[0]), int(loud[-1]) + 1


def build_call(
    out_dir: Path,
    lines: list[Line],
    *,
    language: str = "en",
    noise_dbfs: float | None = None,
    tail_s: float = 2.0,
    silent_role: str | None = None,
    seed: int = 7,
) -> Call:
    """Write ``call.wav`` (stereo) and ``mono.wav`` (mix) under ``out_dir`` and return the truth."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = [(line, speak(line.text, VOICES[(language, line.role)], language)) for line in lines]
    total = max(line.at + len(s) / RATE for line, s in clips) + tail_s
    tracks = np.zeros((2, int(total * RATE)), dtype=np.float32)
    truth: list[Truth] = []
    for line, samples in clips:
        if line.role == silent_role:
            continue
        ch, begin = CHANNEL[line.role], int(line.at * RATE)
        tracks[ch, begin : begin + len(samples)] += samples * 0.7
        first, last = audible_extent(samples)
        truth.append(Truth(line.role, ch, line.text, (begin + first) / RATE, (begin + last) / RATE))
    if noise_dbfs is not None:
        rng = np.random.default_rng(seed)
        tracks += rng.normal(0, 10 ** (noise_dbfs / 20), tracks.shape).astype(np.float32)
    stereo, mono = out_dir / "call.wav", out_dir / "mono.wav"
    sf.write(stereo, tracks.T, RATE, subtype="PCM_16")
    sf.write(mono, np.clip(tracks.sum(axis=0), -1, 1), RATE, subtype="PCM_16")
    truth.sort(key=lambda t: t.start_s)
    return Call(stereo, mono, truth, total, language)


def model_cache_dir() -> Path:
    """Where tests keep the joined multilingual model (joined once per machine, not per test)."""
    return Path.home() / ".cache" / "earwitness"


def asr_settings(data_dir: Path) -> Settings:
    """Settings for a test that transcribes: its own data dir, the machine's joined model."""
    from earwitness.config import load_settings
    from earwitness.transcription.models import joined_base_dir

    base = joined_base_dir(model_cache_dir())
    return load_settings(data_dir=data_dir, whisper_model_multilingual=str(base))


def match_truth(truth: list[Truth], segments: list, role: str) -> list[tuple[Truth, object]]:  # type: ignore[type-arg]
    """Pair each truth utterance of ``role`` with the segment that overlaps it most."""
    pairs = []
    for t in (x for x in truth if x.role == role):
        best = max(
            (s for s in segments if s.role == role),
            key=lambda s: min(s.end, t.end_s) - max(s.start, t.start_s),
            default=None,
        )
        pairs.append((t, best))
    return pairs
