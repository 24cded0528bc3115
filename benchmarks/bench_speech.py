"""Transcription quality on real speech: earwitness vs plain faster-whisper, same model.

Data: the speech dev set (``../shared/data/speech``, see its README; ``EARWITNESS_SPEECH_DIR``
overrides, ``tests/data/speech`` is the fallback): 22 real clips (14 Mandarin, 8 English), 4
synthetic two-channel 8 kHz calls with per-utterance truth (``calls.json``) and 3 two-speaker
16 kHz mono mixes with exact RTTM (``mono.json``, ``mono/*.rttm``).

*Ours* is ``earwitness.transcription.pipeline.transcribe_audio`` with a default
``SpeechEngine`` (channel split for stereo calls, the default mono diarizer otherwise). The
*baseline* is the same CTranslate2 model in a plain ``faster_whisper.WhisperModel`` (cpu, int8)
with ``transcribe(audio, vad_filter=True, word_timestamps=True)`` and every other default
(beam 5, temperature fallback, ``condition_on_previous_text``, language detection). For the
stereo calls the baseline decodes each channel on its own
(``decode_audio(split_stereo=True)``), so both sides get the same channel split; for mono files
it has no diarization (everything is one speaker). Its text is converted traditional →
simplified as earwitness does (opencc t2s), or it would be scored for the script, not the words.

Scores, identical for both sides (:func:`tokens`):

- CER for Mandarin, WER for English. Mandarin is scored per character, except that a run of
  Latin letters or digits counts as one token (the FLEURS texts carry English names such as
  "swapo" and numbers such as "2011": one wrong name is one error, not six). The mixed call's
  Mandarin channel is scored this way as a whole; its English channel by WER. Call channels
  are scored on the whole channel text (segments joined in time order).
  Bracketed marks such as ``[inaudible]`` are not words and are dropped before scoring; a
  segment that holds only a mark still counts for the utterance and timing scores below.
- Utterances (calls and mono mixes): a reference utterance is *found within ±t s* when some
  hypothesis segment on the same channel (mono: any segment) overlaps it in time and starts
  within t s of its onset; otherwise it is *missed* (t = 0.5 and 1.0). *Extra* = hypothesis
  segments that overlap no reference utterance on their channel. *Onset error* of an utterance
  = the smallest |start - onset| over the hypothesis segments that overlap it (utterances that
  nothing overlaps have none and count as missed); mean and max over the utterances.
- DER: ``earwitness.transcription.metrics.der`` (10 ms frames, no collar). Calls: the speaker
  is the channel, on both sides. Mono: the RTTM against the hypothesis speakers (the baseline
  has one).
- RTF: processing seconds / audio seconds, models loaded beforehand (one untimed warm-up each).

Run: ``python -m benchmarks speech [--json PATH]`` or
``python -m benchmarks.bench_speech [--json PATH] [--markdown]``; ``run()`` returns the lines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``python benchmarks/bench_speech.py`` works too
    sys.path.insert(0, str(ROOT))

from earwitness.transcription.metrics import der, edit_distance, normalise  # noqa: E402
from earwitness.transcription.types import Turn  # noqa: E402

TOLERANCES = (0.5, 1.0)
SPEECH_ENV = "EARWITNESS_SPEECH_DIR"


def speech_dir() -> Path:
    """The speech dev set: $EARWITNESS_SPEECH_DIR, ../shared/data/speech, tests/data/speech."""
    env = os.environ.get(SPEECH_ENV)
    candidates = (
        [Path(env)] if env else [ROOT.parent / "shared/data/speech", ROOT / "tests/data/speech"]
    )
    for path in candidates:
        if (path / "clips.json").is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"no speech dev set (clips.json) in {tried}; set {SPEECH_ENV} to its directory"
    )


# --- text normalisation ---------------------------------------------------------------------
#
# Numbers: AISHELL-1 writes them in characters (六月底, 一二线), FLEURS keeps digits
# (2011 年 8 月), LJ Speech spells them out (fourteen fifty-five), and Whisper writes either.
# Scoring "2011" against "二零一一" as four errors would measure the corpus's convention, not
# the recogniser, so both reference and hypothesis are mapped to one canonical form: Chinese
# numerals → Arabic digits (Mandarin), Arabic digits → English words (English). The mapping is
# a function of the text alone and is applied to both sides, so where it is imperfect (一样 →
# 1样) it is imperfect identically and costs neither side anything.

_ZH_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
_ZH_BIG = {"万": 10**4, "亿": 10**8}
_ZH_NUMERAL_RUN = re.compile(f"[{''.join([*_ZH_DIGITS, *_ZH_UNITS, *_ZH_BIG])}]+")


def zh_numeral_to_digits(run: str) -> str:
    """One run of Chinese numeral characters as Arabic digits.

    Digits without units are read digit by digit (二零一一 → 2011, 一二 → 12); with units
    by value (十五 → 15, 四百零三 → 403, 一亿二千万 → 120000000). A run with no digit that
    does not start with 十 is a word, not a number, and is kept (亿 in 过亿, 千万).
    """
    if all(c in _ZH_DIGITS for c in run):
        return "".join(str(_ZH_DIGITS[c]) for c in run)
    if not any(c in _ZH_DIGITS for c in run) and not run.startswith("十"):
        return run
    total = section = number = 0
    for c in run:
        if c in _ZH_DIGITS:
            number = _ZH_DIGITS[c]
        elif c in _ZH_UNITS:
            section += (number or 1) * _ZH_UNITS[c]
            number = 0
        elif c == "万":
            total += (section + number) * _ZH_BIG[c]
            section = number = 0
        else:  # 亿
            total = (total + section + number) * _ZH_BIG[c]
            section = number = 0
    return str(total + section + number)


_EN_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_EN_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def en_number_words(n: int) -> str:
    """An integer in words as read aloud: 42 → forty two, 1455 → fourteen fifty five.

    Years 1100–1999 (not whole hundreds) are read in pairs (nineteen oh five), as LJ Speech
    and most readers do; everything else by thousands and hundreds.
    """
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + (f" {_EN_ONES[ones]}" if ones else "")
    if 1100 <= n <= 1999 and n % 100:
        high, low = divmod(n, 100)
        return f"{en_number_words(high)} " + (
            f"oh {_EN_ONES[low]}" if low < 10 else en_number_words(low)
        )
    for size, name in (
        (10**9, "billion"),
        (10**6, "million"),
        (1000, "thousand"),
        (100, "hundred"),
    ):
        if n >= size:
            high, low = divmod(n, size)
            rest = f" {en_number_words(low)}" if low else ""
            return f"{en_number_words(high)} {name}{rest}"
    raise AssertionError("unreachable")  # pragma: no cover


def _t2s(text: str) -> str:
    from earwitness.transcription.cleanup import to_simplified

    return to_simplified(text)


_DIGIT_RUN = re.compile(r"\d+")
_ZH_TOKEN = re.compile(r"[a-z0-9]+|\S")
_MARK = re.compile(r"\[[^\]]*\]")


def tokens(text: str, lang: str) -> list[str]:
    """Scoring tokens of ``text``: characters (Latin/digit runs whole) for zh, words for en.

    NFKC, lower case, bracketed marks dropped (``[inaudible]``: a mark, not words; what it
    stands for is already counted as deleted), traditional → simplified, canonical numbers,
    punctuation removed (``metrics.normalise``), then split.
    """
    text = _MARK.sub(" ", unicodedata.normalize("NFKC", text))
    text = _t2s(text.lower())
    if lang == "zh":
        text = _ZH_NUMERAL_RUN.sub(lambda m: zh_numeral_to_digits(m.group()), text)
        text = re.sub(r"(?<=\d)[,.](?=\d)", "", text)  # 1,500 / 3.5 → one number token
        return _ZH_TOKEN.findall(normalise(text))
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = _DIGIT_RUN.sub(lambda m: f" {en_number_words(int(m.group()))} ", text)
    return normalise(text).split()


@dataclass(frozen=True)
class Score:
    errors: int
    ref_tokens: int

    @property
    def rate(self) -> float:
        return self.errors / max(self.ref_tokens, 1)


def score_text(reference: str, hypothesis: str, lang: str) -> Score:
    """Edit distance between the token lists, and the reference length (CER/WER = ratio)."""
    ref, hyp = tokens(reference, lang), tokens(hypothesis, lang)
    return Score(edit_distance(ref, hyp), len(ref))


# --- utterance matching ---------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A stretch of time on a channel (None for a mono file): an utterance or a segment."""

    start: float
    end: float
    channel: int | None = None


def _overlap(a: Span, b: Span) -> bool:
    return a.channel == b.channel and min(a.end, b.end) > max(a.start, b.start)


@dataclass
class UtteranceMatch:
    """How the hypothesis segments cover the reference utterances (see the module doc)."""

    missed: dict[float, list[int]]  # tolerance (s) → indices of reference utterances missed
    extra: list[int]  # indices of hypothesis segments that overlap no reference utterance
    onset_errors: list[float | None]  # per reference utterance; None when nothing overlaps

    @property
    def onset_mean(self) -> float | None:
        found = [e for e in self.onset_errors if e is not None]
        return sum(found) / len(found) if found else None

    @property
    def onset_max(self) -> float | None:
        found = [e for e in self.onset_errors if e is not None]
        return max(found) if found else None


def match_utterances(
    reference: Sequence[Span], hypothesis: Sequence[Span], tolerances: Iterable[float] = TOLERANCES
) -> UtteranceMatch:
    onset_errors: list[float | None] = []
    for ref in reference:
        starts = [abs(h.start - ref.start) for h in hypothesis if _overlap(ref, h)]
        onset_errors.append(min(starts) if starts else None)
    missed = {
        t: [i for i, e in enumerate(onset_errors) if e is None or e > t + 1e-9] for t in tolerances
    }
    extra = [j for j, h in enumerate(hypothesis) if not any(_overlap(r, h) for r in reference)]
    return UtteranceMatch(missed, extra, onset_errors)


def read_rttm(path: Path) -> list[Turn]:
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append(Turn(start, start + duration, parts[7]))
    return turns


# --- the two sides --------------------------------------------------------------------------


@dataclass
class Seg:
    start: float
    end: float
    text: str
    channel: int | None = None
    speaker: str | None = None


@dataclass
class Output:
    segments: list[Seg]
    seconds: float


class Ours:
    name = "earwitness"

    def __init__(self, workdir: Path, model_dir: Path) -> None:
        from earwitness.config import load_settings
        from earwitness.transcription.engine import SpeechEngine

        settings = load_settings(
            data_dir=workdir / "data", whisper_model_multilingual=str(model_dir)
        )
        self.engine = SpeechEngine(settings)

    def transcribe(self, path: Path, stereo: bool) -> Output:
        from earwitness.transcription.pipeline import transcribe_audio

        start = time.perf_counter()
        result = transcribe_audio(path, self.engine)
        seconds = time.perf_counter() - start
        segs = [
            Seg(s.start, s.end, s.text, s.channel if stereo else None, s.speaker)
            for s in result.segments
        ]
        return Output(segs, seconds)


class Baseline:
    name = "faster-whisper"

    def __init__(self, model_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device="cpu", compute_type="int8")

    def _decode(self, audio: Any, channel: int | None) -> list[Seg]:
        segments, _info = self.model.transcribe(audio, vad_filter=True, word_timestamps=True)
        return [
            Seg(float(s.start), float(s.end), _t2s(s.text.strip()), channel, "speaker")
            for s in segments
        ]

    def transcribe(self, path: Path, stereo: bool) -> Output:
        from faster_whisper import decode_audio

        start = time.perf_counter()
        if stereo:
            channels = decode_audio(str(path), split_stereo=True)
            segs = [s for ch, audio in enumerate(channels) for s in self._decode(audio, ch)]
        else:
            segs = self._decode(decode_audio(str(path)), None)
        seconds = time.perf_counter() - start
        return Output(sorted(segs, key=lambda s: (s.start, s.end)), seconds)


# --- scoring of one file --------------------------------------------------------------------


@dataclass
class SideResult:
    """One side's numbers on one file (None where the metric does not apply)."""

    seconds: float
    rtf: float
    error_rates: dict[str, float] = field(default_factory=dict)  # "cer"/"wer" or "cer_ch0", ...
    scores: dict[str, list[int]] = field(default_factory=dict)  # same keys: [errors, ref tokens]
    missed: dict[str, list[int]] | None = None  # "0.5"/"1.0" → missed reference indices
    extra: int | None = None
    onset_mean: float | None = None
    onset_max: float | None = None
    der: float | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)


def _joined(segs: Iterable[Seg]) -> str:
    return " ".join(s.text for s in sorted(segs, key=lambda s: (s.start, s.end)))


def _side(out: Output, audio_s: float) -> SideResult:
    return SideResult(
        seconds=out.seconds,
        rtf=out.seconds / audio_s,
        segments=[asdict(s) for s in out.segments],
    )


def _add_score(side: SideResult, key: str, score: Score) -> None:
    side.error_rates[key] = score.rate
    side.scores[key] = [score.errors, score.ref_tokens]


def _add_utterances(side: SideResult, refs: list[Span], out: Output) -> None:
    match = match_utterances(refs, [Span(s.start, s.end, s.channel) for s in out.segments])
    side.missed = {f"{t:.1f}": idx for t, idx in match.missed.items()}
    side.extra = len(match.extra)
    side.onset_mean, side.onset_max = match.onset_mean, match.onset_max


def score_clip(item: dict[str, Any], out: Output) -> SideResult:
    side = _side(out, float(item["duration_s"]))
    lang = item["lang"]
    _add_score(
        side,
        "cer" if lang == "zh" else "wer",
        score_text(item["text"], _joined(out.segments), lang),
    )
    return side


def score_call(item: dict[str, Any], out: Output) -> SideResult:
    side = _side(out, float(item["duration_s"]))
    refs: list[Span] = []
    ref_turns: list[Turn] = []
    for ch in item["channels"]:
        c = int(ch["channel"])
        langs = {s["lang"] for s in ch["segments"]}
        lang = langs.pop() if len(langs) == 1 else "zh"  # a channel of mixed languages: CER
        hyp = _joined(s for s in out.segments if s.channel == c)
        _add_score(
            side, f"{'cer' if lang == 'zh' else 'wer'}_ch{c}", score_text(ch["text"], hyp, lang)
        )
        for s in ch["segments"]:
            refs.append(Span(float(s["onset_s"]), float(s["end_s"]), c))
            ref_turns.append(Turn(float(s["onset_s"]), float(s["end_s"]), f"ch{c}"))
    _add_utterances(side, refs, out)
    hyp_turns = [Turn(s.start, s.end, f"ch{s.channel}") for s in out.segments]
    side.der = der(ref_turns, hyp_turns)
    return side


def score_mono(item: dict[str, Any], rttm: Path, out: Output) -> SideResult:
    side = _side(out, float(item["duration_s"]))
    lang = item["lang"]
    reference = " ".join(s["text"] for s in sorted(item["segments"], key=lambda s: s["onset_s"]))
    _add_score(
        side, "cer" if lang == "zh" else "wer", score_text(reference, _joined(out.segments), lang)
    )
    refs = [Span(float(s["onset_s"]), float(s["end_s"])) for s in item["segments"]]
    _add_utterances(side, refs, out)
    hyp_turns = [Turn(s.start, s.end, s.speaker or "unknown") for s in out.segments]
    side.der = der(read_rttm(rttm), hyp_turns)
    return side


# --- the run --------------------------------------------------------------------------------


def _model_dir() -> Path:
    from earwitness.transcription.models import joined_base_dir

    # the tests' cache (tests/speech_synth.model_cache_dir): joined once per machine
    return joined_base_dir(Path.home() / ".cache" / "earwitness")


def measure(log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Transcribe and score every file with both sides; everything as one JSON-able dict."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    data = speech_dir()
    clips = json.loads((data / "clips.json").read_text())
    calls = json.loads((data / "calls.json").read_text())
    monos = json.loads((data / "mono.json").read_text())
    model_dir = _model_dir()
    files: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ew-bench-speech-") as tmp:
        sides: list[Ours | Baseline] = [Ours(Path(tmp), model_dir), Baseline(model_dir)]
        for side in sides:  # untimed warm-up: model loads (and the diarizer's) are not RTF
            side.transcribe(data / clips[0]["file"], stereo=False)
        jobs: list[tuple[str, dict[str, Any], bool, Callable[..., SideResult]]] = [
            *(("clip", c, False, score_clip) for c in clips),
            *(("call", c, True, score_call) for c in calls),
            *(
                ("mono", m, False, lambda item, out: score_mono(item, data / item["rttm"], out))
                for m in monos
            ),
        ]
        for kind, item, stereo, score in jobs:
            path = data / item["file"]
            result: dict[str, Any] = {
                "file": Path(item["file"]).stem,
                "kind": kind,
                "lang": item["lang"],
                "duration_s": float(item["duration_s"]),
            }
            for side, key in zip(sides, ("ours", "baseline"), strict=True):
                result[key] = asdict(score(item, side.transcribe(path, stereo)))
            if kind != "clip":
                result["utterances"] = sum(
                    len(ch["segments"]) for ch in item.get("channels", [item])
                )
            log(f"  {result['file']}: ours {result['ours']['seconds']:.1f} s, "
                f"baseline {result['baseline']['seconds']:.1f} s")  # fmt: skip
            files.append(result)
    return {
        "data_dir": str(data),
        "model_dir": str(model_dir),
        "tolerances_s": list(TOLERANCES),
        "files": files,
        "summary": summarise(files),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(files: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """The headline numbers, each as {"ours": x, "baseline": y}."""
    out: dict[str, dict[str, float | None]] = {}
    for key in ("ours", "baseline"):

        def rates(kind: str, metric: str, key: str = key) -> list[float]:
            return [
                v
                for f in files
                if f["kind"] == kind
                for k, v in f[key]["error_rates"].items()
                if k.startswith(metric)
            ]

        def total(kind: str, get: Callable[[dict[str, Any]], float], key: str = key) -> float:
            return float(sum(get(f[key]) for f in files if f["kind"] == kind))

        def mean_of(kind: str, name: str, key: str = key) -> float | None:
            return _mean(
                [f[key][name] for f in files if f["kind"] == kind and f[key][name] is not None]
            )

        def max_of(kind: str, name: str, key: str = key) -> float | None:
            found = [f[key][name] for f in files if f["kind"] == kind and f[key][name] is not None]
            return max(found) if found else None

        values: dict[str, float | None] = {
            "speech_zh_clips_cer": _mean(rates("clip", "cer")),
            "speech_en_clips_wer": _mean(rates("clip", "wer")),
            "speech_calls_cer": _mean(rates("call", "cer")),
            "speech_calls_wer": _mean(rates("call", "wer")),
        }
        for kind, label in (("call", "calls"), ("mono", "mono")):
            if kind == "mono":
                values["speech_mono_cer"] = _mean(rates("mono", "cer"))
                values["speech_mono_wer"] = _mean(rates("mono", "wer"))
            values[f"speech_{label}_missed"] = total(kind, lambda s: len(s["missed"]["0.5"]))
            values[f"speech_{label}_missed_1s"] = total(kind, lambda s: len(s["missed"]["1.0"]))
            values[f"speech_{label}_extra"] = total(kind, lambda s: s["extra"])
            values[f"speech_{label}_onset_mean"] = mean_of(kind, "onset_mean")
            values[f"speech_{label}_onset_max"] = max_of(kind, "onset_max")
            values[f"speech_{label}_der"] = mean_of(kind, "der")
        audio = sum(f["duration_s"] for f in files)
        values["speech_rtf"] = sum(f[key]["seconds"] for f in files) / audio if audio else None
        for name, value in values.items():
            out.setdefault(name, {})[key] = value
    out["utterances"] = {
        kind: float(sum(f.get("utterances", 0) for f in files if f["kind"] == kind))
        for kind in ("call", "mono")
    }
    return out


def ratio(ours: float | None, baseline: float | None) -> str:
    """baseline ÷ ours: every number here is lower-is-better, so > 1 means earwitness is better."""
    if ours is None or baseline is None:
        return "n/a"
    if ours == 0:
        return "1.00" if baseline == 0 else "inf"
    return f"{baseline / ours:.2f}"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and digits == 0:
        return str(int(value))
    return f"{value:.{digits}f}"


_SUMMARY_NOTES = {
    "speech_zh_clips_cer": "mean over 14 zh clips",
    "speech_en_clips_wer": "mean over 8 en clips",
    "speech_calls_cer": "mean over the Mandarin call channels",
    "speech_calls_wer": "mean over the English call channels",
    "speech_calls_missed": "utterances, onset ±0.5 s",
    "speech_calls_missed_1s": "utterances, onset ±1.0 s",
    "speech_calls_extra": "segments over no utterance",
    "speech_calls_onset_mean": "s",
    "speech_calls_onset_max": "s",
    "speech_calls_der": "mean over calls, speaker = channel",
    "speech_mono_missed": "utterances, onset ±0.5 s",
    "speech_mono_missed_1s": "utterances, onset ±1.0 s",
    "speech_mono_extra": "segments over no utterance",
    "speech_mono_onset_mean": "s",
    "speech_mono_onset_max": "s",
    "speech_mono_der": "mean over mono mixes; baseline = one speaker",
    "speech_rtf": "processing s / audio s, all files",
}


def summary_lines(summary: dict[str, dict[str, float | None]]) -> list[str]:
    n_utt = summary["utterances"]
    lines = []
    for name, pair in summary.items():
        if name == "utterances":
            continue
        count = "missed" in name or "extra" in name
        digits = 0 if count else 2 if "onset" in name else 3
        note = _SUMMARY_NOTES.get(name, "")
        if "missed" in name:
            kind = "call" if "calls" in name else "mono"
            note = f"of {_num(n_utt[kind], 0)} {note}"
        lines.append(
            f"{name}: ours {_num(pair['ours'], digits)}, baseline {_num(pair['baseline'], digits)},"
            f" ratio {ratio(pair['ours'], pair['baseline'])}" + (f" ({note})" if note else "")
        )
    return lines


TABLE_COLUMNS = (
    "file",
    "CER/WER",
    "missed ±0.5",
    "missed ±1.0",
    "extra",
    "onset mean",
    "onset max",
    "DER",
    "RTF",
)


def table_rows(files: list[dict[str, Any]]) -> list[list[str]]:
    """One row per file; each cell "ours / baseline"."""

    def pair(f: dict[str, Any], get: Callable[[dict[str, Any]], str]) -> str:
        a, b = get(f["ours"]), get(f["baseline"])
        return "-" if a == b == "-" else f"{a} / {b}"

    def err(side: dict[str, Any]) -> str:
        return " ".join(f"{k} {v:.3f}" for k, v in side["error_rates"].items())

    def missed(t: str) -> Callable[[dict[str, Any]], str]:
        return lambda s: "-" if s["missed"] is None else str(len(s["missed"][t]))

    rows = []
    for f in files:
        if f["kind"] == "clip":
            lang = "cer" if f["lang"] == "zh" else "wer"
            error = (
                f"{f['ours']['error_rates'][lang]:.3f} / {f['baseline']['error_rates'][lang]:.3f}"
            )
        else:
            keys = list(f["ours"]["error_rates"])
            error = "; ".join(
                f"{k} {f['ours']['error_rates'][k]:.3f} / {f['baseline']['error_rates'][k]:.3f}"
                for k in keys
            )
        n = f.get("utterances")
        rows.append(
            [
                f["file"],
                error,
                pair(f, missed("0.5")) + (f" of {n}" if n else ""),
                pair(f, missed("1.0")),
                pair(f, lambda s: _num(s["extra"], 0)),
                pair(f, lambda s: _num(s["onset_mean"], 2)),
                pair(f, lambda s: _num(s["onset_max"], 2)),
                pair(f, lambda s: _num(s["der"], 3)),
                pair(f, lambda s: _num(s["rtf"], 3)),
            ]
        )
    return rows


def format_table(files: list[dict[str, Any]], markdown: bool = False) -> list[str]:
    rows = table_rows(files)
    if markdown:
        lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        return lines + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [
        max(len(r[i]) for r in [list(TABLE_COLUMNS), *rows]) for i in range(len(TABLE_COLUMNS))
    ]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    header = fmt.format(*TABLE_COLUMNS).rstrip()
    return [
        "speech (each cell: earwitness / faster-whisper)",
        header,
        "-" * len(header),
        *(fmt.format(*r).rstrip() for r in rows),
    ]


def run(json_path: str | None = None, markdown: bool = False) -> list[str]:
    results = measure()
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return [*format_table(results["files"], markdown), *summary_lines(results["summary"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write every number (and segment) here")
    parser.add_argument("--markdown", action="store_true", help="per-file table as Markdown")
    args = parser.parse_args(argv)
    try:
        lines = run(args.json, args.markdown)
    except FileNotFoundError as exc:
        print(f"bench_speech: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
