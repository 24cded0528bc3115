"""RFC 3161 trusted timestamps of the signed custody head.

A signature proves *who* vouched for the chain, not *when*: whoever holds the key could
re-sign a rewritten history later. A token from an independent timestamp authority
(TSA) over the head proves the chain up to that entry existed at that time.

What is stamped ("covered") is the canonical JSON ``{"entry_hash": ..., "entry_id": ...}``
of the signed head, so an outsider re-creates it from the bundle and runs
``openssl ts -verify -data <covered.json> -in <token.tsr> -token_in -CAfile <ca.pem>``.

The TimeStampReq is built by a few lines of DER here rather than ``openssl ts -query``:
it is a fixed 5-field structure, building it needs no temp files or subprocess, and it
lets us choose the nonce. Checking a token's CMS signature is not a few lines, so that
is left to ``openssl ts -verify`` (both when a token arrives, with the request file so
the nonce and imprint are checked too, and in ``verify``).

Tokens are stored in ``custody_timestamps`` *and* as files in ``keys/timestamps/``
(``<n>.tsr`` + ``<n>.json``, the covered bytes), so deleting the row is noticed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import ConfigError, Conflict, ServiceUnavailable
from earwitness.evidence.signing import HEAD_FILE, CustodyKeys, canonical_json, write_atomic
from earwitness.jobs.registry import JobContext, job_handler
from earwitness.models import CustodyEntry
from earwitness.models.evidence import CustodyTimestamp

TOKEN_DIR = "timestamps"
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")  # {sha256 OID, NULL}
_MAX_REPLY = 1 << 20


def covered_bytes(entry_id: int, entry_hash: str) -> bytes:
    return canonical_json({"entry_id": entry_id, "entry_hash": entry_hash})


# -- DER -------------------------------------------------------------------------------
def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def build_request(digest: bytes, nonce: int) -> bytes:
    """TimeStampReq {version 1, messageImprint {sha256, digest}, nonce, certReq TRUE}."""
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, digest))
    return _der(0x30, _der_int(1) + imprint + _der_int(nonce) + b"\x01\x01\xff")


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length, pos = data[pos], data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def token_from_response(reply: bytes) -> bytes:
    """The TimeStampToken of a granted TimeStampResp; ServiceUnavailable otherwise."""
    try:
        _, start, end = _tlv(reply, 0)
        _, status_start, status_end = _tlv(reply, start)
        _, int_start, int_end = _tlv(reply, status_start)
        status = int.from_bytes(reply[int_start:int_end], "big")
        if status not in (0, 1):  # granted, grantedWithMods
            raise ServiceUnavailable(f"the timestamp authority refused (PKIStatus {status})")
        if status_end >= end:
            raise ValueError("no token in a granted reply")
        _, _, token_end = _tlv(reply, status_end)
        return reply[status_end:token_end]
    except ValueError as exc:
        raise ServiceUnavailable(f"unreadable timestamp authority reply ({exc})") from None


# -- openssl ---------------------------------------------------------------------------
def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        raise ServiceUnavailable("openssl is not installed: timestamp tokens cannot be checked")
    return path


def check_token(
    token: bytes, covered: bytes, ca_file: Path, *, request: bytes | None = None
) -> str | None:
    """None when ``openssl ts -verify`` accepts the token for these bytes, else its reason."""
    with tempfile.TemporaryDirectory(prefix="ew-ts-") as tmp:
        token_file = Path(tmp) / "token.tsr"
        token_file.write_bytes(token)
        args = [_openssl(), "ts", "-verify", "-token_in", "-in", str(token_file)]
        args += ["-CAfile", str(ca_file)]
        if request is not None:  # checks the nonce as well as the imprint
            (Path(tmp) / "req.tsq").write_bytes(request)
            args += ["-queryfile", str(Path(tmp) / "req.tsq")]
        else:
            args += ["-digest", hashlib.sha256(covered).hexdigest(), "-sha256"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if done.returncode == 0 and "Verification: OK" in done.stdout:
        return None
    reason = [ln for ln in done.stderr.splitlines() if "error" in ln.lower()]
    return reason[0].strip() if reason else (done.stderr.strip() or done.stdout.strip())[:200]


def request_token(url: str, ca_file: Path, covered: bytes, timeout_s: float) -> bytes:
    """POST a TimeStampReq over ``covered`` to the TSA; the checked token comes back."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"tsa_url must be an http(s) URL, not {url!r}")
    query = build_request(hashlib.sha256(covered).digest(), secrets.randbits(63))
    post = urllib.request.Request(
        url,
        data=query,
        method="POST",
        headers={
            "Content-Type": "application/timestamp-query",
            "Accept": "application/timestamp-reply",
        },
    )
    try:
        with urllib.request.urlopen(post, timeout=timeout_s) as reply:  # noqa: S310 (http only)
            body = reply.read(_MAX_REPLY)
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailable(f"timestamp authority {url} unreachable: {exc}") from None
    token = token_from_response(body)
    problem = check_token(token, covered, ca_file, request=query)
    if problem:
        raise ServiceUnavailable(f"timestamp authority {url} sent a token that fails: {problem}")
    return token


# -- stamping the head -----------------------------------------------------------------
@dataclass(frozen=True)
class StampResult:
    status: str  # "stamped" | "unchanged" | "skipped"
    detail: str
    entry_id: int | None = None
    timestamp_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def timestamp_head(session: Session, keys: CustodyKeys) -> StampResult:
    """Get a TSA token over the current signed head (once per head entry)."""
    settings = keys.settings
    if not settings.tsa_url:
        return StampResult("skipped", "no timestamp authority configured (tsa_url unset)")
    if settings.tsa_ca_path is None:
        raise ConfigError("tsa_url is set but tsa_ca_path is not: its tokens cannot be checked")
    doc, problem = keys.read_doc(HEAD_FILE)
    if problem:
        raise Conflict(f"the signed chain head is not valid ({problem}); run earwitness verify")
    if doc is None:
        return StampResult("skipped", "no signed custody entries yet")
    entry_id, entry_hash = int(doc.body["entry_id"]), str(doc.body["entry_hash"])
    stored = session.scalar(select(CustodyEntry.entry_hash).where(CustodyEntry.id == entry_id))
    if stored != entry_hash:
        raise Conflict(f"custody entry {entry_id} no longer matches the signed head; run verify")
    done = session.scalar(select(CustodyTimestamp.id).where(CustodyTimestamp.entry_id == entry_id))
    if done is not None:
        return StampResult("unchanged", f"entry {entry_id} is already timestamped", entry_id, done)
    covered = covered_bytes(entry_id, entry_hash)
    token = request_token(settings.tsa_url, settings.tsa_ca_path, covered, settings.tsa_timeout_s)
    row = CustodyTimestamp(
        entry_id=entry_id, entry_hash=entry_hash, tsa_url=settings.tsa_url, token=token
    )
    session.add(row)
    session.flush()
    folder = keys.dir / TOKEN_DIR
    write_atomic(folder / f"{row.id:06d}.json", covered)
    write_atomic(folder / f"{row.id:06d}.tsr", token)
    return StampResult("stamped", f"head entry {entry_id} timestamped", entry_id, row.id)


@job_handler("custody.timestamp", max_attempts=5, backoff_s=60.0)
def timestamp_job(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point (enqueue ``custody.timestamp`` from cron or after busy hours)."""
    keys = CustodyKeys(ctx.env.settings)
    with ctx.env.db.session() as session:
        return timestamp_head(session, keys).as_dict()


# -- checking stored tokens ------------------------------------------------------------
def stored_tokens(keys: CustodyKeys) -> dict[int, tuple[bytes, bytes]]:
    """Token files by number: (covered bytes, token)."""
    found: dict[int, tuple[bytes, bytes]] = {}
    folder = keys.dir / TOKEN_DIR
    for path in sorted(folder.glob("*.tsr")) if folder.is_dir() else []:
        if path.stem.isdigit():
            covered = path.with_suffix(".json")
            found[int(path.stem)] = (
                covered.read_bytes() if covered.exists() else b"",
                path.read_bytes(),
            )
    return found


def check(
    session: Session,
    keys: CustodyKeys,
    add: Callable[[str, int, str], None],
    notes: list[str],
) -> None:
    """Compare token rows with token files, the chain and the TSA's CA; report through ``add``."""
    settings = keys.settings
    rows = {r.id: r for r in session.scalars(select(CustodyTimestamp))}
    files = stored_tokens(keys)
    if not rows and not files:
        if not settings.tsa_url:
            notes.append("trusted timestamps: not configured (tsa_url unset), skipped")
        else:
            notes.append("trusted timestamps: none yet (run earwitness keys timestamp)")
        return
    for number, row in rows.items():
        if number not in files:
            add("timestamp", number, "token file is missing (database row remains)")
        elif files[number][1] != row.token:
            add("timestamp", number, "token in the database differs from its file")
    for number in files.keys() - rows.keys():
        add("timestamp", number, "database row was deleted (its token file remains)")
    for number, (covered, _token) in files.items():
        try:
            what = json.loads(covered)
            entry_id, entry_hash = int(what["entry_id"]), str(what["entry_hash"])
        except (ValueError, KeyError, TypeError):
            add("timestamp", number, "covered-data file is missing or unreadable")
            continue
        stored = session.scalar(select(CustodyEntry.entry_hash).where(CustodyEntry.id == entry_id))
        if stored != entry_hash:
            add("timestamp", number, f"covers custody entry {entry_id}, now changed or removed")
    if settings.tsa_ca_path is None:
        notes.append(f"trusted timestamps: {len(files)} token(s) not checked (tsa_ca_path unset)")
        return
    for number, (covered, token) in files.items():
        problem = check_token(token, covered, settings.tsa_ca_path)
        if problem:
            add("timestamp", number, f"token does not verify: {problem}")
    notes.append(f"trusted timestamps: {len(files)} token(s) checked with {settings.tsa_ca_path}")
