"""Content-addressed, write-once blob store on disk.

A blob's name is its SHA-256, so the same bytes are stored once and any change
to a file is visible as a hash mismatch. Blobs are written to a temporary file,
fsynced, then renamed into place read-only: a crash leaves either nothing or a
whole blob, never a partial one under a real name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import event
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, NotFound, PayloadTooLarge, StorageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    created: bool = False  # this call wrote the file (a caller that fails may remove it)


def _link_if_absent(tmp_name: str, final: Path) -> bool:
    """Publish ``tmp_name`` as ``final`` unless it exists; True if this call created it.

    A hard link fails if the name exists, so of several processes or hosts (a shared
    mount) storing the same bytes at once exactly one "created" the blob, and only that
    one may remove it again when its transaction rolls back. File systems without hard
    links fall back to an atomic rename (same bytes, so either copy is right).
    """
    try:
        os.link(tmp_name, final)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    created = not final.exists()
    os.replace(tmp_name, final)
    return created


def _storage_error(exc: OSError, root: Path) -> StorageError:
    """One line a user can act on: full disk and read-only mounts are named as such."""
    reason = {
        errno.ENOSPC: "the data directory is full",
        errno.EDQUOT: "the data directory is over its quota",
        errno.EROFS: "the data directory is read-only",
        errno.EACCES: "the data directory is not writable",
        errno.EFBIG: "the file is larger than the file system allows",
    }.get(exc.errno or 0, "the blob store cannot be written")
    return StorageError(f"{reason} ({root}: {exc.strerror}); nothing was stored")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create blob store at {root}: {exc}") from None

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise BadInput(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_chunks(self, chunks: Iterable[bytes], max_bytes: int | None = None) -> BlobInfo:
        """Store a stream; over ``max_bytes`` raises PayloadTooLarge and stores nothing."""
        digest = hashlib.sha256()
        size = 0
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="in-")
        except OSError as exc:
            raise _storage_error(exc, self.root) from None
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise PayloadTooLarge(
                            f"upload exceeds the limit of {max_bytes} bytes; nothing was stored"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            created = False
            if not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                created = _link_if_absent(tmp_name, final)
            _unlink_quietly(tmp_name)
            return BlobInfo(sha, size, created)
        except OSError as exc:
            _unlink_quietly(tmp_name)
            raise _storage_error(exc, self.root) from None
        except BaseException:
            _unlink_quietly(tmp_name)
            raise

    def discard_on_rollback(self, session: Session, info: BlobInfo) -> None:
        """Remove ``info``'s blob again if ``session`` rolls back: no blob without its row.

        Only a blob this call created (``info.created``) is removed; bytes that were
        already stored belong to rows committed before. A commit forgets the list.
        """
        if not info.created:
            return
        pending: list[Path] = session.info.setdefault(_PENDING, [])
        if not pending:
            event.listen(session, "after_rollback", _drop_pending)
            event.listen(session, "after_commit", _keep_pending)
        pending.append(self.path(info.sha256))

    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> BlobInfo:
        return self.put_chunks(iter(lambda: stream.read(CHUNK), b""), max_bytes)

    def put_file(self, path: Path, max_bytes: int | None = None) -> BlobInfo:
        with path.open("rb") as stream:
            return self.put_stream(stream, max_bytes)

    def put_bytes(self, data: bytes) -> BlobInfo:
        return self.put_chunks([data])

    def open(self, sha256: str) -> BinaryIO:
        path = self.path(sha256)
        if not path.is_file():
            raise NotFound(f"blob {sha256} is not in the store")
        return path.open("rb")

    def verify(self, sha256: str) -> bool:
        """Re-hash a stored blob: True when its bytes still match its name."""
        digest = hashlib.sha256()
        with self.open(sha256) as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                digest.update(chunk)
        return digest.hexdigest() == sha256


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    except OSError:  # read-only now: the temp name is never served, nothing to do here
        pass


_PENDING = "earwitness.blobs_pending"


def _drop_pending(session: Session) -> None:
    for path in session.info.pop(_PENDING, []):
        _unlink_quietly(str(path))


def _keep_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
