"""Speech recognition of one audio stream (a channel or a mono mix) with faster-whisper.

A transcript is evidence, so the engine is built to lose nothing, add nothing and give
the same output for the same input:

- *speech, not channels*: the stream is cut at VAD boundaries into chunks of at most
  30 s (:mod:`timing`) and every chunk is decoded on its own; a voice region that comes
  back without words is decoded again alone, and if it still yields nothing it becomes
  an explicit ``[inaudible]`` segment with its time span, never silence;
- *no words from outside the audio*: no free-text prompt is ever built (case facts copied
  into transcripts when they were); an explicit vocabulary is passed as faster-whisper
  ``hotwords`` and a term it produces is kept only when the model was sure of its words,
  otherwise the chunk is decoded again without hotwords;
- *deterministic*: one temperature (0.0, beam search), no sampling fallback unless the
  options ask for it; every decoding parameter is recorded with the transcript.

Speed: Whisper's encoder always reads a 30 s window, however short the speech, so the
encoder passes are most of the cost on CPU. The language of a stream is detected on the
encoder output of its first chunk and that same output is decoded (:class:`_EncoderReuse`)
instead of encoding 30 s of speech once more just to name the language: one encoder pass
less per channel: half the encoder passes of a short stereo call, ~6 % of a 2–3 minute one,
with the same output (benchmarks/README.md). A stereo call's two channels are decoded at
the same time (:meth:`SpeechEngine.transcribe_streams`) on one model instance with two
CTranslate2 workers of one core each: one beam search leaves the second core mostly idle
even with two threads (its work is largely serial, and spinning OpenMP threads cost CPU),
two channels at once fill both; same output, bit for bit. Batching chunks (faster-whisper's
``BatchedInferencePipeline``, ``TranscribeOptions.batch_size``) is opt-in: on 2 CPU cores it
was 1.2× faster on real calls but changed words in 3 of 4 of them (``bench_transcription``).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from earwitness.config import Settings
from earwitness.errors import ServiceUnavailable
from earwitness.transcription import cleanup
from earwitness.transcription.confidence import LOW_WORD_PROBABILITY
from earwitness.transcription.models import (
    ModelSpec,
    english_model,
    model_files,
    multilingual_model,
)
from earwitness.transcription.timing import (
    SAMPLE_RATE,
    Chunk,
    TimingOptions,
    place_words,
    plan_chunks,
    snap_edges,
    split_segment,
    stream_regions,
    uncovered_regions,
)
from earwitness.transcription.types import (
    INAUDIBLE,
    ChannelResult,
    SegmentOut,
    SpeechRegion,
    WordOut,
)

ProgressFn = Callable[[float], None]
#: progress of several streams: (index of the stream, fraction of it done)
StreamsProgressFn = Callable[[int, float], None]


@dataclass(frozen=True)
class TranscribeOptions:
    """Everything that changes a transcript; stored with it (``Transcript.params``)."""

    language: str | None = None  # force one language; None = detect per channel
    languages: tuple[str, ...] = ("zh", "en")  # detection picks among these (empty = any)
    #: domain terms passed as hotwords; never a free-text prompt (see module docstring)
    vocabulary: tuple[str, ...] = ()
    #: a vocabulary term is kept only when all its words reach this probability
    vocabulary_min_probability: float = 0.5
    beam_size: int = 5
    #: (0.0,) = deterministic beam search; more values = Whisper's sampling fallback
    temperatures: tuple[float, ...] = (0.0,)
    # English channels to the English-only model (tiny.en by default). Off by default: on
    # 8 kHz calls the multilingual base had half tiny.en's WER at about the same speed
    # (benchmarks/README.md); set a large English model here for production.
    use_english_model: bool = False
    #: what the language is detected on: "first_chunk" (the first decode chunk, whose
    #: encoder output is then decoded, not encoded again) or "speech" (the first 30 s of
    #: the stream's joined speech, encoded once more just for detection: the old path)
    language_window: str = "first_chunk"
    #: > 1: decode a stream's chunks in batches of this size with faster-whisper's
    #: ``BatchedInferencePipeline`` (one encoder/decoder call per batch). Off by default:
    #: 1.2× faster on 2 CPU cores, but it changed words in 3 of 4 real calls (CER/WER
    #: 0.290 vs 0.285, benchmarks/README.md), and a transcript is evidence.
    #: Never used with a vocabulary (its per-chunk retry needs the unbatched path).
    batch_size: int = 1
    timing: TimingOptions = field(default_factory=TimingOptions)

    def as_params(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "languages": list(self.languages),
            "vocabulary": list(self.vocabulary),
            "vocabulary_min_probability": self.vocabulary_min_probability,
            "use_english_model": self.use_english_model,
            "language_window": self.language_window,
            "batch_size": self.batch_size,
            "decoding": self.decoding(),
            "timing": self.timing.record(),
            "low_word_probability": LOW_WORD_PROBABILITY,
        }

    def decoding(self) -> dict[str, Any]:
        """The faster-whisper ``transcribe`` arguments used for every chunk."""
        return {
            "task": "transcribe",
            "beam_size": self.beam_size,
            "temperature": list(self.temperatures),
            "condition_on_previous_text": False,
            "word_timestamps": True,
            "vad_filter": False,
            "initial_prompt": None,
            "compression_ratio_threshold": 2.4,
            "log_prob_threshold": -1.0,
            "no_speech_threshold": 0.6,
        }


_MODELS: dict[tuple[str, str, str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_whisper(spec: ModelSpec, device: str, compute_type: str, workers: int = 1) -> Any:
    """A cached faster-whisper model; ServiceUnavailable when it cannot be loaded.

    The model's files are hashed (and checked, when bundled) before the first load.
    ``workers`` > 1: one instance for that many concurrent decodes (CTranslate2 workers
    sharing the weights, each with its share of the cores, at least one). It is cached
    apart from the single-stream instance, whose one decode keeps all of CTranslate2's
    default threads (the mono path, one stream, would be slower on one core).
    """
    key = (spec.source, device, compute_type, workers)
    model_files(spec)
    with _MODELS_LOCK:
        if key not in _MODELS:
            from faster_whisper import WhisperModel

            pool: dict[str, int] = {}
            if workers > 1:
                pool = {"num_workers": workers, "cpu_threads": max(1, min(4, _cores() // workers))}
            try:
                model = WhisperModel(
                    spec.source,
                    device=device,
                    compute_type=compute_type,
                    local_files_only=True,
                    **pool,
                )
                _EncoderReuse.install(model)
                _MODELS[key] = model
            except (OSError, RuntimeError, ValueError) as exc:
                raise ServiceUnavailable(
                    f"cannot load Whisper model {spec.label!r}: {exc}"
                ) from None
        return _MODELS[key]


class _EncoderReuse:
    """Hands a window's encoder output, computed once, to ``WhisperModel.transcribe``.

    faster-whisper detects a language on one encoder pass and then encodes the same
    window again to decode it; ``transcribe`` takes no encoder output. This wraps the
    model's ``encode``: while a window is *pinned* (per thread, so worker threads can
    share one model), encoding exactly those features returns the pinned output. The
    features are compared in full, so any other window is encoded as before and the
    decoded text cannot differ from a fresh encoding.
    """

    def __init__(self, encode: Callable[[np.ndarray], Any]) -> None:
        self._encode = encode
        self._local = threading.local()

    @classmethod
    def install(cls, model: Any) -> None:
        model.encode = cls(model.encode)

    @staticmethod
    def of(model: Any) -> _EncoderReuse | None:
        return model.encode if isinstance(model.encode, _EncoderReuse) else None

    def __call__(self, features: np.ndarray) -> Any:
        pinned = getattr(self._local, "pinned", None)
        if pinned is not None and np.array_equal(pinned[0], features):
            return pinned[1]
        return self._encode(features)

    def pin(self, features: np.ndarray, output: Any) -> None:
        self._local.pinned = (features, output)

    def unpin(self) -> None:
        self._local.pinned = None


def first_window(model: Any, audio: np.ndarray) -> np.ndarray:
    """The Mel features ``WhisperModel.transcribe`` encodes first for ``audio`` (≤ 30 s).

    Same steps as faster-whisper 1.x: features of the whole piece, the last frame
    dropped (``content_frames``), padded to the 3000-frame window.
    """
    from faster_whisper.audio import pad_or_trim

    features = model.feature_extractor(audio)
    frames = model.feature_extractor.nb_max_frames
    return np.asarray(pad_or_trim(features[:, : min(frames, features.shape[-1] - 1)]))


class SpeechEngine:
    """Transcribes streams with the models the settings name; one per process is enough."""

    def __init__(self, settings: Settings, options: TranscribeOptions | None = None) -> None:
        self.settings = settings
        self.options = options or TranscribeOptions()
        self._english = english_model(settings)
        self._multi: ModelSpec | None = None
        self._used: dict[str, ModelSpec] = {}

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

    def model_files(self) -> dict[str, dict[str, str]]:
        """SHA-256 of every file of each model this engine has decoded with, by label."""
        return {label: model_files(spec) for label, spec in sorted(self._used.items())}

    def _model(self, spec: ModelSpec, workers: int = 1) -> Any:
        self._used[spec.label] = spec
        return load_whisper(
            spec, self.settings.whisper_device, self.settings.whisper_compute_type, workers
        )

    def detect_language(self, speech: np.ndarray, workers: int = 1) -> tuple[str, float]:
        """Language of (up to 30 s of) speech, restricted to ``options.languages``."""
        if self.options.language:
            return self.options.language, 1.0
        model = self._model(self.multilingual, workers)
        lang, prob, ranked = model.detect_language(speech[: 30 * SAMPLE_RATE])
        return self._allowed(str(lang), float(prob), ranked)

    def _allowed(
        self, lang: str, prob: float, ranked: list[tuple[str, float]]
    ) -> tuple[str, float]:
        allowed = self.options.languages
        if allowed and lang not in allowed:
            best = max((p for p in ranked if p[0] in allowed), key=lambda p: p[1], default=None)
            if best is not None:
                lang, prob = best
        return str(lang), float(prob)

    def _detect_on_chunk(self, piece: np.ndarray, workers: int = 1) -> tuple[str, float, Any]:
        """Language of one chunk from its encoder output, kept to decode it with.

        Returns the features and encoder output as a pair (``None`` when the language
        is forced or the model cannot reuse an encoding).
        """
        model = self._model(self.multilingual, workers)
        if self.options.language or _EncoderReuse.of(model) is None:
            return (*self.detect_language(piece, workers), None)
        features = first_window(model, piece)
        encoded = model.encode(features)
        ranked = [(str(t[2:-2]), float(p)) for t, p in model.model.detect_language(encoded)[0]]
        return (*self._allowed(ranked[0][0], ranked[0][1], ranked), (features, encoded))

    def spec_for(self, language: str) -> ModelSpec:
        if language == "en" and self.options.use_english_model:
            return self._english
        return self.multilingual

    def transcribe_stream(
        self, audio: np.ndarray, *, channel: int | None, progress: ProgressFn | None = None
    ) -> ChannelResult:
        """Transcribe 16 kHz mono float32 audio; times are seconds from its start."""
        return self._transcribe(audio, channel, progress, workers=1)

    def transcribe_streams(
        self,
        streams: Sequence[tuple[np.ndarray, int | None]],
        progress: StreamsProgressFn | None = None,
    ) -> list[ChannelResult]:
        """Several independent streams (a stereo call's channels), results in their order.

        With ``settings.whisper_num_workers`` > 1 the streams are decoded at the same time,
        each in its own thread, on one model instance with that many CTranslate2 workers:
        one beam search leaves a second core mostly idle (much of it is serial), two
        streams at once fill it. Each stream is decoded exactly as by
        :meth:`transcribe_stream` (same model, same inputs; only the cores differ), so the
        result is the same, word for word and time for time. ``progress`` is called in
        the calling thread only (a job's progress writer need not be thread-safe).
        """
        workers = min(self.settings.whisper_num_workers, len(streams))
        if workers <= 1:
            return [
                self.transcribe_stream(
                    audio,
                    channel=channel,
                    progress=None if progress is None else _stream_progress(progress, i),
                )
                for i, (audio, channel) in enumerate(streams)
            ]
        _ = self.multilingual  # resolved once here, not raced for in the threads
        events: queue.SimpleQueue[tuple[int, float | None]] = queue.SimpleQueue()

        def one(i: int, audio: np.ndarray, channel: int | None) -> ChannelResult:
            try:
                return self._transcribe(
                    audio, channel, lambda frac: events.put((i, frac)), workers=workers
                )
            finally:
                events.put((i, None))  # done (or failed: its future holds the error)

        with ThreadPoolExecutor(workers, thread_name_prefix="ew-asr") as pool:
            futures = [pool.submit(one, i, a, ch) for i, (a, ch) in enumerate(streams)]
            running = len(futures)
            while running:
                index, frac = events.get()
                if frac is None:
                    running -= 1
                elif progress is not None:
                    progress(index, frac)
        return [f.result() for f in futures]

    def _transcribe(
        self, audio: np.ndarray, channel: int | None, progress: ProgressFn | None, workers: int
    ) -> ChannelResult:
        timing = self.options.timing
        voice, decode_regions = stream_regions(audio, timing)
        if not voice:
            return ChannelResult(channel, None, 0.0, "", [], [])
        chunks = plan_chunks(decode_regions, timing)
        encoded = None
        if self.options.language_window == "speech":
            speech = np.concatenate([c.audio(audio) for c in chunks])
            language, probability = self.detect_language(speech, workers)
        else:
            language, probability, encoded = self._detect_on_chunk(chunks[0].audio(audio), workers)
        spec = self.spec_for(language)
        model = self._model(spec, workers)
        reuse = _EncoderReuse.of(model) if spec == self.multilingual else None
        decoder = _ChunkDecoder(model, spec, self.options, language, channel)
        segments: list[SegmentOut] = []
        batched = self.options.batch_size > 1 and not self.options.vocabulary
        for i, chunk in enumerate([] if batched else chunks):
            if i == 0 and encoded is not None and reuse is not None:
                reuse.pin(*encoded)
            try:
                segments += decoder.decode(audio, chunk, voice)
            finally:
                if reuse is not None:
                    reuse.unpin()
            if progress is not None:
                progress((i + 1) / len(chunks))
        if batched:
            segments = decoder.decode_batched(audio, chunks, voice, self.options.batch_size)
            if progress is not None:
                progress(1.0)
        # Second chance: a voiced region with no word is decoded again on its own.
        words = [w for s in segments for w in s.words]
        for region in uncovered_regions(voice, words, timing):
            pad = timing.decode_pad_ms / 1000
            alone = Chunk((SpeechRegion(max(0.0, region.start - pad), region.end + pad),))
            found = decoder.decode(audio, alone, voice)
            if any(s.words for s in found):
                segments += found
            else:
                segments.append(_inaudible(region, channel, language))
                decoder.dropped.append(f"inaudible: {region.start:.2f}-{region.end:.2f} s")
        segments = snap_edges(segments, voice, timing.snap_s)
        return ChannelResult(
            channel, language, probability, spec.label, segments, voice, decoder.dropped
        )


def _stream_progress(progress: StreamsProgressFn, index: int) -> ProgressFn:
    return lambda frac: progress(index, frac)


class _ChunkDecoder:
    """Decodes one chunk at a time with fixed language and decoding parameters."""

    def __init__(
        self,
        model: Any,
        spec: ModelSpec,
        options: TranscribeOptions,
        language: str,
        channel: int | None,
    ) -> None:
        self.model, self.spec, self.options = model, spec, options
        self.language, self.channel = language, channel
        self.dropped: list[str] = []

    def _run(self, audio: np.ndarray, hotwords: str | None) -> list[Any]:
        decoding = self.options.decoding()
        decoding.pop("task")
        temperature = decoding.pop("temperature")
        segments, _info = self.model.transcribe(
            audio,
            language=self.language if self.spec.multilingual else None,
            temperature=temperature[0] if len(temperature) == 1 else temperature,
            hotwords=hotwords,
            **decoding,
        )
        return list(segments)

    def decode(
        self, audio: np.ndarray, chunk: Chunk, voice: list[SpeechRegion]
    ) -> list[SegmentOut]:
        piece = chunk.audio(audio)
        vocabulary = self.options.vocabulary
        raw = self._run(piece, " ".join(vocabulary) if vocabulary else None)
        if vocabulary and _unheard_term(raw, vocabulary, self.options.vocabulary_min_probability):
            self.dropped.append(f"vocabulary not heard at {chunk.start:.2f} s: decoded without")
            raw = self._run(piece, None)
        out: list[SegmentOut] = []
        for seg in raw:
            reason = _reject_reason(seg)
            if reason:
                self.dropped.append(f"{reason}: {seg.text.strip()[:80]}")
                continue
            out += split_segment(self._segment(seg, chunk), voice, self.options.timing)
        return out

    def decode_batched(
        self, audio: np.ndarray, chunks: list[Chunk], voice: list[SpeechRegion], batch_size: int
    ) -> list[SegmentOut]:
        """All chunks through ``BatchedInferencePipeline``, ``batch_size`` per encoder call.

        The chunks are laid back to back and handed over as ``clip_timestamps``, so each
        batch item is exactly one chunk; segment and word times come back offset by the
        chunk's place and are moved to chunk time before the usual placement.
        """
        from faster_whisper import BatchedInferencePipeline

        pieces = [c.audio(audio) for c in chunks]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]) / SAMPLE_RATE
        clips = [
            {"start": float(a), "end": float(b)}
            for a, b in zip(offsets[:-1], offsets[1:], strict=True)
        ]
        by_seek = {int(o * self.model.frames_per_second): i for i, o in enumerate(offsets[:-1])}
        decoding = self.options.decoding()
        for key in ("task", "temperature", "condition_on_previous_text", "vad_filter"):
            decoding.pop(key)
        raw, _info = BatchedInferencePipeline(self.model).transcribe(
            np.concatenate(pieces),
            language=self.language if self.spec.multilingual else None,
            temperature=self.options.temperatures[0],
            clip_timestamps=clips,
            batch_size=batch_size,
            without_timestamps=False,
            **decoding,
        )
        out: list[SegmentOut] = []
        for seg in raw:
            index = by_seek[seg.seek]
            shift = float(offsets[index])
            local = dataclasses.replace(
                seg,
                start=seg.start - shift,
                end=seg.end - shift,
                words=[
                    dataclasses.replace(w, start=w.start - shift, end=w.end - shift)
                    for w in (seg.words or [])
                ],
            )
            reason = _reject_reason(local)
            if reason:
                self.dropped.append(f"{reason}: {local.text.strip()[:80]}")
                continue
            out += split_segment(self._segment(local, chunks[index]), voice, self.options.timing)
        return out

    def _segment(self, seg: Any, chunk: Chunk) -> SegmentOut:
        convert = cleanup.to_simplified if self.language == "zh" else _same
        words = [
            WordOut(float(w.start), float(w.end), convert(w.word), float(w.probability))
            for w in (seg.words or [])
        ]
        words = cleanup.collapse_word_loops(place_words(words, chunk))
        return SegmentOut(
            start=words[0].start if words else chunk.to_stream(seg.start, 0),
            end=words[-1].end if words else chunk.to_stream(seg.end, len(chunk.regions) - 1),
            text=convert(cleanup.collapse_repeats(seg.text.strip())),
            channel=self.channel,
            language=self.language,
            avg_logprob=float(seg.avg_logprob),
            words=words,
        )


def _same(text: str) -> str:
    return text


def _reject_reason(seg: Any) -> str | None:
    text = seg.text.strip()
    if not text:
        return "empty"
    if cleanup.is_credit_line(text):
        return "silence hallucination"
    if cleanup.is_no_speech(seg.no_speech_prob, seg.avg_logprob):
        return "no speech"
    if cleanup.is_loop(text):
        return "repetition loop"
    return None


def _unheard_term(segments: list[Any], vocabulary: tuple[str, ...], min_p: float) -> bool:
    """A vocabulary term in the output whose words the model was not sure of."""
    for seg in segments:
        words = list(seg.words or [])
        joined = "".join(w.word for w in words).replace(" ", "").lower()
        for term in vocabulary:
            key = term.replace(" ", "").lower()
            if not key or key not in joined:
                continue
            # probabilities of the words whose characters make up the term
            pos, spans, cursor = joined.find(key), [], 0
            for w in words:
                token = w.word.replace(" ", "").lower()
                lo, hi = cursor, cursor + len(token)
                cursor = hi
                if hi > pos and lo < pos + len(key):
                    spans.append(float(w.probability))
            if spans and min(spans) < min_p:
                return True
    return False


def _inaudible(region: SpeechRegion, channel: int | None, language: str) -> SegmentOut:
    return SegmentOut(
        start=region.start,
        end=region.end,
        text=INAUDIBLE,
        channel=channel,
        language=language,
        avg_logprob=None,
        words=[],
    )
