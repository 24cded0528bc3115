"""Content-addressed, write-once blob store on disk.

A blob's name is its SHA-256, so the same bytes are stored once and any change
to a file is visible as a hash mismatch. Blobs are written to a temporary file,
fsynced, then renamed into place read-only: a crash leaves either nothing or a
whole blob, never a partial one under a real name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from earwitness.errors import BadInput, NotFound, PayloadTooLarge, StorageError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int


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
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="in-")
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
            if final.exists():
                os.unlink(tmp_name)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, final)
            return BlobInfo(sha, size)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

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
