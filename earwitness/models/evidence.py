"""Evidence items (content-addressed, never modified), their signed custody log, timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from earwitness.models.base import Base, utcnow


class Evidence(Base):
    """A file filed on a case; ``sha256`` names its blob in the store."""

    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("case_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # recording|transcript|track|document
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int]
    media_type: Mapped[str] = mapped_column(String(100))
    original_name: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_by: Mapped[str | None] = mapped_column(String(120))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Where the file came from (upload, cli, pbx, platform export ...), free text.
    source: Mapped[str] = mapped_column(String(200), default="")
    # Evidence is never edited: a correction is a new item pointing at the one it replaces.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("evidence.id"), index=True)
    supersede_reason: Mapped[str | None] = mapped_column(String(500))
    custody: Mapped[list[CustodyEntry]] = relationship(
        back_populates="evidence", order_by="CustodyEntry.id", cascade="all, delete-orphan"
    )


class CustodyEntry(Base):
    """One custody event; ``entry_hash`` covers ``prev_hash`` so a gap or edit shows.

    The chain is global (ordered by id across all evidence): removing any entry but the
    newest breaks it. ``prev_hash`` is unique so two writers can never fork the chain.
    ``signature`` (Ed25519 over the very bytes ``entry_hash`` hashes, by the key named
    ``key_id``) is what an insider with database access cannot recompute; both are
    NULL on rows written before signing existed.
    """

    __tablename__ = "custody_entries"
    __table_args__ = (UniqueConstraint("prev_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    evidence_id: Mapped[int] = mapped_column(ForeignKey("evidence.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str | None] = mapped_column(String(128))  # hex of 64 bytes
    key_id: Mapped[str | None] = mapped_column(String(16))
    evidence: Mapped[Evidence] = relationship(back_populates="custody")


class CustodyTimestamp(Base):
    """An RFC 3161 token from a trusted timestamping authority over one chain head.

    No foreign key to ``custody_entries`` on purpose: the token is proof *about* the
    chain and must outlive whatever happens to its rows (verify compares the two). The
    same token is also written as a file in the key directory, so deleting the row is
    noticed too.
    """

    __tablename__ = "custody_timestamps"
    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(index=True)
    entry_hash: Mapped[str] = mapped_column(String(64))
    tsa_url: Mapped[str] = mapped_column(Text)
    token: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
