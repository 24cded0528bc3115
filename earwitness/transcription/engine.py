"""Speech recognition of one audio stream (a channel or a mono mix) with faster-whisper.

Per stream: VAD first (a silent channel yields nothing — no model call, so no
hallucination), then language detection with the multilingual model, then the
model for that language (English → the English model, tiny.en by default;
anything else → multilingual base), word timestamps, VAD-clamped times
(:mod:`timing`), hallucination filters and Chinese → simplified
(:mod:`cleanup`). Models are loaded once per process and shared by jobs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earwitness.config import Settings
from earwitness.errors import ServiceUnavailable
from earwitness.transcription import cleanup
from earwitness.transcription.models import ModelSpec, english_model, multilingual_model
from earwitness.transcription.timing import (
    SAMPLE_RATE,
    TimingOptions,
    retime,
    speech_overlap,
    speech_regions,
)
from earwitness.transcription.types import ChannelResult, SegmentOut, WordOut

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything that changes a transcript; stored with it (``Transcript.params``)."""

    language: str | None = None  # force one language; None = detect per channel
    languages: tuple[str, ...] = ("zh", "en")  # detection picks among these (empty = any)
    vocabulary: tuple[str, ...] = ()  # plates, order numbers, place names → initial prompt
    beam_size: int = 5
    # English channels to the English-only model (tiny.en by default). Off by default: on
    # 8 kHz calls the multilingual base had half tiny.en's WER at about the same speed
    # (benchmarks/README.md); set a large English model here for production.
    use_english_model: bool = False
    timing: TimingOptions = field(default_factory=TimingOptions)

    def initial_prompt(self, language: str) -> str | None:
        if not self.vocabulary:
            return None
        joined = "、".join(self.vocabulary) if language == "zh" else ", ".join(self.vocabulary)
        return f"{'词汇' if language == 'zh' else 'Glossary'}: {joined}"

    def as_params(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "languages": list(self.languages),
            "vocabulary": list(self.vocabulary),
            "beam_size": self.beam_size,
            "use_english_model": self.use_english_model,
            "timing": self.timing.__dict__,
        }


_MODELS: dict[tuple[str, str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def load_whisper(spec: ModelSpec, device: str, compute_type: str) -> Any:
    """A cached faster-whisper model; ServiceUnavailable when it cannot be loaded."""
    key = (spec.source, device, compute_type)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from faster_whisper import WhisperModel

            try:
                _MODELS[key] = WhisperModel(
                    spec.source, device=device, compute_type=compute_type, local_files_only=True
                )
            except (OSError, RuntimeError, ValueError) as exc:
                raise ServiceUnavailable(
                    f"cannot load Whisper model {spec.label!r}: {exc}"
                ) from None
        return _MODELS[key]


class SpeechEngine:
    """Transcribes streams with the models the settings name; one per process is enough."""

    def __init__(self, settings: Settings, options: TranscribeOptions | None = None) -> None:
        self.settings = settings
        self.options = options or TranscribeOptions()
        self._english = english_model(settings)
        self._multi: ModelSpec | None = None

    @property
    def multilingual(self) -> ModelSpec:
        if self._multi is None:
            self._multi = multilingual_model(self.settings)
        return self._multi

    @property
    def label(self) -> str:
        """The model key a transcript is stored under (one per recording and label)."""
        if self.options.language == "en" and self.options.use_english_model:
            return self._english.label
        if not self.options.use_english_model:
            return self.multilingual.label
        return f"{self.multilingual.label}+{self._english.label}"

    def _model(self, spec: ModelSpec) -> Any:
        return load_whisper(spec, self.settings.whisper_device, self.settings.whisper_compute_type)

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        if self.options.language:
            return self.options.language, 1.0
        model = self._model(self.multilingual)
        lang, prob, ranked = model.detect_language(audio, vad_filter=True)
        allowed = self.options.languages
        if allowed and lang not in allowed:
            best = max((p for p in ranked if p[0] in allowed), key=lambda p: p[1], default=None)
            if best is not None:
                lang, prob = best
        return str(lang), float(prob)

    def spec_for(self, language: str) -> ModelSpec:
        if language == "en" and self.options.use_english_model:
            return self._english
        return self.multilingual

    def _transcribe(self, spec: ModelSpec, audio: np.ndarray, language: str | None) -> Any:
        return self._model(spec).transcribe(
            audio,
            language=language if spec.multilingual else None,
            beam_size=self.options.beam_size,
            word_timestamps=True,
            vad_filter=True,
            vad_parameters={"min_silence_duration_ms": 500, "speech_pad_ms": 200},
            condition_on_previous_text=False,
            initial_prompt=self.options.initial_prompt(language or ""),
        )

    def _run(self, audio: np.ndarray) -> tuple[Any, str, float, ModelSpec]:
        """Segments (lazy), language, its probability and the model that decoded them.

        Without a forced language the multilingual model detects it from the encoder
        pass it needs for decoding anyway (one pass saved per channel); a language
        outside ``options.languages`` is replaced by the likeliest allowed one.
        """
        if self.options.language or self.options.use_english_model:
            language, probability = self.detect_language(audio)
            spec = self.spec_for(language)
            segments, _ = self._transcribe(spec, audio, language)
            return segments, language, probability, spec
        spec = self.multilingual
        segments, info = self._transcribe(spec, audio, None)
        language, probability = str(info.language), float(info.language_probability)
        allowed = self.options.languages
        if allowed and language not in allowed:
            ranked = info.all_language_probs or []
            best = max((p for p in ranked if p[0] in allowed), key=lambda p: p[1], default=None)
            if best is not None:
                language, probability = str(best[0]), float(best[1])
                segments, _ = self._transcribe(spec, audio, language)
        return segments, language, probability, spec

    def transcribe_stream(
        self, audio: np.ndarray, *, channel: int | None, progress: ProgressFn | None = None
    ) -> ChannelResult:
        """Transcribe 16 kHz mono float32 audio; times are seconds from its start."""
        regions = speech_regions(audio, self.options.timing)
        if not regions:
            return ChannelResult(channel, None, 0.0, "", [], [])
        segments, language, probability, spec = self._run(audio)
        duration = len(audio) / SAMPLE_RATE
        kept: list[SegmentOut] = []
        dropped: list[str] = []
        for seg in segments:  # a generator: long audio streams
            if progress is not None:
                progress(min(1.0, seg.end / max(duration, 1e-6)))
            reason = self._reject_reason(seg, regions)
            if reason:
                dropped.append(f"{reason}: {seg.text.strip()[:80]}")
                continue
            out = self._segment(seg, channel, language)
            kept.extend(retime(out, regions, self.options.timing))
        return ChannelResult(channel, language, probability, spec.label, kept, regions, dropped)

    @staticmethod
    def _reject_reason(seg: Any, regions: list[Any]) -> str | None:
        text = seg.text.strip()
        if not text:
            return "empty"
        if cleanup.is_credit_line(text):
            return "silence hallucination"
        if cleanup.is_no_speech(seg.no_speech_prob, seg.avg_logprob):
            return "no speech"
        if cleanup.is_loop(text):
            return "repetition loop"
        span = max(seg.end - seg.start, 1e-3)
        if speech_overlap(seg.start, seg.end, regions) / span < cleanup.MIN_SPEECH_SHARE:
            return "no voice under it"
        return None

    @staticmethod
    def _segment(seg: Any, channel: int | None, language: str) -> SegmentOut:
        convert = cleanup.to_simplified if language == "zh" else (lambda s: s)
        words = [
            WordOut(float(w.start), float(w.end), convert(w.word), float(w.probability))
            for w in (seg.words or [])
        ]
        words = _collapse_word_repeats(words)
        return SegmentOut(
            start=float(seg.start),
            end=float(seg.end),
            text=convert(cleanup.collapse_repeats(seg.text.strip())),
            channel=channel,
            language=language,
            avg_logprob=float(seg.avg_logprob),
            words=words,
        )


def _collapse_word_repeats(words: list[WordOut], min_repeats: int = 3) -> list[WordOut]:
    """Drop words of a phrase looping ``min_repeats``+ times, keeping the first occurrence."""
    keys = [w.word.strip().lower() for w in words]
    keep = [True] * len(words)
    for n in range(1, 6):
        i = 0
        while i + n * min_repeats <= len(keys):
            gram = keys[i : i + n]
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= min_repeats:
                for j in range(i + n, i + reps * n):
                    keep[j] = False
                i += reps * n
            else:
                i += 1
    return [w for w, k in zip(words, keep, strict=True) if k]
