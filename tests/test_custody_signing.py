"""Signed custody log against an insider with database write access, on SQLite and PostgreSQL.

The attacker here can run any SQL and knows the hashing rules (the code is open), but
cannot read the key directory: they rewrite entries and recompute the whole chain,
delete the newest entries, strip or forge signatures. Each must be named by verify.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from earwitness.config import load_settings
from earwitness.db import Database
from earwitness.errors import NotFound
from earwitness.evidence import custody, signing
from earwitness.evidence.intake import IntakeRequest, intake, open_for_view
from earwitness.evidence.signing import HEAD_FILE, CustodyKeys, key_id_of, public_pem
from earwitness.evidence.verify import VerifyReport, verify
from earwitness.migrations import upgrade
from earwitness.models import Case, CustodyEntry, Evidence, utcnow
from earwitness.runtime import Runtime
from tests.accounts_helpers import api_client


@pytest.fixture
def rt(runtime: Runtime) -> Iterator[Runtime]:
    """The shared runtime with signing attached (idempotent if the runtime already does it)."""
    signing.attach(runtime.db.engine, runtime.settings)
    yield runtime


def _case(rt: Runtime, number: str = "C-1") -> int:
    with rt.db.session() as s:
        case = Case(number=number, complainant_phone="13800138000")
        s.add(case)
        s.flush()
        return case.id


def _file(rt: Runtime, case_id: int, data: bytes, name: str) -> int:
    with rt.db.session() as s:
        return intake(s, rt.blobs, IntakeRequest(case_id, name, "li"), io.BytesIO(data)).id


def _view(rt: Runtime, evidence_id: int, who: str = "wang") -> None:
    with rt.db.session() as s:
        open_for_view(s, rt.blobs, evidence_id, who)[1].close()


def _populate(rt: Runtime, items: int = 3, views: int = 1) -> list[int]:
    case_id = _case(rt)
    ids = [_file(rt, case_id, f"file {i}\n".encode(), f"f{i}.txt") for i in range(items)]
    for _ in range(views):
        for ev in ids:
            _view(rt, ev)
    return ids


def _verify(rt: Runtime, *, full: bool = False) -> VerifyReport:
    with rt.db.session() as s:
        return verify(s, rt.blobs, full=full, keys=CustodyKeys(rt.settings))


def _entry_ids(rt: Runtime) -> list[int]:
    with rt.db.session() as s:
        return list(s.scalars(sa.select(CustodyEntry.id).order_by(CustodyEntry.id)))


def _insider_rewrite(
    rt: Runtime,
    victim: int,
    change: Callable[[CustodyEntry], None],
    sign: Ed25519PrivateKey | None = None,
) -> None:
    """Edit one entry, then recompute every hash (and, with a key, signature) from it on."""
    with Session(rt.db.engine) as s:
        rows = list(s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id)))
        prev = custody.GENESIS
        for row in rows:
            if row.id == victim:
                change(row)
            if row.id >= victim:
                row.prev_hash = prev
                blob = custody.stored_bytes(row)
                row.entry_hash = hashlib.sha256(blob).hexdigest()
                if sign is not None:
                    row.signature = sign.sign(blob).hex()
                    row.key_id = key_id_of(sign.public_key())
            prev = row.entry_hash
        s.commit()


def _rename_actor(row: CustodyEntry) -> None:
    row.actor = "nobody"


def test_entries_signed_key_outside_database_verify_ok(rt: Runtime) -> None:
    _populate(rt)
    keys = CustodyKeys(rt.settings)
    assert keys.key_file == rt.settings.data_dir / "keys" / "custody-ed25519.pem"
    assert stat.S_IMODE(keys.key_file.stat().st_mode) == 0o600
    assert (keys.public_dir / f"{keys.key_id}.pem").is_file()
    with rt.db.session() as s:
        rows = list(s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id)))
    assert len(rows) == 6 and all(r.key_id == keys.key_id for r in rows)
    assert all(len(bytes.fromhex(r.signature or "")) == 64 for r in rows)
    head, problem = keys.read_doc(HEAD_FILE)
    assert not problem and head is not None
    assert head.body["entry_id"] == rows[-1].id and head.body["entry_hash"] == rows[-1].entry_hash
    report = _verify(rt)
    assert report.ok, report.lines()
    assert report.signatures_checked == 6 and report.mode == "full"
    assert "trusted timestamps: not configured (tsa_url unset), skipped" in report.notes


def test_rewrite_and_recompute_whole_chain_fails_on_signature(rt: Runtime) -> None:
    _populate(rt, views=2)
    ids = _entry_ids(rt)
    victim = ids[4]
    assert _verify(rt).ok
    _insider_rewrite(rt, victim, _rename_actor)
    with rt.db.session() as s:
        # The plain hash chain is perfect again: that is the attack.
        rows = list(s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id)))
        assert all(custody.recompute(r) == r.entry_hash for r in rows)
    expected = [
        f"custody entry {victim}: signature does not match (entry rewritten and its "
        "hash recomputed)",
        f"custody entry {ids[5]}: signature does not match (entry rewritten and its hash "
        f"recomputed), like {len(ids) - 5} entries from here to entry {ids[-1]}",
    ]
    full = _verify(rt, full=True).lines()
    assert full == expected
    # Incremental: the checkpoint entry (the newest) changed too, so it walks everything.
    incremental = _verify(rt).lines()
    assert incremental[:2] == expected
    assert f"custody entry {ids[-1]}: changed since it was verified (last checkpoint)" in (
        incremental
    )


def test_deleting_newest_entries_is_caught_by_signed_head(rt: Runtime) -> None:
    _populate(rt)
    ids = _entry_ids(rt)
    with rt.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM custody_entries WHERE id > :id"), {"id": ids[-3]})
    for report in (_verify(rt), _verify(rt, full=True)):
        assert report.lines() == [
            f"custody entry {ids[-1]}: missing: custody entries after {ids[-3]} were removed "
            f"(the signed chain head names entry {ids[-1]})"
        ]


def test_foreign_key_and_swapped_public_key_file_are_named(rt: Runtime) -> None:
    _populate(rt)
    ids = _entry_ids(rt)
    keys = CustodyKeys(rt.settings)
    ours = keys.key_id
    mallory = Ed25519PrivateKey.generate()
    theirs = key_id_of(mallory.public_key())
    _insider_rewrite(rt, ids[-1], _rename_actor, sign=mallory)
    assert _verify(rt).lines() == [f"custody entry {ids[-1]}: signed by unknown key {theirs}"]

    # The insider also drops their public key into the key dir under *our* key's name.
    (keys.public_dir / f"{ours}.pem").write_bytes(public_pem(mallory.public_key()))
    lines = _verify(rt, full=True).lines()
    assert lines[0] == f"public key file {ours}.pem: holds key {theirs}, not {ours} (file swapped)"
    assert f"custody entry {ids[0]}: signed by unknown key {ours}" in lines


def test_incremental_verify_uses_checkpoint_and_catches_later_edits(rt: Runtime) -> None:
    ev = _populate(rt)
    first = _verify(rt)
    assert first.ok and first.mode == "full" and first.entries_checked == 6
    _view(rt, ev[0])
    _view(rt, ev[1])
    second = _verify(rt)
    assert second.ok and second.mode == "incremental" and second.entries_checked == 2
    assert second.signatures_checked >= 3  # the checkpoint entry is re-checked too
    _view(rt, ev[2])
    appended = _entry_ids(rt)[-1]
    _insider_rewrite(rt, appended, _rename_actor)  # after the checkpoint, hash recomputed
    third = _verify(rt)
    assert third.mode == "incremental"
    assert third.lines() == [
        f"custody entry {appended}: signature does not match (entry rewritten and its hash "
        "recomputed)"
    ]


def test_checkpoint_entry_changed_falls_back_to_full_walk(rt: Runtime) -> None:
    _populate(rt)
    assert _verify(rt).ok
    ids = _entry_ids(rt)
    _insider_rewrite(rt, ids[1], _rename_actor)  # before the checkpoint; chain recomputed
    report = _verify(rt)
    assert report.mode == "full"
    assert report.lines()[:2] == [
        f"custody entry {ids[1]}: signature does not match (entry rewritten and its hash "
        "recomputed)",
        f"custody entry {ids[2]}: signature does not match (entry rewritten and its hash "
        f"recomputed), like {len(ids) - 2} entries from here to entry {ids[-1]}",
    ]
    assert f"custody entry {ids[-1]}: changed since it was verified (last checkpoint)" in (
        report.lines()
    )


def test_edit_before_checkpoint_without_recompute_needs_full(rt: Runtime) -> None:
    """Incremental skips old entries by design; --full finds an old edited row."""
    _populate(rt)
    assert _verify(rt).ok
    victim = _entry_ids(rt)[1]
    with rt.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE custody_entries SET detail = 'x' WHERE id = :i"), {"i": victim}
        )
    assert _verify(rt, full=True).lines() == [f"custody entry {victim}: contents changed"]


def test_old_intake_entry_and_evidence_row_edited_together_caught_incrementally(
    rt: Runtime,
) -> None:
    ids = _populate(rt)
    assert _verify(rt).ok
    with Session(rt.db.engine) as s:
        row = s.scalars(
            sa.select(CustodyEntry).where(
                CustodyEntry.evidence_id == ids[0], CustodyEntry.action == "intake"
            )
        ).one()
        row.data = {**row.data, "size_bytes": 1}
        row_id = row.id
        s.execute(sa.text("UPDATE evidence SET size_bytes = 1 WHERE id = :i"), {"i": ids[0]})
        s.commit()
    assert f"custody entry {row_id}: contents changed" in _verify(rt).lines()


def test_unsigned_entries_from_before_signing_and_stripped_signatures(
    runtime: Runtime,
) -> None:
    signing.detach(runtime.db.engine)
    ids = _populate(runtime, items=2, views=0)
    signing.attach(runtime.db.engine, runtime.settings)
    _view(runtime, ids[0])
    _view(runtime, ids[1])
    entries = _entry_ids(runtime)
    report = _verify(runtime)
    assert report.ok, report.lines()
    assert (
        f"custody entries {entries[0]}–{entries[1]}: unsigned (written before signing) — "
        "2 entries" in report.notes
    )
    with runtime.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE custody_entries SET signature = NULL, key_id = NULL WHERE id = :i"),
            {"i": entries[3]},
        )
    assert _verify(runtime, full=True).lines() == [
        f"custody entry {entries[3]}: unsigned, although entries are signed since entry "
        f"{entries[2]} (signature removed or entry inserted)"
    ]


def test_upgrade_from_0008_keeps_old_rows_readable_as_unsigned(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url)
    upgrade(db.engine, "0008")
    fields: dict[str, Any] = {
        "evidence_id": 1,
        "at": utcnow(),
        "actor": "li",
        "action": "view",
        "detail": "old",
        "data": {},
        "prev_hash": custody.GENESIS,
    }
    with Session(db.engine) as s:  # cases and evidence are as they were at 0008
        case = Case(number="C-old", complainant_phone="13800138000")
        s.add(case)
        s.flush()
        s.add(
            Evidence(
                id=1,
                case_id=case.id,
                kind="document",
                sha256="0" * 64,
                size_bytes=0,
                media_type="text/plain",
                original_name="x",
            )
        )
        s.commit()
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(cast(sa.Table, CustodyEntry.__table__)).values(
                **fields, entry_hash=custody.entry_digest(**fields)
            )
        )
    upgrade(db.engine)
    settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, demo="never")
    with Session(db.engine) as s:
        from earwitness.evidence.store import BlobStore

        report = verify(s, BlobStore(settings.blob_dir), keys=CustodyKeys(settings))
        assert "custody entry 1: unsigned (written before signing) — 1 entry" in report.notes
        # Old rows are read, not crashed on; only this hand-made row's own gaps are named.
        assert not [line for line in report.lines() if line.startswith("custody")]
    db.dispose()


def test_rotation_keeps_old_public_keys(rt: Runtime) -> None:
    ids = _populate(rt, items=2, views=0)
    keys = CustodyKeys(rt.settings)
    before = keys.key_id
    old, new = keys.rotate()
    assert old == before and new != before
    assert stat.S_IMODE(keys.key_file.stat().st_mode) == 0o600
    _view(rt, ids[0])
    with rt.db.session() as s:
        used = [r for (r,) in s.execute(sa.select(CustodyEntry.key_id).order_by(CustodyEntry.id))]
    assert used == [before, before, new]
    assert sorted(p.stem for p in keys.public_dir.glob("*.pem")) == sorted([before, new])
    assert _verify(rt, full=True).ok


def test_rolled_back_entries_never_reach_the_head(rt: Runtime) -> None:
    ids = _populate(rt, items=1, views=0)
    keys = CustodyKeys(rt.settings)
    head_before = keys.read_doc(HEAD_FILE)[0]
    with pytest.raises(RuntimeError), rt.db.session() as s:
        open_for_view(s, rt.blobs, ids[0], "wang")[1].close()
        raise RuntimeError("request failed after the append")
    assert keys.read_doc(HEAD_FILE)[0] == head_before
    assert _verify(rt).ok


def test_unknown_case_is_not_found(rt: Runtime) -> None:
    with rt.db.session() as s, pytest.raises(NotFound, match="case 999 does not exist"):
        verify(s, rt.blobs, case_id=999)


def test_cli_verify_unknown_case_fails_and_full_flag(tmp_path: Path) -> None:
    env = {**os.environ, "EARWITNESS_DATA_DIR": str(tmp_path / "d"), "EARWITNESS_DEMO": "never"}
    cmd = [sys.executable, "-m", "earwitness.cli", "verify"]
    done = subprocess.run([*cmd, "--case", "999"], env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "case 999 does not exist" in done.stderr
    done = subprocess.run([*cmd, "--full", "--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mode"] == "full"
    keys = subprocess.run(
        [sys.executable, "-m", "earwitness.cli", "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert keys.returncode == 0 and "custody signing key is now" in keys.stdout


def test_api_entries_carry_request_id_and_verify_full(rt: Runtime) -> None:
    case_id = _case(rt)
    with api_client(rt) as client:
        resp = client.post(
            f"/api/cases/{case_id}/evidence",
            files={"file": ("a.txt", b"statement\n", "text/plain")},
            headers={"X-Request-ID": "req-7f3a"},
        )
        assert resp.status_code == 201, resp.text
        log = client.get(f"/api/evidence/{resp.json()['id']}/custody").json()
        assert log[0]["data"]["request_id"] == "req-7f3a" and log[0]["signature"]
        first = client.post("/api/evidence/verify").json()
        assert first["ok"] and {"evidence_checked", "entries_checked", "chain_head"} <= set(first)
        assert client.post("/api/evidence/verify").json()["mode"] == "incremental"
        full = client.post("/api/evidence/verify?full=true").json()
        assert full["ok"] and full["mode"] == "full" and full["signatures_checked"] == 1


def _verify_md_script(members: dict[str, bytes]) -> str:
    match = re.search(r"```sh\n(.*?)```", members["VERIFY.md"].decode(), re.S)
    assert match is not None
    return match.group(1)


def _write(members: dict[str, bytes], folder: Path) -> None:
    for name, data in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _run_script(members: dict[str, bytes], folder: Path) -> subprocess.CompletedProcess[str]:
    script = _verify_md_script(members)
    env = {"PATH": "/usr/bin:/bin"}  # bash, coreutils and openssl only
    return subprocess.run(
        ["bash", "-c", script], cwd=folder, capture_output=True, text=True, env=env
    )


def test_bundle_material_verifies_with_bash_and_openssl_only(rt: Runtime, tmp_path: Path) -> None:
    _populate(rt)
    keys = CustodyKeys(rt.settings)
    keys.rotate()  # entries signed by two keys
    _view(rt, 1)
    with rt.db.session() as s:
        entries = list(s.scalars(sa.select(CustodyEntry).order_by(CustodyEntry.id)))
        members = signing.bundle_material(s, rt.settings, entries)
    assert members["custody/entries/000001.json"] == custody.stored_bytes(entries[0])
    assert len(members["custody/entries/000001.sig"]) == 64
    assert {"custody/head.json", "custody/head.sig"} <= members.keys()
    assert len([n for n in members if n.startswith("keys/")]) == 2
    good = tmp_path / "good"
    _write(members, good)
    done = _run_script(members, good)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "custody log verified" in done.stdout
    assert done.stdout.count("Signature Verified Successfully") == len(entries) + 1

    for target in ("custody/entries/000003.json", "custody/entries/000003.sig"):
        bad = tmp_path / target.replace("/", "_")
        _write(members, bad)
        data = bytearray((bad / target).read_bytes())
        data[10] ^= 0x01
        (bad / target).write_bytes(bytes(data))
        done = _run_script(members, bad)
        assert done.returncode != 0 and "custody log verified" not in done.stdout
