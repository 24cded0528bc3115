"""Evidence store on SQLite and PostgreSQL: intake, custody chain, tamper detection, bundles."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text

from earwitness.errors import BadInput, Conflict, PayloadTooLarge, UnsafePath
from earwitness.evidence import custody
from earwitness.evidence.bundle import write_bundle
from earwitness.evidence.intake import IntakeRequest, intake, open_for_view, supersede
from earwitness.evidence.sniff import check_relative_path, display_name, sniff_media_type
from earwitness.evidence.verify import verify
from earwitness.models import Case, Evidence
from earwitness.runtime import Runtime

GPX = b"""<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>
<trkpt lat="22.5" lon="114.0"><time>2026-11-20T08:00:00Z</time></trkpt></trkseg></trk></gpx>"""
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)


def _case(runtime: Runtime, number: str = "C-1") -> int:
    with runtime.db.session() as s:
        case = Case(number=number, complainant_phone="13800138000")
        s.add(case)
        s.flush()
        return case.id


def _file(runtime: Runtime, case_id: int, data: bytes, name: str, actor: str = "li") -> int:
    with runtime.db.session() as s:
        ev = intake(s, runtime.blobs, IntakeRequest(case_id, name, actor), io.BytesIO(data))
        return ev.id


def test_intake_stores_read_only_and_records_who_what_when(runtime: Runtime) -> None:
    case_id = _case(runtime)
    ev_id = _file(runtime, case_id, GPX, "../../etc/passwd")
    with runtime.db.session() as s:
        ev = s.get(Evidence, ev_id)
        assert ev is not None
        assert ev.original_name == "../../etc/passwd"  # a display string only
        assert ev.media_type == "application/gpx+xml" and ev.kind == "track"
        assert ev.received_by == "li" and ev.source == "upload" and ev.size_bytes == len(GPX)
        path = runtime.blobs.path(ev.sha256)
        assert path.read_bytes() == GPX
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert runtime.settings.blob_dir in path.parents
        assert [e.action for e in ev.custody] == ["intake"]
        assert ev.custody[0].prev_hash == custody.GENESIS
    assert verify_ok(runtime)


def verify_ok(runtime: Runtime) -> bool:
    with runtime.db.session() as s:
        return verify(s, runtime.blobs).ok


def test_same_bytes_twice_on_a_case_conflict_and_limits(runtime: Runtime) -> None:
    case_id = _case(runtime)
    _file(runtime, case_id, WAV, "a.wav")
    with pytest.raises(Conflict, match="already evidence"):
        _file(runtime, case_id, WAV, "again.wav")
    with runtime.db.session() as s, pytest.raises(PayloadTooLarge):
        intake(
            s,
            runtime.blobs,
            IntakeRequest(case_id, "big", "li"),
            io.BytesIO(b"x" * 100),
            max_bytes=10,
        )
    with pytest.raises(BadInput, match="NUL"):
        _file(runtime, case_id, b"data", "evil\x00.txt")


def test_custody_chain_covers_views_and_supersede(runtime: Runtime) -> None:
    case_id = _case(runtime)
    first = _file(runtime, case_id, b"first version\n", "statement.txt")
    with runtime.db.session() as s:
        _, stream = open_for_view(s, runtime.blobs, first, "wang", "read for the review")
        assert stream.read() == b"first version\n"
        stream.close()
    with runtime.db.session() as s, pytest.raises(BadInput, match="reason"):
        supersede(
            s,
            runtime.blobs,
            first,
            IntakeRequest(case_id, "s2.txt", "wang"),
            io.BytesIO(b"second"),
            reason=" ",
        )
    with runtime.db.session() as s:
        new = supersede(
            s,
            runtime.blobs,
            first,
            IntakeRequest(case_id, "s2.txt", "wang"),
            io.BytesIO(b"second version\n"),
            reason="driver corrected the time",
        )
        new_id = new.id
    with runtime.db.session() as s:
        old = s.get(Evidence, first)
        assert old is not None
        assert [e.action for e in old.custody] == ["intake", "view", "supersede"]
        assert old.custody[2].data == {
            "superseded_by": new_id,
            "reason": "driver corrected the time",
        }
        entries = [*old.custody, *s.get(Evidence, new_id).custody]  # type: ignore[union-attr]
        entries.sort(key=lambda e: e.id)
        for before, after in zip(entries, entries[1:], strict=False):
            assert after.prev_hash == before.entry_hash
    with runtime.db.session() as s, pytest.raises(Conflict, match="already superseded"):
        supersede(
            s,
            runtime.blobs,
            first,
            IntakeRequest(case_id, "s3.txt", "wang"),
            io.BytesIO(b"third"),
            reason="again",
        )
    assert verify_ok(runtime)


def _flip_byte(path: Path, offset: int) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_tamper_blob_names_exactly_that_file(runtime: Runtime) -> None:
    case_id = _case(runtime)
    ids = [_file(runtime, case_id, f"file {i}\n".encode() * 50, f"f{i}.txt") for i in range(3)]
    with runtime.db.session() as s:
        sha = s.get(Evidence, ids[1]).sha256  # type: ignore[union-attr]
    _flip_byte(runtime.blobs.path(sha), 17)
    with runtime.db.session() as s:
        report = verify(s, runtime.blobs)
    assert not report.ok
    assert report.lines() == [f"evidence {ids[1]}: stored file changed (SHA-256 no longer matches)"]


def test_tamper_custody_row_names_exactly_that_entry(runtime: Runtime) -> None:
    case_id = _case(runtime)
    ids = [_file(runtime, case_id, f"file {i}\n".encode(), f"f{i}.txt") for i in range(3)]
    with runtime.db.session() as s:
        for ev_id in ids:
            open_for_view(s, runtime.blobs, ev_id, "wang")[1].close()
        victim = s.get(Evidence, ids[1]).custody[1]  # type: ignore[union-attr]
        victim_id = victim.id
    with runtime.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE custody_entries SET actor = 'nobody' WHERE id = :id"), {"id": victim_id}
        )
    with runtime.db.session() as s:
        report = verify(s, runtime.blobs)
        assert report.lines() == [f"custody entry {victim_id}: contents changed"]
        per_item = verify(s, runtime.blobs, evidence_ids=[ids[0]])
        assert [p.id for p in per_item.problems] == [victim_id]  # the chain is shared


def test_deleted_custody_row_and_edited_evidence_row_are_named(runtime: Runtime) -> None:
    case_id = _case(runtime)
    ids = [_file(runtime, case_id, f"file {i}\n".encode(), f"f{i}.txt") for i in range(3)]
    with runtime.db.session() as s:
        middle = s.get(Evidence, ids[1]).custody[0].id  # type: ignore[union-attr]
        after = s.get(Evidence, ids[2]).custody[0].id  # type: ignore[union-attr]
    with runtime.db.engine.begin() as conn:
        conn.execute(text("UPDATE evidence SET size_bytes = 1 WHERE id = :id"), {"id": ids[0]})
        conn.execute(text("DELETE FROM custody_entries WHERE id = :id"), {"id": middle})
    with runtime.db.session() as s:
        lines = verify(s, runtime.blobs).lines()
    assert lines == [
        f"custody entry {after}: chain broken: does not follow entry {middle - 1} "
        "(an entry was changed, removed or inserted before it)",
        f"evidence {ids[0]}: database row changed (size_bytes)",
        f"evidence {ids[1]}: has no intake custody entry",
    ]


def test_bundle_verifies_with_sha256sum(runtime: Runtime, tmp_path: Path) -> None:
    case_id = _case(runtime)
    ev_a = _file(runtime, case_id, GPX, "../../etc/passwd")
    _file(runtime, case_id, WAV, "录音 call.wav")
    out = tmp_path / "bundle.zip"
    with runtime.db.session() as s, out.open("wb") as fh:
        manifest = write_bundle(
            s,
            runtime.blobs,
            case_id,
            fh,
            actor="zhao",
            timeline={"x": 1},
            settings=runtime.settings,
        )
    assert manifest["verified"] is True
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert all(not n.startswith(("/", "..")) and "/../" not in n for n in names)
        assert f"files/{ev_a:04d}-passwd" in names
        # the signing material travels with every bundle (VERIFY.md checks it with openssl)
        assert "VERIFY.md" in names and "custody/head.json" in names
        assert any(n.startswith("keys/") and n.endswith(".pem") for n in names)
        assert sum(n.startswith("custody/entries/") and n.endswith(".sig") for n in names) == 4
        zf.extractall(tmp_path / "x")
    done = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "x", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == len(names) - 1
    custody_log = json.loads((tmp_path / "x" / "custody.json").read_text())
    assert [e["action"] for e in custody_log["entries"]] == ["intake", "intake", "export", "export"]
    (tmp_path / "x" / f"files/{ev_a:04d}-passwd").write_bytes(b"changed")
    done = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "x", capture_output=True, text=True
    )
    assert done.returncode != 0 and f"files/{ev_a:04d}-passwd: FAILED" in done.stdout


def test_sniffing_and_path_checks() -> None:
    assert sniff_media_type(WAV) == "audio/wav"
    assert sniff_media_type(b"%PDF-1.7") == "application/pdf"
    assert sniff_media_type(b"$GPRMC,123519,A,4807.038,N") == "application/x-nmea"
    assert sniff_media_type(b'{"type": "FeatureCollection"}') == "application/geo+json"
    assert sniff_media_type(b"time,lat,lon\n1,2,3") == "text/csv"
    assert sniff_media_type(bytes(range(256))) == "application/octet-stream"
    assert display_name("a\x1b[31mred") == "a\ufffd[31mred"
    assert display_name(None) == "unnamed"
    for bad in ("../x", "/etc/passwd", "a/../../b", "C:\\x", ""):
        with pytest.raises(UnsafePath):
            check_relative_path(bad)
    assert check_relative_path("files/0001-a.txt") == "files/0001-a.txt"
