"""Tracks filed as evidence (SQLite and PostgreSQL), the track API and ``track analyze`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from earwitness.errors import BadInput
from earwitness.evidence.intake import IntakeRequest
from earwitness.evidence.track_store import file_track, reanalyze
from earwitness.evidence.tracks import AnalysisParams, ParseOptions, Place
from earwitness.evidence.verify import verify
from earwitness.models import Case, CustodyEntry, Evidence, Track, TrackPoint
from earwitness.runtime import Runtime
from tests import track_synth as synth
from tests.accounts_helpers import api_client
from tests.test_tracks import BOMB


def _case(runtime: Runtime) -> int:
    with runtime.db.session() as s:
        case = Case(number="T-1")
        s.add(case)
        s.flush()
        return case.id


def _counts(runtime: Runtime) -> tuple[int, ...]:
    with runtime.db.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) or 0
            for m in (Evidence, CustodyEntry, Track, TrackPoint)
        )


def test_file_track_stores_points_analysis_and_custody(runtime: Runtime) -> None:
    case_id = _case(runtime)
    truth = synth.rescue_truck()
    shifted_lat, shifted_lon = synth_gcj(truth)
    data = synth.to_csv(synth.Truth(shifted_lat, shifted_lon, truth.t, truth.marks))
    with runtime.db.session() as s:
        evidence, track = file_track(
            s,
            runtime.blobs,
            IntakeRequest(case_id, "platform-export.csv", "li", "vendor platform"),
            data,
            options=ParseOptions(coord_system="gcj02"),
            params=AnalysisParams(
                places=(Place("petrol station", *truth.marks["petrol_station"]),)
            ),  # type: ignore[misc]
        )
        track_id, evidence_id = track.id, evidence.id
        assert track.coord_system == "gcj02" and track.point_count == len(truth.lat)
        assert any("petrol station" in v for v in track.analysis["verdict"])
    with runtime.db.session() as s:
        stored = s.scalars(
            select(TrackPoint).where(TrackPoint.track_id == track_id).order_by(TrackPoint.seq)
        ).all()
        assert len(stored) == len(truth.lat)
        assert stored[0].lat == pytest.approx(truth.lat[0], abs=1e-6)  # WGS-84 after conversion
        result = reanalyze(
            s,
            runtime.blobs,
            track_id,
            params=AnalysisParams(stop_min_minutes=20),
            options=None,
            actor="wang",
        )
        assert result["stops"] == []
        assert result["parse_options"]["coord_system"] == "gcj02"
        actions = [e.action for e in s.get(Evidence, evidence_id).custody]  # type: ignore[union-attr]
        assert actions == ["intake", "analysis", "analysis"]
        assert verify(s, runtime.blobs).ok


def synth_gcj(truth: synth.Truth) -> tuple[list[float], list[float]]:
    import numpy as np

    from earwitness.evidence.tracks.coords import wgs84_to_gcj02

    lat, lon = wgs84_to_gcj02(np.array(truth.lat), np.array(truth.lon))
    return list(lat), list(lon)


def test_broken_track_stores_nothing(runtime: Runtime) -> None:
    case_id = _case(runtime)
    before = _counts(runtime)
    blobs_before = sorted(p for p in runtime.settings.blob_dir.rglob("*") if p.is_file())
    for data in (BOMB, b"time,lat,lon\n2026-11-20T00:00:00Z,95,114\n"):
        with runtime.db.session() as s, pytest.raises(BadInput):
            file_track(
                s,
                runtime.blobs,
                IntakeRequest(case_id, "x.gpx", "li"),
                data,
                options=ParseOptions(),
                params=AnalysisParams(),
            )
    assert _counts(runtime) == before
    assert sorted(p for p in runtime.settings.blob_dir.rglob("*") if p.is_file()) == blobs_before


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with api_client(runtime) as c:
        yield c


def test_track_api_analyze_file_and_reanalyze(client: TestClient, runtime: Runtime) -> None:
    truth = synth.rescue_truck()
    gpx = synth.to_gpx(truth)
    lat, lon = truth.marks["customer"]  # type: ignore[misc]
    params = {"destination": f"{lat},{lon},customer", "promised_at": "2026-11-20T07:58:40+08:00"}
    resp = client.post(
        "/api/tracks/analyze",
        files={"file": ("truck.gpx", gpx, "application/gpx+xml")},
        data={"params": json.dumps(params)},
    )
    assert resp.status_code == 200, resp.text
    assert any("50 min after the promised time" in v for v in resp.json()["verdict"])
    assert _counts(runtime)[0] == 0  # analysing alone stores nothing
    bad = client.post("/api/tracks/analyze", files={"file": ("b.gpx", BOMB)})
    assert bad.status_code == 422 and "DTD" in bad.json()["detail"]
    bad = client.post(
        "/api/tracks/analyze", files={"file": ("t.gpx", gpx)}, data={"params": '{"speed": 1}'}
    )
    assert bad.status_code == 422 and "unknown analysis parameter" in bad.json()["detail"]
    case_id = _case(runtime)
    resp = client.post(
        f"/api/cases/{case_id}/tracks",
        files={"file": ("truck.gpx", gpx)},
        data={"params": json.dumps(params)},
    )
    assert resp.status_code == 201, resp.text
    track_id = resp.json()["track_id"]
    assert client.get(f"/api/tracks/{track_id}").json()["point_count"] == len(truth.lat)
    resp = client.post(f"/api/tracks/{track_id}/analyze", json={"params": {"stop_min_minutes": 30}})
    assert resp.status_code == 200 and resp.json()["stops"] == []
    evidence_id = resp.json() and client.get(f"/api/tracks/{track_id}").json()["evidence_id"]
    custody = client.get(f"/api/evidence/{evidence_id}/custody").json()
    assert [e["action"] for e in custody] == ["intake", "analysis", "analysis"]


def test_track_analyze_cli_json(tmp_path: Path) -> None:
    truth = synth.rescue_truck()
    path = tmp_path / "truck.kml"
    path.write_bytes(synth.to_kml(truth))
    lat, lon = truth.marks["petrol_station"]  # type: ignore[misc]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "earwitness.cli",
            "track",
            "analyze",
            str(path),
            "--json",
            "--place",
            f"petrol station={lat},{lon}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"]["source_format"] == "kml"
    assert any("(petrol station)" in v for v in result["verdict"])
    bomb = tmp_path / "bomb.gpx"
    bomb.write_bytes(BOMB)
    done = subprocess.run(
        [sys.executable, "-m", "earwitness.cli", "track", "analyze", str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "DTD" in done.stderr and "Traceback" not in done.stderr
