"""Ed25519 keys that sign the custody log, kept outside the database they protect.

A hash chain alone proves nothing to someone who can write the database: they edit an
entry and recompute every hash after it. A signature made with a key that lives only
in the data directory (``<data_dir>/keys/custody-ed25519.pem``, mode 0600) cannot be
recomputed that way. Public keys stay as files (``keys/public/<key_id>.pem``, the id
being the first 16 hex digits of SHA-256 over the raw 32-byte key) so entries signed
before a rotation still verify, and so a verifier needs no private material.

Two small signed documents live beside the keys, also outside the database:
- the chain head (``custody-head.json``): the newest committed entry's id and hash,
  only ever moved forward, so deleting the newest entries is caught;
- the verify checkpoint (``verify-checkpoint.json``): the last entry a full walk
  found good, so the next ``verify`` starts there.

Layout:  keys/custody-ed25519.pem   private key (setting ``custody_key_path``)
         keys/public/<key_id>.pem   every public key ever used
         keys/custody-head.json     {"body": {...}, "key_id": ..., "signature": hex}
         keys/verify-checkpoint.json
         keys/timestamps/           RFC 3161 tokens (earwitness/evidence/timestamps.py)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from earwitness.config import Settings
from earwitness.errors import ConfigError, StorageError
from earwitness.models import utcnow

log = logging.getLogger(__name__)
HEAD_FILE = "custody-head.json"
CHECKPOINT_FILE = "verify-checkpoint.json"


def canonical_json(payload: dict[str, Any]) -> bytes:
    """The one byte spelling of a JSON object that is hashed and signed."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def key_id_of(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class SignedDoc:
    """A small JSON document signed by a custody key (the head, the checkpoint)."""

    body: dict[str, Any]
    key_id: str
    signature: bytes

    @property
    def body_bytes(self) -> bytes:
        return canonical_json(self.body)


@dataclass
class KeyRing:
    """The public keys a verifier trusts, read from ``keys/public``; misnamed files flagged."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    bad_files: list[str] = field(default_factory=list)

    def check(self, data: bytes, signature: bytes, key_id: str) -> str | None:
        """None when valid, else what is wrong in words."""
        public = self.keys.get(key_id)
        if public is None:
            return f"signed by unknown key {key_id}"
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return "signature does not match"
        return None


class CustodyKeys:
    """The signing key, public keys and signed documents of one data directory.

    Thread- and process-safe: the private key is created with an exclusive link, and
    documents are replaced under ``flock`` by a rename. The private key is re-read when
    its file changes, so ``keys rotate`` takes effect in running processes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key_file = settings.custody_key_file
        self.dir = settings.custody_key_dir
        self.public_dir = self.dir / "public"
        self._private: Ed25519PrivateKey | None = None
        self._key_id = ""
        self._stamp: tuple[int, int] | None = None

    # -- private key ----------------------------------------------------------------
    def _load(self) -> Ed25519PrivateKey:
        try:
            st = self.key_file.stat()
        except FileNotFoundError:
            self._create()
            st = self.key_file.stat()
        stamp = (st.st_ino, st.st_mtime_ns)
        if self._private is not None and stamp == self._stamp:
            return self._private
        if st.st_mode & 0o077:
            log.warning("custody key %s is readable by others (mode %o)", self.key_file, st.st_mode)
        try:
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read custody key {self.key_file}: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"custody key {self.key_file} is not an Ed25519 key")
        self._private, self._stamp = key, stamp
        self._key_id = key_id_of(key.public_key())
        self._publish(key.public_key())
        return key

    def _create(self) -> None:
        """First use: a new key, linked into place only if no other process won the race."""
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        self._publish(key.public_key())
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.new")
        _write_private(tmp, key)
        try:
            os.link(tmp, self.key_file)
            log.info("created custody signing key %s", key_id_of(key.public_key()))
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            tmp.unlink(missing_ok=True)

    def _publish(self, public: Ed25519PublicKey) -> None:
        path = self.public_dir / f"{key_id_of(public)}.pem"
        if not path.exists():
            write_atomic(path, public_pem(public))

    def rotate(self) -> tuple[str | None, str]:
        """A new signing key; the old public key stays for verifying what it signed."""
        old = self.key_id if self.key_file.exists() else None
        key = Ed25519PrivateKey.generate()
        self._publish(key.public_key())
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}.new")
        _write_private(tmp, key)
        os.replace(tmp, self.key_file)
        return old, self.key_id

    @property
    def key_id(self) -> str:
        self._load()
        return self._key_id

    def sign(self, data: bytes) -> tuple[bytes, str]:
        """(64-byte signature, key id) — one Ed25519 signature, tens of microseconds."""
        key = self._load()
        return key.sign(data), self._key_id

    # -- public keys ----------------------------------------------------------------
    def keyring(self) -> KeyRing:
        ring = KeyRing()
        if not self.public_dir.is_dir():
            return ring
        for path in sorted(self.public_dir.glob("*.pem")):
            try:
                public = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError):
                ring.bad_files.append(f"{path.name}: not a readable public key")
                continue
            if not isinstance(public, Ed25519PublicKey):
                ring.bad_files.append(f"{path.name}: not an Ed25519 public key")
            elif key_id_of(public) != path.stem:
                ring.bad_files.append(
                    f"{path.name}: holds key {key_id_of(public)}, not {path.stem} (file swapped)"
                )
            else:
                ring.keys[path.stem] = public
        return ring

    # -- signed documents -----------------------------------------------------------
    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (self.dir / f".{name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_doc(self, name: str, body: dict[str, Any]) -> None:
        signature, key_id = self.sign(canonical_json(body))
        doc = {"body": body, "key_id": key_id, "signature": signature.hex()}
        write_atomic(self.dir / name, json.dumps(doc, indent=1, sort_keys=True).encode())

    def read_doc(self, name: str, ring: KeyRing | None = None) -> tuple[SignedDoc | None, str]:
        """(document, "") when present and validly signed; (doc or None, problem) otherwise."""
        path = self.dir / name
        try:
            raw = json.loads(path.read_bytes())
            doc = SignedDoc(raw["body"], str(raw["key_id"]), bytes.fromhex(raw["signature"]))
        except FileNotFoundError:
            return None, ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{path.name} is unreadable ({exc})"
        problem = (ring or self.keyring()).check(doc.body_bytes, doc.signature, doc.key_id)
        return doc, f"{path.name}: {problem}" if problem else ""

    def advance_head(self, entry_id: int, entry_hash: str, signed_since: int) -> None:
        """Move the signed head to this entry, never backwards (several writers may race)."""
        with self._locked(HEAD_FILE):
            current, problem = self.read_doc(HEAD_FILE)
            if problem:
                # Overwriting would hide the damage; verify keeps reporting it instead.
                log.error("not moving the custody head: %s", problem)
                return
            if current is not None:
                if int(current.body["entry_id"]) >= entry_id:
                    return
                signed_since = min(signed_since, int(current.body["signed_since"]))
            body = {
                "entry_id": entry_id,
                "entry_hash": entry_hash,
                "signed_since": signed_since,
                "key_id": self.key_id,
                "written_at": utcnow().isoformat(timespec="seconds"),
            }
            self._write_doc(HEAD_FILE, body)

    def advance_checkpoint(self, entry_id: int, entry_hash: str) -> None:
        with self._locked(CHECKPOINT_FILE):
            current, problem = self.read_doc(CHECKPOINT_FILE)
            if current is not None and not problem and int(current.body["entry_id"]) >= entry_id:
                return
            body = {
                "entry_id": entry_id,
                "entry_hash": entry_hash,
                "verified_at": utcnow().isoformat(timespec="seconds"),
            }
            self._write_doc(CHECKPOINT_FILE, body)


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


# -- which keys sign a given database ---------------------------------------------------
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, CustodyKeys | None] = weakref.WeakKeyDictionary()


def attach(engine: Engine, settings: Settings) -> CustodyKeys:
    """Make every custody entry written through ``engine`` signed with ``settings``' key.

    The runtime calls this once per database; tests and tools that build their own
    engine call it themselves.
    """
    keys = CustodyKeys(settings)
    _BY_ENGINE[engine] = keys
    return keys


def detach(engine: Engine) -> None:
    """Stop signing through ``engine`` (benchmarks measure the unsigned baseline this way)."""
    _BY_ENGINE[engine] = None


def keys_for(session: Session) -> CustodyKeys | None:
    """The keys attached to the session's database (``Runtime.open`` attaches them).

    A database nobody attached keys to gets none: its entries stay unsigned and
    ``verify`` says signatures were not checked.
    """
    explicit = session.info.get("custody_keys")
    if isinstance(explicit, CustodyKeys):
        return explicit
    engine = session.get_bind()
    if not isinstance(engine, Engine):
        engine = engine.engine
    return _BY_ENGINE.get(engine)


def require_keys(session: Session) -> CustodyKeys:
    keys = keys_for(session)
    if keys is None:
        raise StorageError("no custody key is configured for this database")
    return keys


# -- what a case bundle carries so an outsider can check it with openssl alone ----------
VERIFY_MD = """# Verifying this bundle's custody log without earwitness

Needs only `sh`, `sha256sum` and OpenSSL 3 (`openssl pkeyutl -rawin`). Run in the bundle's
top directory; every command must succeed (the script stops at the first failure).

- `custody/entries/<id>.json` are the exact bytes each custody entry's hash and Ed25519
  signature cover; `custody/entries/<id>.sig` the raw 64-byte signature.
- `custody/entries.sha256` lists each entry's chain hash (`entry_hash`): each entry's
  `prev_hash` is the hash of the entry before it in the whole chain (shared by all cases,
  so consecutive ids of this bundle link up; gaps are other cases' entries).
- `custody/head.json` + `.sig`: the signed chain head when the bundle was made.
- `keys/<key_id>.pem`: the public keys; a key's id is the first 16 hex digits of SHA-256
  over its raw 32 bytes (step 1). Compare them with the ids published by the operator.
- `timestamps/<n>.tsr`: RFC 3161 tokens over `timestamps/<n>.json` (a head entry id and
  hash), checked against the TSA's CA `timestamps/tsa-ca.pem`.

```sh
set -e
# 1. each public key file holds the key its name says
for k in keys/*.pem; do
  id=$(openssl pkey -pubin -in "$k" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
  [ "keys/$id.pem" = "$k" ] || { echo "$k: holds key $id"; exit 1; }
done
# 2. each entry file hashes to its recorded chain hash
sha256sum -c custody/entries.sha256
# 3. each signature (entries, then the head) with the key named in signatures.txt
while read -r name key; do
  if [ "$name" = head ]; then f=custody/head; else f="custody/entries/$name"; fi
  openssl pkeyutl -verify -pubin -inkey "keys/$key.pem" -rawin -in "$f.json" -sigfile "$f.sig"
done < custody/signatures.txt
# 4. trusted timestamps (if the operator configured a timestamp authority)
for t in timestamps/*.tsr; do
  [ -e "$t" ] || continue
  openssl ts -verify -token_in -in "$t" -data "${t%.tsr}.json" -CAfile timestamps/tsa-ca.pem
done
echo "custody log verified"
```
"""


def bundle_material(session: Session, settings: Settings, entries: list[Any]) -> dict[str, bytes]:
    """Zip member name → bytes: signed entries, public keys, head, timestamps, VERIFY.md.

    ``entries`` are CustodyEntry rows (any order); their bytes are rebuilt from the rows,
    so a row changed in the database shows up as a failing signature in the bundle too.
    """
    from earwitness.evidence import custody
    from earwitness.evidence.timestamps import stored_tokens

    keys = CustodyKeys(settings)
    ring = keys.keyring()
    members: dict[str, bytes] = {}
    sums: list[str] = []
    signed: list[str] = []
    used: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.id):
        name = f"custody/entries/{entry.id:06d}"
        members[f"{name}.json"] = custody.stored_bytes(entry)
        sums.append(f"{entry.entry_hash}  {name}.json")
        if entry.signature and entry.key_id:
            members[f"{name}.sig"] = bytes.fromhex(entry.signature)
            signed.append(f"{entry.id:06d} {entry.key_id}")
            used.add(entry.key_id)
    head, problem = keys.read_doc(HEAD_FILE, ring)
    if head is not None and not problem:
        members["custody/head.json"] = head.body_bytes
        members["custody/head.sig"] = head.signature
        signed.append(f"head {head.key_id}")
        used.add(head.key_id)
    members["custody/entries.sha256"] = "".join(f"{line}\n" for line in sums).encode()
    members["custody/signatures.txt"] = "".join(f"{line}\n" for line in signed).encode()
    for key_id in sorted(used & ring.keys.keys()):
        members[f"keys/{key_id}.pem"] = public_pem(ring.keys[key_id])
    for number, (covered, token) in stored_tokens(keys).items():
        members[f"timestamps/{number}.tsr"] = token
        members[f"timestamps/{number}.json"] = covered
    if settings.tsa_ca_path is not None and settings.tsa_ca_path.is_file():
        members["timestamps/tsa-ca.pem"] = settings.tsa_ca_path.read_bytes()
    members["VERIFY.md"] = VERIFY_MD.encode()
    return members
