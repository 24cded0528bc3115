"""Media type from the first bytes of a file, and names that are safe to show or to use.

The client's Content-Type and file extension are claims; the bytes are evidence. A
name a caller gives is only ever a display string: it never becomes a path on disk,
and where a name has to become a path (a member of a bundle) it is rebuilt from a
whitelist and the evidence id.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

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
    what was uploaded, but nothing ever opens it. The name is NFC-normalised (a
    decomposed and a composed "é" are the same name) and bounded to the column's 255
    characters. A name that is empty after cleaning, or has a NUL byte (a classic
    truncation trick), is refused.
    """
    if name is None or not name.strip():
        return "unnamed"
    if "\x00" in name:
        raise BadInput("file name contains a NUL byte")
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] != "C" else "\N{REPLACEMENT CHARACTER}" for ch in name
    ).strip()
    if not cleaned.strip("\N{REPLACEMENT CHARACTER}"):
        raise BadInput("file name has no printable characters")
    return cleaned[:255]


#: ASCII a member name may keep; everything else ASCII (``/ \ : * ? " < > |``, quotes,
#: ``$``, ``&``, ``;``, spaces, controls) becomes ``_``.
_ASCII_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=,@()[]~")
#: Unicode categories kept beyond ASCII: letters, marks, numbers, punctuation, symbols.
_UNICODE_OK = frozenset("LMNPS")
MEMBER_NAME_BYTES = 150


def _member_char_ok(ch: str) -> bool:
    """True for a character that is safe in a file name on every platform we export to.

    Non-ASCII characters are also judged by their NFKC form: "／" (fullwidth solidus)
    or "：" fold to "/" and ":" in tools that apply compatibility mapping (Windows
    "best fit" code pages), so they are refused like the ASCII they fold to.
    """
    if ch.isascii():
        return ch in _ASCII_OK
    if unicodedata.category(ch)[0] not in _UNICODE_OK:
        return False  # controls, format (bidi overrides, zero-width), separators, unassigned
    return all(
        (c in _ASCII_OK) if c.isascii() else unicodedata.category(c)[0] in _UNICODE_OK
        for c in unicodedata.normalize("NFKC", ch)
    )


def _bound_utf8(name: str, limit: int) -> str:
    """Cut ``name`` to ``limit`` UTF-8 bytes at a character boundary, keeping a short suffix."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext.encode()) <= 16 else ""
    head = stem if suffix else name
    budget = limit - len(suffix.encode())
    out: list[str] = []
    used = 0
    for ch in head:
        size = len(ch.encode())
        if used + size > budget:
            break
        out.append(ch)
        used += size
    # never end on a lone combining mark cut from its base character
    while out and unicodedata.combining(out[-1]):
        out.pop()
    return "".join(out) + suffix


def safe_member_name(name: str, fallback: str = "file") -> str:
    """A single path component built from ``name`` that can never leave its directory.

    Unicode survives ("证据.txt" stays "证据.txt", NFC-normalised); the directory part
    of a path is dropped, and separators, controls and shell- or Windows-hostile
    characters become ``_``. The result is bounded to 150 UTF-8 bytes (extension
    kept), never starts with a dot, and is never ``.`` or ``..``, even after NFKC.
    """
    name = unicodedata.normalize("NFC", name.replace("\x00", "_"))
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch if _member_char_ok(ch) else "_" for ch in base)
    base = re.sub(r"_{2,}", "_", base)
    base = _bound_utf8(base, MEMBER_NAME_BYTES).strip("._-")
    if not unicodedata.normalize("NFKC", base).strip("._-"):
        return fallback
    if unicodedata.normalize("NFKC", base[0]) in (".", "-"):
        base = "_" + base
    return base


def attachment(name: str) -> str:
    """A Content-Disposition value for ``name``; Unicode travels as RFC 5987 ``filename*``.

    HTTP headers are Latin-1, so a name like "证据.txt" goes as ``filename*=utf-8''…``
    (what browsers use) behind a plain ASCII fallback.
    """
    safe = safe_member_name(name)
    if safe.isascii():
        return f'attachment; filename="{safe}"'
    _, dot, ext = safe.rpartition(".")
    fallback = "download" + (f".{ext}" if dot and ext.isascii() else "")
    return f"attachment; filename=\"{fallback}\"; filename*=utf-8''{quote(safe, safe='')}"


def check_relative_path(path: str) -> str:
    """Refuse a path that is absolute or climbs out (``..``), before it is used as a path."""
    if not path or "\x00" in path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise UnsafePath(f"unsafe path {path[:80]!r}: must be relative")
    parts = re.split(r"[\\/]", path)
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePath(f"unsafe path {path[:80]!r}: empty, '.' or '..' component")
    return path
