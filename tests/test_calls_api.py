"""Calls, SLA and live endpoints over a real database (SQLite and PostgreSQL).

The data is the sample day of Asterisk queue_log (tests/data/queue_log), whose truth
is tabulated in make_sample.py and checked by tests/test_queue_log.py; here we check
that import, storage and the API carry it through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from earwitness.runtime import Runtime
from earwitness.telephony.persist import SlaDefaults, save_imported
from earwitness.telephony.queue_log import parse_queue_log
from earwitness.telephony.sla import summarise
from tests.accounts_helpers import api_client

SAMPLE = Path(__file__).parent / "data" / "queue_log" / "sample.queue_log"


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    with runtime.db.session() as session:
        save_imported(session, parse_queue_log(SAMPLE.read_bytes().splitlines()).calls,
                      SlaDefaults())  # fmt: skip
    with api_client(runtime) as client:
        yield client


def test_calls_are_listed_filtered_and_paginated(api: TestClient) -> None:
    imported = parse_queue_log(SAMPLE.read_bytes().splitlines()).calls
    body = api.get("/api/calls", params={"limit": 10}).json()
    assert body["total"] == len(imported) and len(body["items"]) == 10
    page2 = api.get("/api/calls", params={"limit": 10, "offset": 10}).json()["items"]
    assert not {c["id"] for c in body["items"]} & {c["id"] for c in page2}
    times = [c["entered_at"] for c in body["items"]]
    assert times == sorted(times, reverse=True)  # newest first
    first = body["items"][0]
    for key in ("id", "linkedid", "caller", "queue", "agent", "entered_at", "answered_at",
                "ended_at", "wait_s", "rings", "outcome", "recording_id"):  # fmt: skip
        assert key in first
    abandoned = api.get("/api/calls", params={"outcome": "abandoned", "limit": 500}).json()
    assert abandoned["total"] == sum(1 for c in imported if c.outcome.value == "abandoned")
    assert all(c["outcome"] == "abandoned" for c in abandoned["items"])
    rescue = api.get("/api/calls", params={"queue": "rescue", "limit": 500}).json()
    assert rescue["total"] == sum(1 for c in imported if c.queue == "rescue")
    one = imported[0]
    by_caller = api.get("/api/calls", params={"caller": one.caller}).json()
    assert by_caller["total"] == sum(1 for c in imported if c.caller == one.caller)
    window = api.get(
        "/api/calls",
        params={"from": one.entered_at.isoformat(), "to": imported[5].entered_at.isoformat()},
    ).json()
    assert window["total"] == sum(
        1 for c in imported if one.entered_at <= c.entered_at < imported[5].entered_at
    )


def test_sla_per_queue_matches_the_pure_maths(api: TestClient) -> None:
    imported = parse_queue_log(SAMPLE.read_bytes().splitlines()).calls
    groups = {g["key"]: g for g in api.get("/api/sla").json()["groups"]}
    for queue in ("complaints", "rescue"):
        expected = summarise([c for c in imported if c.queue == queue], group_by="queue")[0]
        got = groups[queue]
        assert got["offered"] == expected.offered
        assert got["service_level_pct"] == pytest.approx(expected.service_level_pct)
        assert got["rona_count"] == expected.rona_count
        assert {int(k): v for k, v in got["rings_histogram"].items()} == expected.rings_histogram
    hours = api.get("/api/sla", params={"group_by": "hour", "tz": "Asia/Shanghai"}).json()
    assert sum(g["offered"] for g in hours["groups"]) == len(imported)
    assert all(g["key"].endswith("+08:00") for g in hours["groups"])


def test_bad_query_values_are_clear_4xx(api: TestClient) -> None:
    assert api.get("/api/sla", params={"tz": "Mars/Olympus"}).status_code == 422
    assert "time zone" in api.get("/api/sla", params={"tz": "Mars/Olympus"}).json()["detail"]
    # a time without offset is local to EARWITNESS_TIMEZONE (issue 18); nonsense is a 422
    assert api.get("/api/calls", params={"from": "2026-11-26T08:00:00"}).status_code == 200
    garbage = api.get("/api/calls", params={"from": "soon"})
    assert garbage.status_code == 422 and "not a date or time" in garbage.json()["detail"]
    assert api.get("/api/calls", params={"outcome": "exploded"}).status_code == 422
    assert api.get("/api/calls", params={"limit": 100000}).status_code == 422
    assert api.get("/api/calls/999999").status_code == 404


def test_live_snapshot_and_event_stream(api: TestClient) -> None:
    live = api.get("/api/live").json()
    assert live["calls_waiting"] == 0 and live["pbx"] == {"configured": False}
    with api.stream("GET", "/api/live/stream", params={"max_events": 2, "interval_s": 0.2}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert text.count("event: snapshot") == 2 and '"calls_waiting": 0' in text
