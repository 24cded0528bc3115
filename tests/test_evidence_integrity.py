"""Evidence that holds up against an insider: recordings are evidence, bytes are checked
before they leave, bundles list intake hashes, Unicode names survive, notes are visible.

Storage tests run on SQLite and PostgreSQL (the ``runtime`` fixture); the insider is
simulated the way one would act: ``chmod`` the read-only blob, flip one byte.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from earwitness.config import load_settings
from earwitness.errors import NotFound, TamperedEvidence
from earwitness.evidence.bundle import write_bundle
from earwitness.evidence.intake import (
    IntakeRequest,
    intake,
    open_for_view,
    recording_evidence,
)
from earwitness.evidence.sniff import attachment, display_name, safe_member_name
from earwitness.evidence.verify import verify
from earwitness.models import Call, Case, CustodyEntry, Evidence, Recording, Transcript, case_calls
from earwitness.models.transcripts import Segment
from earwitness.recordings.intake import (
    copy_blob_to,
    ingest_file,
    register_existing_recordings,
)
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client
from tests.test_cli_errors import run_cli

GPX = b"""<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>
<trkpt lat="22.5" lon="114.0"><time>2026-11-20T08:00:00Z</time></trkpt></trkseg></trk></gpx>"""
PARAMS = {
    "beam_size": 5,
    "temperature": 0.0,
    "model_files": {"model.bin": "ab" * 32},
    "role_rule": "channel-map",
}


def _wav(path: Path, freq: float) -> Path:
    """One second of a two-tone 8 kHz stereo call (not silent, not dual-mono)."""
    t = np.arange(8000) / 8000.0
    left = 0.3 * np.sin(2 * np.pi * freq * t)
    right = 0.3 * np.sin(2 * np.pi * (freq * 1.5) * t)
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    return path


def _flip_byte(path: Path, offset: int = 1000) -> None:
    """What an insider does: make the read-only blob writable, change one byte."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _case(runtime: Runtime, number: str = "EW-1") -> int:
    with runtime.db.session() as s:
        case = Case(number=number, complainant_phone="13800138000")
        s.add(case)
        s.flush()
        return case.id


def _call_with_recording(
    runtime: Runtime, case_id: int, wav: Path, *, transcript: bool = True
) -> tuple[int, int]:
    """A call linked to the case, its recording ingested (no case on the recording itself,
    as with PBX recordings), and a transcript carrying decoding params."""
    with runtime.db.session() as s:
        call = Call(
            linkedid=f"call-{wav.stem}",
            caller="13800138000",
            entered_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        )
        s.add(call)
        s.flush()
        s.execute(case_calls.insert().values(case_id=case_id, call_id=call.id))
        rec = ingest_file(s, runtime.blobs, wav, call_id=call.id, origin="pbx", actor="pbx")
        if transcript:
            tr = Transcript(recording_id=rec.id, model="base", language="zh", params=PARAMS)
            tr.segments = [Segment(start_s=0.0, end_s=1.0, text="车迟到了", role="customer")]
            s.add(tr)
        return call.id, rec.id


def _file(runtime: Runtime, case_id: int, data: bytes, name: str, note: str = "") -> int:
    with runtime.db.session() as s:
        request = IntakeRequest(case_id, name, "li", source="platform export", note=note)
        return intake(s, runtime.blobs, request, io.BytesIO(data)).id


def _sha256sum_check(zip_bytes: bytes, where: Path) -> subprocess.CompletedProcess[str]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        zf.extractall(where)
    return subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=where, capture_output=True, text=True
    )


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with api_client(runtime) as c:
        yield c


# -- recordings are evidence -------------------------------------------------------------


def test_recording_is_filed_as_evidence_once_and_a_flipped_byte_is_named(
    runtime: Runtime, tmp_path: Path
) -> None:
    case_id = _case(runtime)
    wav = _wav(tmp_path / "call-1.wav", 440)
    with runtime.db.session() as s:
        rec = ingest_file(s, runtime.blobs, wav, case_id=case_id)
        rid, sha = rec.id, rec.sha256
    with runtime.db.session() as s:  # the same bytes again: same recording, same evidence
        assert ingest_file(s, runtime.blobs, wav).id == rid
    with runtime.db.session() as s:
        rows = list(s.scalars(select(Evidence).where(Evidence.kind == "recording")))
        assert len(rows) == 1
        ev = rows[0]
        assert (ev.sha256, ev.case_id, ev.meta["recording_id"]) == (sha, case_id, rid)
        assert ev.media_type == "audio/wav" and ev.original_name == "call-1.wav"
        assert [e.action for e in ev.custody] == ["intake"]
        assert ev.custody[0].data["recording_id"] == rid
        ev_id = ev.id
        assert verify(s, runtime.blobs).ok
    assert sha is not None
    _flip_byte(runtime.blobs.path(sha))
    with runtime.db.session() as s:
        report = verify(s, runtime.blobs)
    assert [p.line() for p in report.problems if p.item == "evidence"] == [
        f"evidence {ev_id}: stored file changed (SHA-256 no longer matches)"
    ]
    target = tmp_path / "for-asr.wav"  # transcription and QA never decode the altered audio
    with pytest.raises(TamperedEvidence, match="no longer matches its intake hash"):
        copy_blob_to(runtime.blobs, sha, target)
    assert not target.exists()


def test_pbx_row_is_filled_in_place_and_linked(runtime: Runtime, tmp_path: Path) -> None:
    wav = _wav(tmp_path / "pbx.wav", 500)
    with runtime.db.session() as s:
        row = Recording(state="expected", source_path=str(wav))
        s.add(row)
        s.flush()
        stored = ingest_file(
            s, runtime.blobs, wav, source_path=str(wav), into=row, origin="pbx", actor="pbx"
        )
        assert stored is row and row.state == "ingested" and row.sha256
        ev = recording_evidence(s, row.id)
        assert ev is not None and ev.source == "pbx" and ev.case_id is None
        assert s.scalar(select(func.count()).select_from(Recording)) == 1


def test_backfill_files_old_recordings_once_with_their_intake_hash(runtime: Runtime) -> None:
    """Recordings stored before this change have no evidence row; the backfill adds it
    from the hash recorded at their intake, so a file altered *before* the backfill fails."""
    blob_a = runtime.blobs.put_bytes(b"RIFF-old-a" * 200)
    blob_b = runtime.blobs.put_bytes(b"RIFF-old-b" * 200)
    with runtime.db.session() as s:
        for blob in (blob_a, blob_b):
            s.add(Recording(state="ingested", sha256=blob.sha256, size_bytes=blob.size,
                            format="wav", original_name="old.wav"))  # fmt: skip
        s.add(Recording(state="missing"))  # no audio: nothing to file
    _flip_byte(runtime.blobs.path(blob_b.sha256), 3)  # altered while nobody was checking
    with runtime.db.session() as s:
        filed = register_existing_recordings(s)
        assert len(filed) == 2
    with runtime.db.session() as s:
        assert register_existing_recordings(s) == []  # idempotent
        assert s.scalar(select(func.count()).select_from(Evidence)) == 2
        altered = recording_evidence(s, filed[1])
        assert altered is not None
        lines = [p.line() for p in verify(s, runtime.blobs).problems]
    assert lines == [f"evidence {altered.id}: stored file changed (SHA-256 no longer matches)"]


# -- bytes are checked before they are handed out ----------------------------------------


def test_audio_endpoint_refuses_a_tampered_recording(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    audio = _wav(tmp_path / "up.wav", 300).read_bytes()
    resp = client.post(
        "/api/recordings",
        files={"file": ("录音.wav", audio, "audio/wav")},
        data={"transcribe": "false", "note": "客户来电"},
    )
    assert resp.status_code == 201, resp.text
    rec = resp.json()["recording"]
    part = client.get(f"/api/recordings/{rec['id']}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == audio[100:200]
    whole = client.get(f"/api/recordings/{rec['id']}/audio")
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["etag"] == f'"{rec["sha256"]}"'
    with runtime.db.session() as s:
        ev = recording_evidence(s, rec["id"])
        assert ev is not None and ev.source == "upload" and ev.meta["note"] == "客户来电"
        ev_id = ev.id
    _flip_byte(runtime.blobs.path(rec["sha256"]))
    for headers in ({}, {"Range": "bytes=0-99"}):
        refused = client.get(f"/api/recordings/{rec['id']}/audio", headers=headers)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        body = refused.json()
        assert body["type"].endswith("/evidence-tampered")
        assert "no longer matches its intake hash" in body["detail"]
        assert f"evidence {ev_id}" in body["detail"]
    report = client.post("/api/evidence/verify").json()
    assert report["ok"] is False
    assert [p["id"] for p in report["problems"] if p["item"] == "evidence"] == [ev_id]
    leftovers = list((runtime.blobs.root / "tmp").glob("serve-*"))
    assert leftovers == []  # private copies are removed, the refused one never kept


def test_evidence_download_refuses_tampered_bytes(client: TestClient, runtime: Runtime) -> None:
    case_id = _case(runtime)
    ev_id = _file(runtime, case_id, "司机陈述\n".encode() * 40, "证据.txt")
    ok = client.get(f"/api/evidence/{ev_id}/content")
    assert ok.status_code == 200 and ok.content == "司机陈述\n".encode() * 40
    assert "filename*=utf-8''%E8%AF%81%E6%8D%AE.txt" in ok.headers["content-disposition"]
    with runtime.db.session() as s:
        sha = s.get_one(Evidence, ev_id).sha256
    _flip_byte(runtime.blobs.path(sha), 5)
    refused = client.get(f"/api/evidence/{ev_id}/content")
    assert refused.status_code == 409 and "司机" not in refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    with runtime.db.session() as s:
        with pytest.raises(TamperedEvidence, match=f"evidence {ev_id}"):
            open_for_view(s, runtime.blobs, ev_id, "wang")
        actions = [e.action for e in s.get_one(Evidence, ev_id).custody]
    assert actions == ["intake", "view"]  # the refused reads are not logged as views


# -- bundles ------------------------------------------------------------------------------


def test_clean_bundle_carries_audio_params_notes_and_passes_sha256sum(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    case_id = _case(runtime)
    wav = _wav(tmp_path / "call-7.wav", 350)
    call_id, rid = _call_with_recording(runtime, case_id, wav)
    ev_id = _file(runtime, case_id, "司机陈述\n".encode(), "证据.txt", note="司机周一补交")
    resp = client.get(f"/api/cases/{case_id}/bundle")
    assert resp.status_code == 200, resp.text
    done = _sha256sum_check(resp.content, tmp_path / "x")
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        assert "TAMPERED.txt" not in names
        assert f"files/{ev_id:04d}-证据.txt" in names  # Unicode kept
        audio = [n for n in names if n.startswith("recordings/")]
        assert len(audio) == 1 and zf.read(audio[0]) == wav.read_bytes()
        stem = f"transcripts/call-{call_id}-rec-{rid}"
        transcript = json.loads(zf.read(f"{stem}.json"))
        assert transcript["params"] == PARAMS and transcript["audio"] == audio[0]
        assert "车迟到了" in zf.read(f"{stem}.txt").decode()
    assert done.stdout.count(": OK") == len(names) - 1
    assert manifest["verified"] is True and manifest["tampered"] == []
    by_id = {f["evidence_id"]: f for f in manifest["files"]}
    assert by_id[ev_id]["note"] == "司机周一补交"
    assert by_id[ev_id]["source"] == "platform export"
    rec_file = next(f for f in manifest["files"] if f["recording_id"] == rid)
    assert rec_file["source"] == "pbx" and rec_file["matches_intake"] is True
    assert manifest["recordings"][0]["transcript"] == f"{stem}.json"


def test_tampered_case_is_refused_unless_allowed_and_then_fails_sha256sum(
    client: TestClient, runtime: Runtime, tmp_path: Path
) -> None:
    case_id = _case(runtime)
    _call_with_recording(runtime, case_id, _wav(tmp_path / "c.wav", 420), transcript=False)
    gpx_id = _file(runtime, case_id, GPX, "truck.gpx")
    with runtime.db.session() as s:
        sha = s.get_one(Evidence, gpx_id).sha256
    _flip_byte(runtime.blobs.path(sha), 40)

    refused = client.get(f"/api/cases/{case_id}/bundle")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    detail = refused.json()["detail"]
    assert f"evidence {gpx_id}: stored file changed" in detail and "allow_tampered" in detail
    with runtime.db.session() as s:  # nothing exported: no export entries were kept
        exports = s.scalar(
            select(func.count()).select_from(CustodyEntry).where(CustodyEntry.action == "export")
        )
        assert exports == 0
        with pytest.raises(TamperedEvidence):
            write_bundle(
                s, runtime.blobs, case_id, io.BytesIO(), actor="x", settings=runtime.settings
            )

    allowed = client.get(f"/api/cases/{case_id}/bundle", params={"allow_tampered": "true"})
    assert allowed.status_code == 200, allowed.text
    with zipfile.ZipFile(io.BytesIO(allowed.content)) as zf:
        assert zf.namelist()[0] == "TAMPERED.txt"
        warning = zf.read("TAMPERED.txt").decode()
        manifest = json.loads(zf.read("manifest.json"))
    assert "FAILED VERIFICATION" in warning and f"evidence {gpx_id}" in warning
    assert manifest["verified"] is False
    done = _sha256sum_check(allowed.content, tmp_path / "t")
    assert done.returncode != 0
    assert f"files/{gpx_id:04d}-truck.gpx: FAILED" in done.stdout
    assert done.stdout.count("FAILED") == 1  # only the altered file; the rest check out


def test_unknown_case_bundle_is_not_found(client: TestClient, runtime: Runtime) -> None:
    resp = client.get("/api/cases/424242/bundle")
    assert resp.status_code == 404 and resp.headers["content-type"] == "application/problem+json"
    with runtime.db.session() as s, pytest.raises(NotFound, match="424242"):
        write_bundle(s, runtime.blobs, 424242, io.BytesIO(), actor="x", settings=runtime.settings)


def test_bundle_and_list_commands(tmp_path: Path) -> None:
    env = {"EARWITNESS_DATA_DIR": str(tmp_path / "data"), "EARWITNESS_DEMO": "never"}
    runtime = Runtime.open(load_settings(data_dir=tmp_path / "data", demo="never"))
    try:
        case_id = _case(runtime)
        gpx_id = _file(runtime, case_id, GPX, "路线.gpx", note="平台导出, 未剪辑")
        with runtime.db.session() as s:
            sha = s.get_one(Evidence, gpx_id).sha256
    finally:
        runtime.close()
    res = run_cli(["evidence", "list", str(case_id), "--json"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    [row] = json.loads(res.stdout)
    assert (row["note"], row["source"], row["original_name"]) == (
        "平台导出, 未剪辑",
        "platform export",
        "路线.gpx",
    )
    _flip_byte(runtime.blobs.path(sha), 40)
    out = tmp_path / "b.zip"
    res = run_cli(["case", "bundle", str(case_id), "--out", str(out)], env, tmp_path)
    assert res.returncode != 0 and f"evidence {gpx_id}: stored file changed" in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".b.zip*"))
    res = run_cli(
        ["case", "bundle", str(case_id), "--out", str(out), "--allow-tampered"], env, tmp_path
    )
    assert res.returncode == 0 and "TAMPERED" in res.stdout, res.stderr
    assert zipfile.ZipFile(out).namelist()[0] == "TAMPERED.txt"
    res = run_cli(["case", "bundle", "999", "--out", str(tmp_path / "n.zip")], env, tmp_path)
    assert res.returncode != 0 and "999 does not exist" in res.stderr
    assert not (tmp_path / "n.zip").exists()


# -- notes and names ----------------------------------------------------------------------


def test_note_and_source_are_visible_in_list_custody_and_manifest(
    client: TestClient, runtime: Runtime
) -> None:
    case_id = _case(runtime)
    up = client.post(
        f"/api/cases/{case_id}/evidence",
        files={"file": ("证据.txt", "司机陈述\n".encode(), "text/plain")},
        data={"source": "driver app", "note": "司机 11 月 20 日提交"},
    )
    assert up.status_code == 201, up.text
    ev = up.json()
    assert ev["note"] == "司机 11 月 20 日提交" and ev["original_name"] == "证据.txt"
    listed = client.get(f"/api/cases/{case_id}/evidence").json()
    assert [(e["note"], e["source"]) for e in listed] == [("司机 11 月 20 日提交", "driver app")]
    [entry] = client.get(f"/api/evidence/{ev['id']}/custody").json()
    assert entry["action"] == "intake" and entry["data"]["note"] == "司机 11 月 20 日提交"
    assert "note: 司机 11 月 20 日提交" in entry["detail"] and "driver app" in entry["detail"]
    with runtime.db.session() as s:
        manifest = write_bundle(
            s, runtime.blobs, case_id, io.BytesIO(), actor="zhao", settings=runtime.settings
        )
    assert manifest["files"][0]["note"] == "司机 11 月 20 日提交"
    assert manifest["files"][0]["path"] == f"files/{ev['id']:04d}-证据.txt"


@pytest.mark.parametrize(
    ("given", "member"),
    [
        ("证据.txt", "证据.txt"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("a\x00b.txt", "a_b.txt"),
        ("line\nbreak.txt", "line_break.txt"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # decomposed é becomes the composed one
        ("caf\u00e9.txt", "caf\u00e9.txt"),
        ("..／..／etc／passwd", "etc_passwd"),  # fullwidth solidus folds to "/" (NFKC)
        ("\u202egpj.exe", "gpj.exe"),  # bidi override removed
        ("．．", "file"),
        ("", "file"),
    ],
)
def test_member_names_keep_unicode_and_never_escape(given: str, member: str) -> None:
    assert safe_member_name(given) == member


def test_member_names_are_bounded_and_display_names_normalised() -> None:
    long = safe_member_name("证" * 400 + ".wav")
    assert long.endswith(".wav") and len(long.encode()) <= 150 and long.startswith("证")
    assert len(safe_member_name("x" * 400).encode()) <= 150
    assert display_name("cafe\u0301.txt") == display_name("caf\u00e9.txt") == "caf\u00e9.txt"
    assert display_name("a\nb") == "a\ufffdb" and len(display_name("y" * 400)) == 255
    assert display_name("../../etc/passwd") == "../../etc/passwd"  # shown, never opened
    assert attachment("证据.txt") == (
        "attachment; filename=\"download.txt\"; filename*=utf-8''%E8%AF%81%E6%8D%AE.txt"
    )
