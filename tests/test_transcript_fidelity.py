"""Transcript fidelity on REAL speech (tests/data/speech: AISHELL-1, FLEURS, LibriSpeech, LJ).

A transcript is evidence: it may lose no utterance, add no word, and must come out the same
for the same file. These tests run the real bundled model on real human speech (not espeak);
the truth is the corpora's own (calls.json, built by the speech set's script).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from earwitness.config import Settings, load_settings
from earwitness.recordings.probe import decode_channels
from earwitness.transcription import cleanup
from earwitness.transcription.confidence import LOW_MARK, is_low, low_spans, marked_text
from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
from earwitness.transcription.exports import render
from earwitness.transcription.models import (
    BUNDLED_SHA256,
    ModelIntegrityError,
    ModelSpec,
    model_files,
    multilingual_model,
)
from earwitness.transcription.pipeline import CallTranscript, transcribe_audio
from earwitness.transcription.timing import (
    Chunk,
    TimingOptions,
    place_words,
    plan_chunks,
    snap_edges,
    uncovered_regions,
)
from earwitness.transcription.types import INAUDIBLE, SegmentOut, SpeechRegion, WordOut
from tests.speech_synth import asr_settings

SPEECH = Path(__file__).parent / "data" / "speech"
ONSET_TOLERANCE_S = 0.5


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return asr_settings(tmp_path_factory.mktemp("fidelity"))


@pytest.fixture(scope="module")
def engine(settings: Settings) -> SpeechEngine:
    return SpeechEngine(settings)


@pytest.fixture(scope="module")
def mix_call(engine: SpeechEngine) -> CallTranscript:
    return transcribe_audio(SPEECH / "calls" / "mix_call_01.wav", engine)


def _truth(name: str) -> dict:
    calls = json.loads((SPEECH / "calls.json").read_text(encoding="utf-8"))
    return next(c for c in calls if c["file"] == f"calls/{name}")


@pytest.mark.parametrize("name", ["mix_call_01.wav", "zh_call_02.wav"])
def test_every_real_utterance_of_a_two_channel_call_is_found(
    name: str, engine: SpeechEngine, mix_call: CallTranscript
) -> None:
    """The utterances plain whole-channel decoding lost (onsets 16.2 s and 34.1 s) are there."""
    result = (
        mix_call if name == "mix_call_01.wav" else transcribe_audio(SPEECH / "calls" / name, engine)
    )
    truth = _truth(name)
    for channel in truth["channels"]:
        mine = [s for s in result.segments if s.channel == channel["channel"]]
        for utterance in channel["segments"]:
            onset = utterance["onset_s"]
            hits = [
                s
                for s in mine
                if abs(s.start - onset) <= ONSET_TOLERANCE_S and s.end > onset and not s.inaudible
            ]
            assert hits, (
                f"{name} ch{channel['channel']}: utterance at {onset} s "
                f"({utterance['text'][:20]}) missing; got {[(s.start, s.text) for s in mine]}"
            )
        # and nothing placed where nobody on this channel spoke
        for seg in mine:
            assert any(
                seg.end > u["onset_s"] - 0.3 and seg.start < u["end_s"] + 0.3
                for u in channel["segments"]
            ), f"{name}: segment {seg.start:.2f}-{seg.end:.2f} {seg.text!r} lies in silence"


def test_segment_times_keep_the_length_of_the_speech(mix_call: CallTranscript) -> None:
    """Retiming once squeezed a 1.7 s utterance into 80 ms: every segment keeps its words' span."""
    for seg in mix_call.segments:
        assert seg.end > seg.start
        if seg.words:
            assert seg.start <= seg.words[0].start + 0.5
            assert seg.end >= seg.words[-1].end - 0.5
            assert seg.end - seg.start >= 0.5 * (seg.words[-1].end - seg.words[0].start)


def test_the_same_file_gives_the_same_transcript(engine: SpeechEngine) -> None:
    path = SPEECH / "clips" / "zh_aishell1_S0765_W0130.wav"
    first = render("json", transcribe_audio(path, engine).segments)
    second = render("json", transcribe_audio(path, engine).segments)
    assert first == second
    assert json.loads(first)["segments"], "the clip is speech: something must be transcribed"


def test_decoding_parameters_are_recorded_and_deterministic(mix_call: CallTranscript) -> None:
    options = mix_call.params["options"]
    assert options["decoding"]["temperature"] == [0.0]
    assert options["decoding"]["initial_prompt"] is None
    assert options["timing"]["max_chunk_s"] <= 30
    assert mix_call.params["software"]["faster-whisper"] != "not installed"


LEAK_TERMS = ("WO-20261126-0007", "京A12345", "Capital Airport Expressway")


def test_a_vocabulary_never_appears_in_audio_that_does_not_carry_it(settings: Settings) -> None:
    """The old prompt copied case facts into a short call's transcript; hotwords must not."""
    engine = SpeechEngine(settings, TranscribeOptions(vocabulary=LEAK_TERMS))
    for path in (
        SPEECH / "clips" / "zh_aishell1_S0765_W0130.wav",
        SPEECH / "clips" / "en_librispeech_1089-134686-0001.wav",
    ):
        result = transcribe_audio(path, engine)
        text = " ".join(s.text for s in result.segments)
        assert text.strip(), f"{path.name}: nothing transcribed"
        folded = re.sub(r"[\s,.，。-]", "", text).lower()
        for term in LEAK_TERMS:
            for piece in (term, *re.split(r"[\s-]", term)):
                key = re.sub(r"[\s-]", "", piece).lower()
                if len(key) >= 4:
                    assert key not in folded, f"{path.name}: {piece!r} leaked into {text!r}"


def test_low_confidence_words_are_marked_in_every_export(mix_call: CallTranscript) -> None:
    words = [w for s in mix_call.segments for w in s.words]
    low = [w for w in words if is_low(w)]
    assert low, "real accented 8 kHz speech always has some uncertain words"
    assert len(low) < len(words)
    body = json.loads(render("json", mix_call.segments))
    flagged = [w for s in body["segments"] for w in s["words"] if w["low_confidence"]]
    assert len(flagged) == len(low)
    assert sum(len(s["low_confidence_spans"]) for s in body["segments"]) >= 1
    txt, srt, vtt = (render(f, mix_call.segments) for f in ("txt", "srt", "vtt"))
    for seg in mix_call.segments:
        for span in low_spans(seg):
            marked = f"{LOW_MARK[0]}{span.text}{LOW_MARK[1]}"
            assert marked in txt and marked in srt and marked in vtt


def test_marked_text_wraps_runs_of_low_words_only() -> None:
    seg = SegmentOut(
        0.0,
        2.0,
        "he hoped there would be stew",
        words=[
            WordOut(0.0, 0.2, " he", 0.9),
            WordOut(0.2, 0.5, " hoped", 0.3),
            WordOut(0.5, 0.7, " there", 0.2),
            WordOut(0.7, 0.9, " would", 0.95),
            WordOut(0.9, 1.0, " be", 0.8),
            WordOut(1.0, 1.4, " stew", 0.1),
        ],
    )
    assert marked_text(seg) == "he [?hoped there?] would be [?stew?]"
    spans = low_spans(seg)
    assert [(s.start, s.end, s.text) for s in spans] == [
        (0.2, 0.7, "hoped there"),
        (1.0, 1.4, "stew"),
    ]


def test_real_speech_passes_every_hallucination_guard(mix_call: CallTranscript) -> None:
    """A guard that drops real words is worse than none: on real speech none may fire."""
    assert mix_call.params["dropped"] == []
    assert not any(s.inaudible for s in mix_call.segments)


def test_loops_are_cut_but_real_repetitions_kept() -> None:
    assert cleanup.collapse_repeats("谢谢谢谢") == "谢谢谢谢"
    assert cleanup.collapse_repeats("对对对,好的") == "对对对,好的"
    assert cleanup.collapse_repeats("no no no no, not that") == "no no no no, not that"
    assert cleanup.collapse_repeats("谢谢" * 20) == "谢"
    assert cleanup.collapse_repeats("we will " * 10 + "call") == "we will call"
    words = [WordOut(i * 0.1, i * 0.1 + 0.1, " okay") for i in range(15)]
    assert len(cleanup.collapse_word_loops(words)) == 1


def test_a_transcript_names_the_hashes_of_its_model_files(mix_call: CallTranscript) -> None:
    body = json.loads(render("json", mix_call.segments, meta={"params": mix_call.params}))
    files = body["params"]["model_files"]
    assert list(files) == [mix_call.model]
    ((label, hashes),) = files.items()
    assert set(hashes) >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes.values())


def test_a_corrupted_bundled_model_is_refused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    spec = multilingual_model(settings)  # joins the pinned package parts into tmp_path
    assert model_files(spec)["model.bin"] == BUNDLED_SHA256["base"]["model.bin"]
    target = Path(spec.source) / "model.bin"
    with target.open("r+b") as stream:
        stream.seek(1 << 20)
        byte = stream.read(1)
        stream.seek(1 << 20)
        stream.write(bytes([byte[0] ^ 0x01]))
    fresh = ModelSpec(spec.label, spec.source, spec.multilingual, spec.bundled)
    _forget(fresh)
    with pytest.raises(ModelIntegrityError, match=r"model\.bin \(changed\)"):
        model_files(fresh)
    engine = SpeechEngine(settings)
    with pytest.raises(ModelIntegrityError):
        transcribe_audio(SPEECH / "clips" / "en_librispeech_1089-134686-0001.wav", engine)


def _forget(spec: ModelSpec) -> None:
    """The per-process hash cache must not hide a file changed on disk in this test."""
    from earwitness.transcription import models

    models._HASHES.pop(spec.source, None)


# --- pure timing functions ------------------------------------------------------------


def test_chunks_join_speech_up_to_thirty_seconds_and_keep_every_region() -> None:
    opts = TimingOptions()
    regions = [SpeechRegion(float(t), t + 8.0) for t in range(0, 90, 9)]  # 10 × 8 s of speech
    chunks = plan_chunks(regions, opts)
    assert all(c.speech_s <= opts.max_chunk_s for c in chunks)
    assert [r for c in chunks for r in c.regions] == regions
    assert [len(c.regions) for c in chunks] == [3, 3, 3, 1]
    far = plan_chunks([SpeechRegion(0, 2), SpeechRegion(100, 102)], opts)
    assert len(far) == 1 and far[0].speech_s == 4, "silence is cut out, not decoded"
    assert far[0].audio(np.ones(16000 * 110, np.float32)).size == 4 * 16000


def test_a_voiced_region_without_words_is_reported() -> None:
    voice = [SpeechRegion(1.0, 3.0), SpeechRegion(5.0, 5.3), SpeechRegion(8.0, 12.0)]
    words = [WordOut(1.2, 1.6, "a"), WordOut(2.0, 2.8, "b")]
    missing = uncovered_regions(voice, words, TimingOptions())
    assert missing == [SpeechRegion(8.0, 12.0)]  # 5.0-5.3 is shorter than min_voiced_s


def test_words_map_back_to_the_region_they_were_said_in() -> None:
    chunk = Chunk((SpeechRegion(10.0, 12.0), SpeechRegion(20.0, 23.0)))
    placed = place_words(
        [
            WordOut(0.1, 0.9, "a"),  # first region
            WordOut(1.7, 2.4, "b"),  # straddles the cut, mostly in the second region
            WordOut(2.5, 3.0, "c"),
            WordOut(4.5, 5.5, "d"),  # past the end: clamped
        ],
        chunk,
    )
    assert [(round(w.start, 2), round(w.end, 2)) for w in placed] == [
        (10.1, 10.9),
        (20.0, 20.4),
        (20.5, 21.0),
        (22.5, 23.0),
    ]
    assert all(b.start >= a.end for a, b in zip(placed, placed[1:], strict=False))


def test_edges_snap_onto_the_voice_but_not_over_a_neighbour() -> None:
    voice = [SpeechRegion(1.0, 4.0)]
    first = SegmentOut(1.3, 2.0, "a", words=[WordOut(1.3, 2.0, "a")])
    second = SegmentOut(2.1, 3.8, "b", words=[WordOut(2.1, 3.8, "b")])
    out = snap_edges([second, first], voice, 0.5)
    assert (out[0].start, out[0].end) == (1.0, 2.0), "the edge between the two stays"
    assert out[1].start == 2.1 and out[1].end == 4.0
    far = snap_edges([SegmentOut(2.0, 3.0, "c", words=[WordOut(2.0, 3.0, "c")])], voice, 0.5)
    assert far[0].start == 2.0, "an onset a second away is another utterance's, not this one's"
    assert far[0].end == 3.0


def test_inaudible_segments_are_exported_with_their_span() -> None:
    seg = SegmentOut(3.0, 4.5, INAUDIBLE, channel=0)
    assert seg.inaudible
    body = json.loads(render("json", [seg]))
    assert body["segments"][0]["inaudible"] is True
    assert "[inaudible]" in render("txt", [seg])


def test_voice_regions_start_at_the_speech_energy(settings: Settings) -> None:
    """Silero decides late; the voice region must begin where the word's energy does."""
    from earwitness.transcription.timing import speech_regions

    audio = decode_channels(SPEECH / "calls" / "mix_call_01.wav")[0]
    truth = _truth("mix_call_01.wav")["channels"][0]["segments"]
    regions = speech_regions(audio)
    for utterance in truth:
        starts = [r.start for r in regions if r.end > utterance["onset_s"]]
        assert starts and abs(starts[0] - utterance["onset_s"]) <= ONSET_TOLERANCE_S
    assert np.all(np.diff([r.start for r in regions]) > 0)
