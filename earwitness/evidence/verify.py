"""Recompute everything and say exactly what no longer matches.

Independent checks, each naming the item it blames:
- each blob is re-hashed against its name (``evidence 7: stored file changed``),
- each custody entry is re-hashed and linked to the one before
  (``custody entry 12: contents changed``, ``custody entry 13: chain broken``),
- each entry's Ed25519 signature is checked with the public key files: an insider who
  edits a row *and* recomputes every hash after it still fails here
  (``custody entry 12: signature does not match``, ``signed by unknown key <id>``),
- the signed chain head kept outside the database must still be in the chain, so
  deleting the newest entries shows (``custody entries after 54 were removed``),
- each evidence row is compared with what its ``intake`` entry recorded
  (``evidence 7: database row changed (size_bytes)``),
- stored RFC 3161 timestamp tokens are checked against the TSA's CA.

By default the chain walk starts at the last signed verify checkpoint (after re-checking
that entry); ``full=True`` walks every entry. Entries from before signing existed are
reported in a note, not as problems: the first signed entry's signature covers its
``prev_hash`` and so pins everything before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from earwitness.errors import EarwitnessError, NotFound
from earwitness.evidence import custody, timestamps
from earwitness.evidence.intake import intake_data
from earwitness.evidence.signing import (
    CHECKPOINT_FILE,
    HEAD_FILE,
    CustodyKeys,
    KeyRing,
    keys_for,
)
from earwitness.evidence.store import BlobStore
from earwitness.models import Case, CustodyEntry, Evidence

_COLUMNS = (
    CustodyEntry.id,
    CustodyEntry.evidence_id,
    CustodyEntry.at,
    CustodyEntry.actor,
    CustodyEntry.action,
    CustodyEntry.detail,
    CustodyEntry.data,
    CustodyEntry.prev_hash,
    CustodyEntry.entry_hash,
    CustodyEntry.signature,
    CustodyEntry.key_id,
)
_LABELS = {"evidence": "evidence", "custody_entry": "custody entry", "timestamp": "timestamp"}


@dataclass(frozen=True)
class Problem:
    item: str  # "evidence" | "custody_entry" | "timestamp" | "custody" (keys, head, checkpoint)
    id: int
    what: str

    def line(self) -> str:
        label = _LABELS.get(self.item)
        return f"{label} {self.id}: {self.what}" if label else self.what


@dataclass
class VerifyReport:
    evidence_checked: int = 0
    entries_checked: int = 0
    chain_head: str = custody.GENESIS
    problems: list[Problem] = field(default_factory=list)
    mode: str = "full"
    signatures_checked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "evidence_checked": self.evidence_checked,
            "entries_checked": self.entries_checked,
            "chain_head": self.chain_head,
            "problems": [asdict(p) | {"line": p.line()} for p in self.problems],
            "mode": self.mode,
            "signatures_checked": self.signatures_checked,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        """The verdict: one OK line, or one line per problem (notes are apart, in ``notes``)."""
        if self.ok:
            return [
                f"OK: {self.evidence_checked} evidence file(s) and {self.entries_checked} "
                f"custody entries verified; chain head {self.chain_head}"
            ]
        return [p.line() for p in self.problems]

    def add(self, item: str, id_: int, what: str) -> None:
        self.problems.append(Problem(item, id_, what))


def _check_blob(blobs: BlobStore, evidence: Evidence, report: VerifyReport) -> None:
    if not blobs.exists(evidence.sha256):
        report.add("evidence", evidence.id, "stored file is missing")
    elif not blobs.verify(evidence.sha256):
        report.add("evidence", evidence.id, "stored file changed (SHA-256 no longer matches)")


def _check_row(evidence: Evidence, intake: Row[Any] | None, report: VerifyReport) -> None:
    if intake is None:
        report.add("evidence", evidence.id, "has no intake custody entry")
        return
    recorded = intake.data or {}
    current = intake_data(evidence)
    changed = sorted(k for k in current if recorded.get(k) != current[k])
    if changed:
        report.add("evidence", evidence.id, f"database row changed ({', '.join(changed)})")


class _ChainWalk:
    """Walks entries in id order: hash, link, signature; folds runs of signature failures.

    After an entry is rewritten and the chain recomputed, *every* later signature fails;
    the first one is named, the rest summed up in one line instead of thousands.
    """

    def __init__(
        self, report: VerifyReport, ring: KeyRing | None, signed_since: int | None
    ) -> None:
        self.report, self.ring, self.signed_since = report, ring, signed_since
        self.prev_hash, self.prev_id = custody.GENESIS, None
        self.unsigned: list[int] = []
        self.failed: dict[str, list[int]] = {}

    def entry(self, row: Row[Any]) -> None:
        report = self.report
        report.entries_checked += 1
        blob = custody.stored_bytes(row)
        intact = hashlib.sha256(blob).hexdigest() == row.entry_hash
        if not intact:
            report.add("custody_entry", row.id, "contents changed")
        if row.prev_hash != self.prev_hash:
            before = f"entry {self.prev_id}" if self.prev_id is not None else "the chain start"
            report.add(
                "custody_entry",
                row.id,
                f"chain broken: does not follow {before} (an entry was changed, "
                "removed or inserted before it)",
            )
        if self.ring is not None and intact:
            self._signature(row, blob)
        self.prev_hash, self.prev_id = row.entry_hash, row.id

    def _signature(self, row: Row[Any], blob: bytes) -> None:
        assert self.ring is not None
        if row.signature is None or row.key_id is None:
            if self.signed_since is not None and row.id >= self.signed_since:
                self.report.add(
                    "custody_entry",
                    row.id,
                    f"unsigned, although entries are signed since entry {self.signed_since} "
                    "(signature removed or entry inserted)",
                )
            else:
                self.unsigned.append(row.id)
            return
        if self.signed_since is None:
            self.signed_since = row.id
        self.report.signatures_checked += 1
        try:
            signature = bytes.fromhex(row.signature)
        except ValueError:
            signature = b""
        problem = self.ring.check(blob, signature, row.key_id)
        if problem == "signature does not match":
            problem += " (entry rewritten and its hash recomputed)"
        if problem:
            self.failed.setdefault(problem, []).append(row.id)

    def finish(self) -> None:
        for what, ids in self.failed.items():
            self.report.add("custody_entry", ids[0], what)
            if len(ids) > 1:
                self.report.add(
                    "custody_entry",
                    ids[1],
                    f"{what}, like {len(ids) - 1} entries from here to entry {ids[-1]}",
                )
        if self.unsigned:
            first, last = self.unsigned[0], self.unsigned[-1]
            span = f"entry {first}" if first == last else f"entries {first}–{last}"
            self.report.notes.append(
                f"custody {span}: unsigned (written before signing) — "
                f"{len(self.unsigned)} entr{'y' if len(self.unsigned) == 1 else 'ies'}"
            )


def _entry_row(session: Session, entry_id: int) -> Row[Any] | None:
    return session.execute(select(*_COLUMNS).where(CustodyEntry.id == entry_id)).first()


def _resume_point(
    session: Session, keys: CustodyKeys, ring: KeyRing, report: VerifyReport
) -> Row[Any] | None:
    """The checkpoint entry, re-checked; None (walk everything) if absent or not intact."""
    doc, problem = keys.read_doc(CHECKPOINT_FILE, ring)
    if problem:
        report.add("custody", 0, f"verify checkpoint {problem}")
        return None
    if doc is None:
        return None
    cp_id, cp_hash = int(doc.body["entry_id"]), str(doc.body["entry_hash"])
    row = _entry_row(session, cp_id)
    if row is None:
        report.add("custody_entry", cp_id, "missing (it was verified before: last checkpoint)")
        return None
    walk = _ChainWalk(VerifyReport(), ring, None)
    walk.prev_hash, walk.prev_id = row.prev_hash, None
    walk.entry(row)
    walk.finish()
    if row.entry_hash != cp_hash or walk.report.problems:
        report.add("custody_entry", cp_id, "changed since it was verified (last checkpoint)")
        return None
    report.signatures_checked += walk.report.signatures_checked
    return row


def _check_head(
    session: Session, keys: CustodyKeys, ring: KeyRing, report: VerifyReport
) -> int | None:
    """The signed head must still be in the chain; returns the first signed entry id."""
    doc, problem = keys.read_doc(HEAD_FILE, ring)
    if problem:
        report.add("custody", 0, f"signed chain head {problem}")
        return None
    if doc is None:
        if session.scalar(select(CustodyEntry.id).where(CustodyEntry.signature.is_not(None))):
            report.add(
                "custody", 0, f"signed chain head {HEAD_FILE} is missing, yet entries are signed"
            )
        return None
    head_id, head_hash = int(doc.body["entry_id"]), str(doc.body["entry_hash"])
    stored = session.scalar(select(CustodyEntry.entry_hash).where(CustodyEntry.id == head_id))
    if stored is None:
        last = session.scalar(select(func.max(CustodyEntry.id))) or 0
        if last < head_id:
            report.add(
                "custody_entry",
                head_id,
                f"missing: custody entries after {last} were removed "
                f"(the signed chain head names entry {head_id})",
            )
        else:
            report.add("custody_entry", head_id, "missing (named by the signed chain head)")
    elif stored != head_hash:
        report.add(
            "custody_entry", head_id, f"differs from the signed chain head ({head_hash[:16]}…)"
        )
    return int(doc.body.get("signed_since", head_id))


def _intakes(session: Session, items: list[Evidence]) -> dict[int, Row[Any]]:
    """First intake entry per evidence; those the walk skipped get their own hash+signature
    check, so an old intake row cannot be edited together with its evidence row."""
    query = select(*_COLUMNS).where(CustodyEntry.action == "intake").order_by(CustodyEntry.id)
    if len(items) < 500:
        query = query.where(CustodyEntry.evidence_id.in_([e.id for e in items]))
    wanted = {e.id for e in items}
    found: dict[int, Row[Any]] = {}
    for row in session.execute(query):
        if row.evidence_id in wanted and row.evidence_id not in found:
            found[row.evidence_id] = row
    return found


def verify(
    session: Session,
    blobs: BlobStore,
    *,
    evidence_ids: list[int] | None = None,
    case_id: int | None = None,
    full: bool = False,
    keys: CustodyKeys | None = None,
) -> VerifyReport:
    """Verify all evidence, one case, or given items.

    The custody chain is shared by all evidence, so it is always walked (from the last
    checkpoint, or whole with ``full``) and any broken link is reported, whichever items
    were asked about. A clean report moves the signed checkpoint forward.
    """
    if case_id is not None and session.get(Case, case_id) is None:
        raise NotFound(f"case {case_id} does not exist")
    query = select(Evidence).order_by(Evidence.id)
    if evidence_ids is not None:
        query = query.where(Evidence.id.in_(evidence_ids))
    if case_id is not None:
        query = query.where(Evidence.case_id == case_id)
    items = list(session.scalars(query))
    if evidence_ids is not None and len(items) != len(set(evidence_ids)):
        missing = sorted(set(evidence_ids) - {e.id for e in items})
        raise NotFound(f"evidence {', '.join(map(str, missing))} does not exist")
    report = VerifyReport(evidence_checked=len(items))
    keys = keys if keys is not None else keys_for(session)
    ring = keys.keyring() if keys is not None else None
    signed_since: int | None = None
    start: Row[Any] | None = None
    if keys is None or ring is None:
        report.notes.append("signatures not checked: no custody key configured for this database")
    else:
        for bad in ring.bad_files:
            report.add("custody", 0, f"public key file {bad}")
        signed_since = _check_head(session, keys, ring, report)
        if not full:
            start = _resume_point(session, keys, ring, report)
    walk = _ChainWalk(report, ring, signed_since)
    entries = select(*_COLUMNS).order_by(CustodyEntry.id)
    if start is not None:
        report.mode = "incremental"
        report.notes.append(
            f"incremental: entries after verified checkpoint entry {start.id} were walked "
            "(--full re-checks every entry)"
        )
        walk.prev_hash, walk.prev_id = start.entry_hash, start.id
        entries = entries.where(CustodyEntry.id > start.id)
    intake_rows: dict[int, Row[Any]] = {}
    in_scope = {e.id for e in items}
    for row in session.execute(entries.execution_options(yield_per=2000)):
        walk.entry(row)
        if row.action == "intake" and row.evidence_id in in_scope:
            intake_rows.setdefault(row.evidence_id, row)
    walk.finish()
    report.chain_head = walk.prev_hash
    if start is not None:
        _check_old_intakes(session, items, ring, start.id, intake_rows, report)
    for evidence in items:
        _check_blob(blobs, evidence, report)
        _check_row(evidence, intake_rows.get(evidence.id), report)
    if keys is not None:
        timestamps.check(session, keys, report.add, report.notes)
    _drop_redundant_head_lines(report, {i for ids in walk.failed.values() for i in ids})
    report.problems.sort(key=lambda p: (p.item, p.id))
    if report.ok and keys is not None and walk.prev_id is not None:
        try:
            keys.advance_checkpoint(walk.prev_id, walk.prev_hash)
        except (OSError, EarwitnessError) as exc:  # e.g. an auditor who can't read the key
            report.notes.append(f"verify checkpoint not moved: {exc}")
    return report


def _drop_redundant_head_lines(report: VerifyReport, blamed: set[int]) -> None:
    """A head mismatch adds nothing when that entry's own check already failed."""
    for p in report.problems:
        if p.item == "custody_entry" and "signed chain head" not in p.what:
            blamed.add(p.id)
    report.problems[:] = [
        p
        for p in report.problems
        if not (p.id in blamed and p.what.startswith("differs from the signed chain head"))
    ]


def _check_old_intakes(
    session: Session,
    items: list[Evidence],
    ring: KeyRing | None,
    checkpoint_id: int,
    found: dict[int, Row[Any]],
    report: VerifyReport,
) -> None:
    """Intake entries before the checkpoint, re-checked one by one (one per evidence)."""
    for evidence_id, row in _intakes(session, items).items():
        if row.id > checkpoint_id:
            continue  # the walk saw it
        found[evidence_id] = row
        single = _ChainWalk(VerifyReport(), ring, None)
        single.prev_hash = row.prev_hash
        single.entry(row)
        single.finish()
        for problem in single.report.problems:
            report.add(problem.item, problem.id, problem.what)
        report.signatures_checked += single.report.signatures_checked
