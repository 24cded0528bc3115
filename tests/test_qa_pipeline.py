"""The whole chain on synthesized stereo audio: recording → transcribe job → qa.audit job.

The demo's angry English call (espeak-ng, 8 kHz stereo, customer on channel 0) has known
timing: the agent cuts in on the customer's long complaint with 0.8 s of overlap, apologises
and gives a precise time commitment with a phone number. The audit, computed from what the
real speech recogniser heard, must find exactly those, at the right time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from earwitness.config import Settings
from earwitness.demo.script import EN_ANGRY
from earwitness.demo.synth import synthesize_call
from earwitness.models import Job
from earwitness.qa.store import scorecard
from earwitness.recordings import ingest_file
from earwitness.runtime import Runtime
from earwitness.transcription.models import joined_base_dir
from tests.speech_synth import model_cache_dir

TOLERANCE_S = 0.4  # segment edges from VAD + recogniser vs the synthesised truth


@pytest.mark.slow
def test_angry_demo_call_is_audited_after_transcription(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    synth = synthesize_call(EN_ANGRY, tmp_path / "audio")
    truth_cut = next(t for t in synth.turns if t.index == 4)  # the interrupting agent turn
    sqlite_settings.whisper_model_multilingual = str(joined_base_dir(model_cache_dir()))
    runtime = Runtime.open(sqlite_settings)
    try:
        with runtime.db.session() as session:
            rid = ingest_file(session, runtime.blobs, synth.path).id
        runtime.start_worker()
        runtime.submit("transcribe", {"recording_id": rid})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with runtime.db.session() as session:
                jobs = {j.kind: j.state for j in session.query(Job)}
            if (
                jobs.get("qa.audit") in ("succeeded", "failed")
                or jobs.get("transcribe") == "failed"
            ):
                break
            time.sleep(0.2)
        assert (jobs.get("transcribe"), jobs.get("qa.audit")) == ("succeeded", "succeeded"), jobs
        with runtime.db.session() as session:
            card = scorecard(session, rid)
    finally:
        runtime.close()

    findings = {f["rule_id"]: f for f in card["findings"]}
    cuts = [i for i in card["metrics"]["interruptions"] if i["by"] == "agent"]
    assert len(cuts) == 1, card["metrics"]["interruptions"]
    assert abs(cuts[0]["at_s"] - truth_cut.start_s) <= TOLERANCE_S, (cuts, truth_cut)
    assert 0.3 <= cuts[0]["overlap_s"] <= 0.8 + TOLERANCE_S
    assert findings["no_interruptions"]["status"] == "failed"
    assert findings["apology"]["status"] == "passed"
    assert findings["precise_commitment"]["status"] == "passed"
    commitment = findings["precise_commitment"]["cites"][0]
    assert commitment["role"] == "agent" and "minutes" in commitment["match"]
    assert findings["urgent_escalated"]["status"] == "passed"  # expressway/flight → "urgent"
    assert card["params"]["loudness"] is True
    assert card["metrics"]["longest_silence_s"] < 2.0
