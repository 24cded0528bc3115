"""Recompute everything and say exactly what no longer matches.

Three independent checks, each naming the item it blames:
- each blob is re-hashed against its name (``evidence 7: stored file changed``),
- each custody entry is re-hashed and linked to the one before
  (``custody entry 12: contents changed``, ``custody entry 13: chain broken``),
- each evidence row is compared with what its ``intake`` entry recorded
  (``evidence 7: database row changed (size_bytes)``).
A report with no problems also gives the chain head, which can be written down
elsewhere to catch a rewrite of the newest entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import NotFound
from earwitness.evidence import custody
from earwitness.evidence.intake import intake_data
from earwitness.evidence.store import BlobStore
from earwitness.models import CustodyEntry, Evidence


@dataclass(frozen=True)
class Problem:
    item: str  # "evidence" | "custody_entry"
    id: int
    what: str

    def line(self) -> str:
        label = "evidence" if self.item == "evidence" else "custody entry"
        return f"{label} {self.id}: {self.what}"


@dataclass
class VerifyReport:
    evidence_checked: int = 0
    entries_checked: int = 0
    chain_head: str = custody.GENESIS
    problems: list[Problem] = field(default_factory=list)

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
        }

    def lines(self) -> list[str]:
        if self.ok:
            return [
                f"OK: {self.evidence_checked} evidence file(s) and {self.entries_checked} "
                f"custody entries verified; chain head {self.chain_head}"
            ]
        return [p.line() for p in self.problems]


def _check_blob(blobs: BlobStore, evidence: Evidence, report: VerifyReport) -> None:
    if not blobs.exists(evidence.sha256):
        report.problems.append(Problem("evidence", evidence.id, "stored file is missing"))
    elif not blobs.verify(evidence.sha256):
        report.problems.append(
            Problem("evidence", evidence.id, "stored file changed (SHA-256 no longer matches)")
        )


def _check_row(evidence: Evidence, intake: CustodyEntry | None, report: VerifyReport) -> None:
    if intake is None:
        report.problems.append(Problem("evidence", evidence.id, "has no intake custody entry"))
        return
    recorded = intake.data or {}
    current = intake_data(evidence)
    changed = sorted(k for k in current if recorded.get(k) != current[k])
    if changed:
        report.problems.append(
            Problem("evidence", evidence.id, f"database row changed ({', '.join(changed)})")
        )


def _check_chain(entries: list[CustodyEntry], report: VerifyReport) -> None:
    """Walk the whole global chain; a scoped verify still needs every link before it."""
    prev_stored = custody.GENESIS
    prev_id: int | None = None
    for entry in entries:
        report.entries_checked += 1
        if custody.recompute(entry) != entry.entry_hash:
            report.problems.append(Problem("custody_entry", entry.id, "contents changed"))
        if entry.prev_hash != prev_stored:
            before = f"entry {prev_id}" if prev_id is not None else "the chain start"
            report.problems.append(
                Problem(
                    "custody_entry",
                    entry.id,
                    f"chain broken: does not follow {before} (an entry was changed, "
                    "removed or inserted before it)",
                )
            )
        prev_stored, prev_id = entry.entry_hash, entry.id
    report.chain_head = prev_stored


def verify(
    session: Session,
    blobs: BlobStore,
    *,
    evidence_ids: list[int] | None = None,
    case_id: int | None = None,
) -> VerifyReport:
    """Verify all evidence, one case, or given items.

    The custody chain is shared by all evidence, so it is always walked whole and any
    broken link is reported, whichever items were asked about.
    """
    query = select(Evidence).order_by(Evidence.id)
    if evidence_ids is not None:
        query = query.where(Evidence.id.in_(evidence_ids))
    if case_id is not None:
        query = query.where(Evidence.case_id == case_id)
    items = list(session.scalars(query))
    if evidence_ids is not None and len(items) != len(set(evidence_ids)):
        missing = sorted(set(evidence_ids) - {e.id for e in items})
        raise NotFound(f"evidence {', '.join(map(str, missing))} does not exist")
    entries = list(session.scalars(select(CustodyEntry).order_by(CustodyEntry.id)))
    report = VerifyReport(evidence_checked=len(items))
    _check_chain(entries, report)
    intake_by_evidence: dict[int, CustodyEntry] = {}
    for entry in entries:
        if entry.action == "intake":
            intake_by_evidence.setdefault(entry.evidence_id, entry)
    for evidence in items:
        _check_blob(blobs, evidence, report)
        _check_row(evidence, intake_by_evidence.get(evidence.id), report)
    report.problems.sort(key=lambda p: (p.item, p.id))
    return report
