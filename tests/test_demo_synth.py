"""The demo data must carry the truth it claims: speech on the right channel at the stated
times, and a GPX track from which the stop, the delay and the drift can be recomputed.

These tests use the real espeak-ng and sox; a missing tool fails them (with the tool's name)
rather than skipping, because every later transcription test depends on this audio.
"""

from __future__ import annotations

import dataclasses
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import gpxpy
import gpxpy.gpx
import numpy as np
import pytest
import soundfile as sf

from earwitness.demo import synth
from earwitness.demo.script import CHANNEL_OF, DEMO_CALLS, EN_ANGRY, ZH_COMPLAINT, get_call
from earwitness.demo.synth import (
    SynthesisToolMissing,
    SynthesizedCall,
    pinyin_tone3,
    spoken_text,
    synthesize_call,
)
from earwitness.demo.track import build_track

# Short versions: the English one keeps the agent's interruption (turn 4).
SHORT_EN = dataclasses.replace(EN_ANGRY, call_id="short-en", turns=EN_ANGRY.turns[:6])
SHORT_ZH = dataclasses.replace(ZH_COMPLAINT, call_id="short-zh", turns=ZH_COMPLAINT.turns[:4])

WINDOW_S = 0.05
SPEECH_DBFS = -35.0  # a spoken turn, averaged over its interval, is far louder than this
SILENCE_DBFS = -50.0  # the line-noise floor is -62 dBFS
GUARD_S = 0.03  # window edge tolerance around a turn boundary


def _dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20 * math.log10(max(rms, 1e-9))


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SynthesizedCall]:
    out = tmp_path_factory.mktemp("demo-audio")
    return {c.language: synthesize_call(c, out) for c in (SHORT_EN, SHORT_ZH)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_recording_is_stereo_telephone_pcm(calls: dict[str, SynthesizedCall], lang: str) -> None:
    info = sf.info(str(calls[lang].path))
    assert (info.channels, info.samplerate, info.subtype) == (2, 8000, "PCM_16")
    assert info.duration == pytest.approx(calls[lang].duration_s, abs=0.001)
    assert calls[lang].path.with_suffix(".truth.json").exists()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_speech_energy_only_on_the_speakers_channel(
    calls: dict[str, SynthesizedCall], lang: str
) -> None:
    result = calls[lang]
    audio, rate = sf.read(str(result.path), dtype="float32")
    script = SHORT_EN if lang == "en" else SHORT_ZH
    assert [t.speaker for t in result.turns] == [t.speaker for t in script.turns]

    for turn in result.turns:
        assert turn.channel == CHANNEL_OF[turn.speaker]
        seg = audio[int(turn.start_s * rate) : int(turn.end_s * rate), turn.channel]
        assert turn.end_s - turn.start_s > 0.5
        assert _dbfs(seg) > SPEECH_DBFS, f"turn {turn.index} is not audible on its channel"

    step = int(WINDOW_S * rate)
    for ch in (0, 1):
        spans = result.intervals(ch)
        quiet = loud_outside = 0
        for start in range(0, audio.shape[0] - step, step):
            t0, t1 = start / rate, (start + step) / rate
            near = any(t0 < e + GUARD_S and s - GUARD_S < t1 for s, e in spans)
            if near:
                continue
            quiet += 1
            if _dbfs(audio[start : start + step, ch]) > SILENCE_DBFS:
                loud_outside += 1
        assert quiet > 20  # the other side spoke for a while: there were windows to check
        assert loud_outside == 0, f"channel {ch} has speech outside its speaker's turns"


def test_angry_call_has_an_agent_interruption(calls: dict[str, SynthesizedCall]) -> None:
    result = calls["en"]
    (a, b), *_ = result.overlaps()
    first, second = result.turns[a], result.turns[b]
    assert (first.speaker, second.speaker) == ("customer", "agent")
    assert first.end_s - second.start_s == pytest.approx(0.8, abs=0.01)
    audio, rate = sf.read(str(result.path), dtype="float32")
    both = audio[int(second.start_s * rate) : int(first.end_s * rate)]
    assert _dbfs(both[:, 0]) > SPEECH_DBFS and _dbfs(both[:, 1]) > SPEECH_DBFS


def test_synthesis_is_deterministic(calls: dict[str, SynthesizedCall], tmp_path: Path) -> None:
    again = synthesize_call(SHORT_ZH, tmp_path)
    assert again.turns == calls["zh"].turns
    assert again.path.read_bytes() == calls["zh"].path.read_bytes()


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = {name: synth.shutil.which(name) for name in ("espeak-ng", "sox")}
    for present, missing in (("espeak-ng", "sox"), ("sox", "espeak-ng")):
        bin_dir = tmp_path / f"only-{present}"
        bin_dir.mkdir()
        os.symlink(str(tools[present]), bin_dir / present)
        monkeypatch.setenv("PATH", str(bin_dir))
        synth._espeak_voices.cache_clear()
        try:
            with pytest.raises(SynthesisToolMissing, match=missing) as info:
                synthesize_call(SHORT_EN, tmp_path / "out")
        finally:
            synth._espeak_voices.cache_clear()
        assert info.value.tool == missing
    assert not (tmp_path / "out").exists()  # failed before writing anything


def test_spoken_forms() -> None:
    assert pinyin_tone3("车牌是京A12345，等了五十分钟") == (
        "che1 pai2 shi4 jing1 A yi1 er4 san1 si4 wu3 , deng3 le5 wu3 shi2 fen1 zhong1"
    )
    assert pinyin_tone3("48小时") == "si4 shi2 ba1 xiao3 shi2"
    assert spoken_text("order WO-20261126-0007, call 138 0013 8000 in 10 minutes", "en") == (
        "order W O, 2 0 2 6 1 1 2 6, 0 0 0 7, call 1 3 8 0 0 1 3 8 0 0 0 in 10 minutes"
    )


def test_demo_set_covers_the_brief() -> None:
    assert {c.language for c in DEMO_CALLS} == {"en", "zh"}
    assert sorted(c.ring_wait_s for c in DEMO_CALLS) == [4.0, 12.0, 21.0]
    assert all(c.queue == "complaints" and c.start_offset_s < 0 for c in DEMO_CALLS)
    angry = [c for c in DEMO_CALLS if c.angry]
    assert angry and "within 10 minutes" in angry[0].text_of("agent")
    assert "sorry" in angry[0].text_of("agent") and "138 0013 8000" in angry[0].text_of("agent")
    assert get_call("demo-zh-complaint").text_of("customer").count("京A12345") == 1


# --------------------------------------------------------------------------- GPX track


def _dist(a: gpxpy.gpx.GPXTrackPoint, b: gpxpy.gpx.GPXTrackPoint) -> float:
    d = a.distance_2d(b)
    assert d is not None
    return d


def _speeds(points: list[gpxpy.gpx.GPXTrackPoint]) -> list[float]:
    """m/s between consecutive fixes, as a track analysis would compute them."""
    out = []
    for a, b in zip(points, points[1:], strict=False):
        assert a.time is not None and b.time is not None
        out.append(_dist(a, b) / (b.time - a.time).total_seconds())
    return out


def test_gpx_truth_can_be_recomputed_from_the_points() -> None:
    demo = build_track()
    truth = demo.truth
    gpx = gpxpy.parse(demo.gpx_xml)
    points = gpx.tracks[0].segments[0].points
    speeds = _speeds(points)
    assert build_track().gpx_xml == demo.gpx_xml  # deterministic

    # Stops: maximal runs of fixes moving under 2 m/s.
    stops: list[tuple[datetime, datetime]] = []
    run_start: int | None = None
    for i, v in enumerate([*speeds, 99.0]):
        if v < 2.0 and run_start is None:
            run_start = i
        elif v >= 2.0 and run_start is not None:
            start, end = points[run_start].time, points[i].time
            assert start is not None and end is not None
            stops.append((start, end))
            run_start = None
    long_stops = [(s, e) for s, e in stops if (e - s).total_seconds() > 5 * 60]
    # The refuelling stop, and the truck standing at the customer's car at the end.
    assert len(long_stops) == 2
    (refuel_start, refuel_end), (arrived, _) = long_stops
    assert (refuel_end - refuel_start).total_seconds() == pytest.approx(12 * 60, abs=10)
    assert abs((refuel_start - truth.refuel_stop.start).total_seconds()) <= 10
    assert truth.refuel_stop.seconds == 12 * 60
    assert _dist(points[0], gpxpy.gpx.GPXTrackPoint(*truth.depot)) < 10

    # Arrival: first fix within 30 m of the incident; 50 minutes after the promise.
    incident = gpxpy.gpx.GPXTrackPoint(*truth.incident)
    first_there = next(p for p in points if _dist(p, incident) < 30)
    assert first_there.time is not None
    delay = (first_there.time - truth.promised_arrival).total_seconds()
    assert delay == pytest.approx(50 * 60, abs=30)
    assert truth.arrival_delay_s == 50 * 60
    assert (arrived - truth.actual_arrival).total_seconds() == pytest.approx(0, abs=10)

    # Drift: the only impossible speeds are the jumps into and out of the drifting fixes.
    impossible = {i for i, v in enumerate(speeds) if v > 40.0}  # > 144 km/h
    d0, d1 = truth.drift_indices
    assert impossible == {d0 - 1, d1}
    touching_drift = {d0 - 1, d0, d1}
    assert max(v for i, v in enumerate(speeds) if i not in touching_drift) < 100 / 3.6

    # Wrong direction: the distance to the customer grows for the whole interval.
    window = [
        _dist(p, incident)
        for p in points
        if p.time is not None and truth.wrong_direction.start <= p.time <= truth.wrong_direction.end
    ]
    assert len(window) > 100
    assert window[-1] - window[0] > 4000
    assert all(b >= a - 1 for a, b in zip(window, window[1:], strict=False))


def test_track_anchors_to_the_given_dispatch_time() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    truth = build_track(at).truth
    assert truth.dispatched_at == at
    assert (truth.promised_arrival - at).total_seconds() == 30 * 60
    with pytest.raises(ValueError, match="timezone"):
        build_track(datetime(2030, 1, 2))
