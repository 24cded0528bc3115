"""Transcription and diarization on calls whose truth is known by construction (espeak-ng).

Real models only (bundled multilingual base, numpy GE2E encoder, silero VAD); no mocks.
Bounds are loose enough for robotic 8 kHz speech, tight enough to fail when a stage breaks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from earwitness.config import Settings
from earwitness.models import Segment, Transcript
from earwitness.recordings import ingest_file
from earwitness.runtime import Runtime
from earwitness.transcription import cleanup, metrics
from earwitness.transcription.diarization import EncoderDiarizer
from earwitness.transcription.engine import SpeechEngine
from earwitness.transcription.exports import render
from earwitness.transcription.models import joined_base_dir
from earwitness.transcription.pipeline import CallTranscript, transcribe_audio
from earwitness.transcription.types import Turn
from tests.speech_synth import (
    EN_DIALOGUE,
    ZH_DIALOGUE,
    Call,
    asr_settings,
    build_call,
    match_truth,
    model_cache_dir,
    speak,
)

TIMING_TOLERANCE_S = 0.3


@pytest.fixture(scope="module")
def model_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return asr_settings(tmp_path_factory.mktemp("asr"))


@pytest.fixture(scope="module")
def engine(model_settings: Settings) -> SpeechEngine:
    return SpeechEngine(model_settings)


@pytest.fixture(scope="module")
def en_call(tmp_path_factory: pytest.TempPathFactory) -> Call:
    return build_call(tmp_path_factory.mktemp("en"), EN_DIALOGUE, noise_dbfs=-50)


@pytest.fixture(scope="module")
def zh_call(tmp_path_factory: pytest.TempPathFactory) -> Call:
    return build_call(tmp_path_factory.mktemp("zh"), ZH_DIALOGUE, language="zh", noise_dbfs=-50)


@pytest.fixture(scope="module")
def en_stereo(en_call: Call, engine: SpeechEngine) -> CallTranscript:
    return transcribe_audio(en_call.stereo, engine)


@pytest.fixture(scope="module")
def zh_stereo(zh_call: Call, engine: SpeechEngine) -> CallTranscript:
    return transcribe_audio(zh_call.stereo, engine)


def _text(call_or_result: Call | CallTranscript, role: str) -> str:
    if isinstance(call_or_result, Call):
        return " ".join(t.text for t in call_or_result.truth if t.role == role)
    return " ".join(s.text for s in call_or_result.segments if s.role == role)


def _check_timing(call: Call, result: CallTranscript) -> None:
    for role in ("agent", "customer"):
        for truth, seg in match_truth(call.truth, result.segments, role):
            assert seg is not None, f"no segment for {truth.text!r}"
            assert abs(seg.start - truth.start_s) <= TIMING_TOLERANCE_S, (truth, seg)  # type: ignore[attr-defined]
            assert abs(seg.end - truth.end_s) <= TIMING_TOLERANCE_S, (truth, seg)  # type: ignore[attr-defined]


def test_english_stereo_roles_text_and_timing(en_call: Call, en_stereo: CallTranscript) -> None:
    assert en_stereo.diarization == "channel" and en_stereo.roles.rule == "channel-map"
    assert en_stereo.languages == {"0": "en", "1": "en"}
    assert {s.role for s in en_stereo.segments} == {"agent", "customer"}
    assert all(s.channel == (1 if s.role == "agent" else 0) for s in en_stereo.segments)
    for role in ("agent", "customer"):
        assert metrics.wer(_text(en_call, role), _text(en_stereo, role)) <= 0.35
    assert "thank you for calling" in _text(en_stereo, "agent").lower()
    assert "compensation" in _text(en_stereo, "customer").lower()
    # the overlap (customer starts while the agent still speaks) is kept on both sides
    agent = [s for s in en_stereo.segments if s.role == "agent"]
    customer = [s for s in en_stereo.segments if s.role == "customer"]
    assert any(c.start < a.end and a.start < c.end for a in agent for c in customer)
    _check_timing(en_call, en_stereo)
    for seg in en_stereo.segments:
        assert seg.words and all(seg.start - 1e-6 <= w.start <= w.end <= seg.end + 1e-6
                                 for w in seg.words)  # fmt: skip


def test_mandarin_stereo_simplified_and_timed(zh_call: Call, zh_stereo: CallTranscript) -> None:
    assert zh_stereo.languages == {"0": "zh", "1": "zh"}
    text = "".join(s.text for s in zh_stereo.segments)
    assert cleanup.to_simplified(text) == text
    assert not set(text) & set("這裡請問們會號車麼為")  # traditional forms the model emits
    assert "您好" in _text(zh_stereo, "agent") and "抱歉" in _text(zh_stereo, "agent")
    for role in ("agent", "customer"):
        assert metrics.cer(_text(zh_call, role), _text(zh_stereo, role)) <= 0.6
    _check_timing(zh_call, zh_stereo)


def test_mono_mix_is_diarized_with_roles(en_call: Call, engine: SpeechEngine) -> None:
    result = transcribe_audio(en_call.mono, engine)
    assert result.diarization == "encoder" and result.roles.rule == "greeting"
    ref = [Turn(t.start_s, t.end_s, t.role) for t in en_call.truth]
    hyp = [Turn(s.start, s.end, s.role) for s in result.segments]
    assert metrics.der(ref, hyp) <= 0.2
    assert "thank you for calling" in _text(result, "agent").lower()
    assert "rescue truck" in _text(result, "customer").lower()


def test_dual_mono_stereo_is_treated_as_one_mix(
    en_call: Call, engine: SpeechEngine, tmp_path: Path
) -> None:
    mono, rate = sf.read(en_call.mono, dtype="float32")
    dual = tmp_path / "dual.wav"
    sf.write(dual, np.stack([mono, mono], axis=1), rate, subtype="PCM_16")
    result = transcribe_audio(dual, engine)
    assert result.params["dual_mono"] is True
    assert result.diarization == "encoder"  # not "channel": one mix, two voices found in it
    assert {s.role for s in result.segments} == {"agent", "customer"}


def test_silent_and_noise_channels_produce_no_text(engine: SpeechEngine, tmp_path: Path) -> None:
    call = build_call(tmp_path, EN_DIALOGUE[:3], noise_dbfs=-40, silent_role="customer")
    result = transcribe_audio(call.stereo, engine)
    assert [s for s in result.segments if s.channel == 0] == []
    assert any(s.role == "agent" for s in result.segments)


def test_enrolled_agent_voice_decides_roles(en_call: Call, engine: SpeechEngine) -> None:
    sample = speak("Good morning, I will check your order right away.", "en-us+f3", "en")
    resampled = np.interp(np.arange(0, len(sample), 0.5), np.arange(len(sample)), sample)
    voice = EncoderDiarizer().embed(resampled.astype(np.float32))
    from earwitness.transcription.diarization import make_diarizer

    result = transcribe_audio(en_call.mono, engine, diarizer=make_diarizer(), agent_voices=[voice])
    assert result.roles.rule == "enrolled-voice"
    assert "thank you for calling" in _text(result, "agent").lower()


def test_exports_render_every_format(en_stereo: CallTranscript) -> None:
    segs = en_stereo.segments
    srt = render("srt", segs)
    assert srt.startswith("1\n00:00:00,") and "--> " in srt and "[agent]" in srt
    vtt = render("vtt", segs)
    assert vtt.startswith("WEBVTT\n") and "<v customer>" in vtt
    rttm = render("rttm", segs, file_id="call 1").splitlines()
    assert len(rttm) == len(segs) and rttm[0].startswith("SPEAKER call_1 1 ")
    assert render("txt", segs).count("\n") == len(segs)
    assert '"words"' in render("json", segs)


def test_hallucination_filters() -> None:
    assert cleanup.is_credit_line("字幕由 Amara.org 社群提供")
    assert cleanup.is_credit_line("Thanks for watching!")
    assert not cleanup.is_credit_line("我的救援车晚到了")
    # real people repeat themselves; only a long loop is Whisper's (see test_transcript_fidelity)
    assert cleanup.collapse_repeats("谢谢谢谢谢谢谢谢") == "谢谢谢谢谢谢谢谢"
    assert cleanup.collapse_repeats("okay " * 12 + "fine") == "okay fine"
    assert cleanup.is_loop("the the the the the the the the the")
    assert cleanup.is_no_speech(0.9, -1.5) and not cleanup.is_no_speech(0.9, -0.2)


def test_metrics_known_values() -> None:
    assert metrics.wer("a b c d", "a x c") == 0.5
    assert metrics.cer("你好世界", "你好视界") == 0.25
    ref = [Turn(0, 10, "A"), Turn(10, 20, "B")]
    assert metrics.der(ref, [Turn(0, 10, "x"), Turn(10, 20, "y")]) == pytest.approx(0.0)
    assert metrics.der(ref, [Turn(0, 20, "x")]) == pytest.approx(0.5, abs=0.01)
    assert metrics.der(ref, [Turn(0, 10, "x")]) == pytest.approx(0.5, abs=0.01)


def test_transcribe_job_is_idempotent_and_reports_progress(runtime: Runtime, en_call: Call) -> None:
    base = joined_base_dir(model_cache_dir())
    runtime.settings.whisper_model_multilingual = str(base)
    with runtime.db.session() as session:
        rid = ingest_file(session, runtime.blobs, en_call.stereo).id
    runtime.start_worker()
    first = runtime.submit("transcribe", {"recording_id": rid, "vocabulary": ["expressway"]})
    second = runtime.submit("transcribe", {"recording_id": rid, "vocabulary": ["expressway"]})
    deadline = time.monotonic() + 240
    from earwitness.models import Job

    while time.monotonic() < deadline:
        with runtime.db.session() as session:
            states = [session.get(Job, j).state for j in (first, second)]  # type: ignore[union-attr]
        if all(s in ("succeeded", "failed") for s in states):
            break
        time.sleep(0.2)
    with runtime.db.session() as session:
        jobs = [session.get(Job, j) for j in (first, second)]
        assert [j.state for j in jobs if j] == ["succeeded", "succeeded"], [
            j.error for j in jobs if j
        ]
        assert all(j.progress == 100.0 for j in jobs if j)
        assert session.scalar(select(func.count()).select_from(Transcript)) == 1
        transcript = session.scalar(select(Transcript))
        assert transcript is not None and transcript.params["options"]["vocabulary"] == [
            "expressway"
        ]
        assert transcript.params["role_rule"] == "channel-map"
        n = session.scalar(select(func.count()).select_from(Segment))
        assert n is not None and n >= len(en_call.truth)


def test_real_pbx_recording_customer_then_agent(engine: SpeechEngine, tmp_path: Path) -> None:
    """The real MixMonitor ``D`` file: customer speaks 3–11 s (ch0), agent 12–19 s (ch1),
    music-on-hold tone 0–2 s on ch1 must produce no text."""
    from earwitness.recordings.wavfix import repair_wav_channels

    raw = Path(__file__).parent / "data" / "ami" / "recordings" / "conversation.wav"
    fixed = tmp_path / "conversation.wav"
    fixed.write_bytes(repair_wav_channels(raw, expected_channels=2))
    result = transcribe_audio(fixed, engine)
    customer = [s for s in result.segments if s.role == "customer"]
    agent = [s for s in result.segments if s.role == "agent"]
    assert customer and agent
    assert all(s.channel == 0 and s.start >= 2.7 and s.end <= 11.4 for s in customer)
    assert all(s.channel == 1 and s.start >= 11.7 and s.end <= 19.3 for s in agent)
    assert "complain" in _text(result, "customer").lower()
    assert "call you back" in _text(result, "agent").lower()
