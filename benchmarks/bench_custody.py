"""Cost of signing the custody log: intake with vs without Ed25519, and incremental verify.

Two measurements, each against its baseline in the same process (SQLite, embedded default):

- ``custody_intake``: filing one small evidence item (hash + store the blob, evidence
  row, intake custody entry, commit) with signing (Ed25519 signature + signed head file
  written after commit) vs the same code with signing detached (plain hash chain).
  ``ratio`` = unsigned time / signed time (<1: signing costs that fraction).
- ``custody_verify``: ``verify`` of a chain of 100,000 signed entries after 100 new ones,
  incremental (from the signed checkpoint) vs ``full=True`` (every hash, link and
  signature). ``ratio`` = full time / incremental time.

Sizes: ``EARWITNESS_BENCH_CUSTODY_ENTRIES`` (default 100000), ``..._ITEMS`` (default 300).
Run: ``python -m benchmarks custody``.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from earwitness.config import load_settings  # noqa: E402
from earwitness.db import Database  # noqa: E402
from earwitness.evidence import custody, signing  # noqa: E402
from earwitness.evidence.intake import IntakeRequest, intake, open_for_view  # noqa: E402
from earwitness.evidence.signing import CustodyKeys  # noqa: E402
from earwitness.evidence.store import BlobStore  # noqa: E402
from earwitness.evidence.verify import verify  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402
from earwitness.models import Case, CustodyEntry, utcnow  # noqa: E402

ENTRIES = int(os.environ.get("EARWITNESS_BENCH_CUSTODY_ENTRIES", "100000"))
ITEMS = int(os.environ.get("EARWITNESS_BENCH_CUSTODY_ITEMS", "300"))
EVIDENCE = 100  # items the big chain's entries are about (each blob re-hashed by verify)


def _setup(folder: Path, signed: bool) -> tuple[Database, BlobStore, CustodyKeys, int]:
    settings = load_settings(data_dir=folder, demo="never")
    db = Database(settings.resolved_database_url)
    upgrade(db.engine)
    keys = signing.attach(db.engine, settings)
    if not signed:
        signing.detach(db.engine)
    with db.session() as s:
        case = Case(number="B-1", complainant_phone="13800138000")
        s.add(case)
        s.flush()
        case_id = case.id
    return db, BlobStore(settings.blob_dir), keys, case_id


def _intake_seconds(folder: Path, signed: bool) -> float:
    db, blobs, _, case_id = _setup(folder, signed)
    start = time.perf_counter()
    for i in range(ITEMS):
        with db.session() as s:
            data = f"statement {i} {signed}\n".encode() * 20
            intake(s, blobs, IntakeRequest(case_id, f"s{i}.txt", "li"), io.BytesIO(data))
    seconds = (time.perf_counter() - start) / ITEMS
    db.dispose()
    return seconds


def _sign_seconds() -> float:
    key = Ed25519PrivateKey.generate()
    blob = b'{"action":"view","actor":"wang","at":"2026-11-29T08:00:00.000000+00:00"}' * 3
    start = time.perf_counter()
    for _ in range(5000):
        key.sign(blob)
    return (time.perf_counter() - start) / 5000


def _big_chain(folder: Path) -> tuple[Database, BlobStore, CustodyKeys, list[int]]:
    """EVIDENCE real intakes, then signed ``view`` entries bulk-inserted up to ENTRIES."""
    db, blobs, keys, case_id = _setup(folder, signed=True)
    ids = []
    for i in range(EVIDENCE):
        with db.session() as s:
            data = f"item {i}\n".encode()
            ids.append(intake(s, blobs, IntakeRequest(case_id, f"i{i}", "li"), io.BytesIO(data)).id)
    with db.session() as s:
        prev = custody.chain_head(s)
        at = utcnow()
        rows: list[dict[str, Any]] = []
        for n in range(ENTRIES - EVIDENCE):
            fields: dict[str, Any] = {
                "evidence_id": ids[n % EVIDENCE],
                "at": at + timedelta(milliseconds=n),
                "actor": "wang",
                "action": "view",
                "detail": "read for the weekly review",
                "data": {},
                "prev_hash": prev,
            }
            blob = custody.entry_bytes(**fields)
            signature, key_id = keys.sign(blob)
            prev = hashlib.sha256(blob).hexdigest()
            rows.append(
                fields | {"entry_hash": prev, "signature": signature.hex(), "key_id": key_id}
            )
            if len(rows) == 5000:
                s.execute(insert(CustodyEntry), rows)
                rows = []
        if rows:
            s.execute(insert(CustodyEntry), rows)
        last = s.scalar(select(CustodyEntry.id).order_by(CustodyEntry.id.desc()))
    assert last is not None
    keys.advance_head(last, prev, 1)
    return db, blobs, keys, ids


def _verify_seconds(db: Database, blobs: BlobStore, keys: CustodyKeys, full: bool) -> float:
    start = time.perf_counter()
    with db.session() as s:
        report = verify(s, blobs, full=full, keys=keys)
    seconds = time.perf_counter() - start
    assert report.ok, report.lines()[:3]
    assert report.mode == ("full" if full else "incremental")
    return seconds


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ew-bench-custody-") as tmp:
        root = Path(tmp)
        unsigned = _intake_seconds(root / "unsigned", signed=False)
        signed = _intake_seconds(root / "signed", signed=True)
        sign_alone = _sign_seconds()
        db, blobs, keys, ids = _big_chain(root / "chain")
        first_full = _verify_seconds(db, blobs, keys, full=True)  # writes the checkpoint
        for n in range(100):
            with db.session() as s:
                open_for_view(s, blobs, ids[n % EVIDENCE], "wang")[1].close()
        incremental = _verify_seconds(db, blobs, keys, full=False)
        full = _verify_seconds(db, blobs, keys, full=True)
        db.dispose()
    return [
        f"custody_intake: ours {signed * 1000:.2f} ms/item (signed), baseline "
        f"{unsigned * 1000:.2f} ms/item (unsigned), ratio {unsigned / signed:.2f} "
        f"({ITEMS} intakes, each its own commit; one Ed25519 signature alone "
        f"{sign_alone * 1e6:.0f} µs)",
        f"custody_verify: ours {incremental:.3f} s (incremental), baseline {full:.3f} s "
        f"(full), ratio {full / incremental:.1f} ({ENTRIES + 100:,} signed entries, "
        f"{EVIDENCE} evidence files re-hashed both ways; first full walk {first_full:.2f} s)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
