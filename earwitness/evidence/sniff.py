"""Media type from the first bytes of a file, and names that are safe to show or to use.

The client's Content-Type and file extension are claims; the bytes are evidence. A
name a caller gives is only ever a display string: it never becomes a path on disk,
and where a name has to become a path (a member of a bundle) it is rebuilt from a
whitelist and the evidence id.
"""

from __future__ import annotations

import re
import unicodedata

from earwitness.errors import BadInput, UnsafePath

SNIFF_BYTES = 4096

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF-", 0, "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF8", 0, "image/gif"),
    (b"fLaC", 0, "audio/flac"),
    (b"OggS", 0, "audio/ogg"),
    (b"ID3", 0, "audio/mpeg"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
)


def sniff_media_type(head: bytes) -> str:
    """Best guess from content alone; ``application/octet-stream`` when unknown."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4" if head[8:11] != b"M4A" else "audio/mp4"
    for magic, offset, media in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return media
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sniff boundary
            return "application/octet-stream"
        text = head[: exc.start].decode("utf-8")
    return _sniff_text(text.lstrip("\ufeff \t\r\n"))


def _sniff_text(text: str) -> str:
    lowered = text[:2048].lower()
    if lowered.startswith("<?xml") or lowered.startswith("<"):
        if "<gpx" in lowered:
            return "application/gpx+xml"
        if "<kml" in lowered:
            return "application/vnd.google-earth.kml+xml"
        if "<html" in lowered or "<!doctype html" in lowered:
            return "text/html"
        return "application/xml"
    if text.startswith(("{", "[")):
        if '"featurecollection"' in lowered or '"feature"' in lowered:
            return "application/geo+json"
        return "application/json"
    if re.match(r"\$(GP|GN|GL|GA|BD|GB)[A-Z]{3},", text):
        return "application/x-nmea"
    if text.startswith("WEBVTT"):
        return "text/vtt"
    first = text.split("\n", 1)[0]
    if first.count(",") >= 2 or first.count(";") >= 2 or first.count("\t") >= 2:
        return "text/csv"
    return "text/plain"


def kind_for(media_type: str) -> str:
    """Evidence kind from the sniffed type (the caller may override)."""
    if media_type.startswith("audio/"):
        return "recording"
    if media_type in (
        "application/gpx+xml",
        "application/vnd.google-earth.kml+xml",
        "application/geo+json",
        "application/x-nmea",
    ):
        return "track"
    if media_type in ("text/vtt",):
        return "transcript"
    if media_type.startswith("image/"):
        return "photo"
    return "document"


def display_name(name: str | None) -> str:
    """The caller's file name as a harmless display string (path kept, controls removed).

    ``../../etc/passwd`` stays visible as given, since an investigator may need to see
    what was uploaded, but nothing ever opens it. A name that is empty after cleaning,
    or has a NUL byte (a classic truncation trick), is refused.
    """
    if name is None or not name.strip():
        return "unnamed"
    if "\x00" in name:
        raise BadInput("file name contains a NUL byte")
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] != "C" else "\N{REPLACEMENT CHARACTER}" for ch in name
    ).strip()
    if not cleaned.strip("\N{REPLACEMENT CHARACTER}"):
        raise BadInput("file name has no printable characters")
    return cleaned[:255]


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_member_name(name: str, fallback: str = "file") -> str:
    """A single path component built from ``name`` that can never leave its directory."""
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _SAFE_CHARS.sub("_", base).strip("._")[:100]
    return base or fallback


def check_relative_path(path: str) -> str:
    """Refuse a path that is absolute or climbs out (``..``), before it is used as a path."""
    if not path or "\x00" in path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise UnsafePath(f"unsafe path {path[:80]!r}: must be relative")
    parts = re.split(r"[\\/]", path)
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"unsafe path {path[:80]!r}: empty, '.' or '..' component")
    return path
