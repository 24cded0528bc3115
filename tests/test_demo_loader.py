"""`earwitness demo`: the seed-000 case built end to end and visible through the API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from earwitness.config import load_settings
from earwitness.demo.loader import demo_wanted, load_demo
from earwitness.demo.script import DEMO_CALLS
from earwitness.models import Job, Transcript
from earwitness.runtime import Runtime
from earwitness.telephony.rings import Cadence, ring_count
from tests.accounts_helpers import api_client


@pytest.fixture
def demo_runtime(tmp_path) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    rt = Runtime.open(load_settings(data_dir=tmp_path / "d", demo="auto", job_poll_s=0.1))
    try:
        yield rt
    finally:
        rt.close()


def test_demo_builds_calls_recordings_case_and_runs_transcription(demo_runtime: Runtime) -> None:
    assert demo_wanted(demo_runtime)  # empty database, no PBX: auto loads the demo
    summary = load_demo(demo_runtime)
    assert "3 calls" in summary and "50 min after the promised time" in summary
    assert not demo_wanted(demo_runtime)
    assert load_demo(demo_runtime) == "demo data already loaded"
    demo_runtime.start_worker()
    with api_client(demo_runtime) as api:
        everything = api.get("/api/calls", params={"limit": 500}).json()
        scripted = {s.call_id for s in DEMO_CALLS}
        calls = [c for c in everything["items"] if c["linkedid"] in scripted]
        assert len(calls) == len(DEMO_CALLS)
        # the week of demo history (earwitness/demo/history.py) came through the tracker
        history = [c for c in everything["items"] if c["linkedid"] not in scripted]
        assert everything["total"] > 100 and {c["source"] for c in history} == {"demo"}
        assert {"answered", "abandoned"} <= {c["outcome"] for c in history}
        waits = {s.caller_number: s.ring_wait_s for s in DEMO_CALLS}
        for call in calls:
            wait = waits[call["caller"]]
            assert call["wait_s"] == pytest.approx(wait)
            assert call["rings"] == ring_count(wait, Cadence.for_country("cn"))
            assert call["recording_id"] is not None
        cases = api.get("/api/cases").json()
        items = cases["items"] if isinstance(cases, dict) else cases
        assert len(items) == 1
        case_id = items[0]["id"]
        timeline = api.get(f"/api/cases/{case_id}/timeline").json()
        assert timeline
        verify = api.post("/api/evidence/verify").json()
        assert verify["ok"] is True
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with demo_runtime.db.session() as s:
                states = [j.state for j in s.scalars(select(Job).where(Job.kind == "transcribe"))]
            if len(states) == 3 and all(st in ("succeeded", "failed") for st in states):
                break
            time.sleep(0.5)
        assert states == ["succeeded"] * 3, states
        with demo_runtime.db.session() as s:
            transcripts = s.scalars(select(Transcript)).all()
            assert len(transcripts) == 3
            for t in transcripts:
                roles = {seg.role for seg in t.segments}
                assert roles == {"agent", "customer"}, (t.id, roles)
                # The case's plate and work order must NOT prime the recogniser (they were
                # copied into transcripts of audio that did not carry them).
                options = t.params["options"]
                assert options["vocabulary"] == [], t.params
                assert options["decoding"]["initial_prompt"] is None
                assert options["decoding"]["temperature"] == [0.0]
