"""AMI wire format: framing, parsing and encoding, with no I/O.

The Asterisk Manager Interface is a line protocol: ``Key: Value`` lines, a blank line ends a
frame, and the very first line of a connection is a banner (``Asterisk Call Manager/11.0.0``)
that has no blank line after it.  Real streams also carry bare ``\\n`` line ends, legacy
``Response: Follows`` command output whose body may itself contain blank lines, bytes that are
not UTF-8 (caller names from SIP headers) and, on a broken peer, unbounded garbage.  Everything
here turns such a byte stream into :class:`AmiMessage` objects without ever raising, so a bad
frame costs one frame and not the connection that carries every call of the call centre.

Kept apart from the socket code so the parser is tested byte-for-byte against captured streams
and benchmarked without a network.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from earwitness.errors import ServiceUnavailable

log = logging.getLogger(__name__)

MessageKind = Literal["event", "response", "banner"]
TimeSource = Literal["event", "receipt"]

BANNER_PREFIX = b"Asterisk Call Manager/"
END_COMMAND = b"--END COMMAND--"
DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB: the largest sane frame is a few KiB of channel variables

# A frame ends at an empty line; the line before it may end in "\r\n" or a bare "\n".
# One regex finds the earliest of both in a single left-to-right scan, so buffering stays
# linear (two separate bytes.find calls would each rescan a burst looking for the rarer form).
_FRAME_END = re.compile(rb"\n\r?\n")
# Headers of a legacy "Response: Follows" frame; everything after them is command output.
_NEXT_FRAME = (b"Event:", b"Response:")
_FOLLOWS_HEADERS = frozenset({"response", "privilege", "actionid", "message"})


class AmiError(ServiceUnavailable):
    """Base of every AMI error: the PBX link is unusable or refused what we asked."""

    title, slug = "PBX (AMI) unavailable", "ami-unavailable"


class AmiProtocolError(AmiError):
    """We were asked to put something on the wire that AMI cannot carry (e.g. a newline)."""


class AmiMessage:
    """One AMI frame: an event, a response to an action, or the connection banner.

    Headers stay as an ordered list of pairs because AMI repeats keys (``ChanVariable``,
    ``Output``) and order matters for command output; lookups are case-insensitive because
    Asterisk versions disagree on case (``ActionID`` vs ``ActionId``).
    """

    __slots__ = ("headers", "kind", "name", "received_at", "body", "_index")

    def __init__(
        self,
        headers: list[tuple[str, str]],
        kind: MessageKind,
        name: str,
        received_at: float,
        body: tuple[str, ...] = (),
    ) -> None:
        self.headers = headers
        self.kind: MessageKind = kind
        self.name = name
        self.received_at = received_at  # epoch seconds at which the bytes were read
        self.body = body  # raw lines of a legacy "Response: Follows" command output
        self._index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        # Built lazily: the parser creates tens of thousands of messages per second and most
        # are only looked at through two or three keys, often by name alone.
        index = self._index
        if index is None:
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), value)
            self._index = index
        return index

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key`` (case-insensitive), or ``default``."""
        return self._lookup().get(key.lower(), default)

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated header, in wire order."""
        lowered = key.lower()
        return [value for k, value in self.headers if k.lower() == lowered]

    def __getitem__(self, key: str) -> str:
        return self._lookup()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def event_list(self) -> str | None:
        """``start`` / ``Complete`` markers of list actions (lower-cased), else ``None``."""
        value = self.get("EventList")
        return value.lower() if value is not None else None

    @property
    def is_error(self) -> bool:
        return self.kind == "response" and self.name.lower() == "error"

    @property
    def output(self) -> list[str]:
        """Command output lines, whichever way this Asterisk version sent them.

        Asterisk ≥ 14 sends ``Output:`` headers; older versions a ``Response: Follows`` body.
        """
        if self.body:
            return list(self.body)
        return self.get_all("Output")

    def as_dict(self) -> dict[str, str]:
        """Headers as a plain dict (first value wins), for logging and JSON."""
        result: dict[str, str] = {}
        for key, value in self.headers:
            result.setdefault(key, value)
        return result

    def __repr__(self) -> str:
        return f"<AmiMessage {self.kind} {self.name!r} {len(self.headers)} headers>"


@dataclass
class ParserStats:
    """Counters for health reporting: anything non-zero besides frames/bytes is worth a look."""

    frames: int = 0  # messages produced (banner included)
    bytes: int = 0  # bytes fed
    skipped_lines: int = 0  # lines without a colon, dropped
    skipped_frames: int = 0  # frames with neither Event nor Response header, dropped
    oversized_frames: int = 0  # frames over max_frame, discarded unread
    decode_errors: int = 0  # frames that were not valid UTF-8 (decoded with U+FFFD)

    def add(self, other: ParserStats) -> None:
        """Accumulate another parser's counts (one parser per connection, totals per client)."""
        self.frames += other.frames
        self.bytes += other.bytes
        self.skipped_lines += other.skipped_lines
        self.skipped_frames += other.skipped_frames
        self.oversized_frames += other.oversized_frames
        self.decode_errors += other.decode_errors


class AmiParser:
    """Incremental AMI parser: feed it whatever ``recv`` returned, get complete messages back.

    Bytes live in one ``bytearray`` consumed from a read offset and compacted once per feed,
    and every search resumes where the previous one stopped, so a burst of N bytes costs O(N)
    however it is split.  (asterisk-ami 0.1.7 concatenates ``bytes`` and re-splits the whole
    buffer for each frame.)  One parser per connection: the banner is only expected first.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.stats = ParserStats()
        self._buf = bytearray()
        self._scan = 0  # offset in _buf from which the next frame-end search may start
        self._discarding = False  # inside an oversized frame: drop bytes until its end
        self._follows_scan = 0  # resume point of the "--END COMMAND--" search
        self._at_start = True  # no byte seen yet: a banner may come

    def feed(self, data: bytes, received_at: float | None = None) -> list[AmiMessage]:
        """Add bytes; return the messages they complete (possibly none)."""
        if received_at is None:
            received_at = time.time()
        self.stats.bytes += len(data)
        buf = self._buf
        buf += data
        out: list[AmiMessage] = []
        pos = 0
        if self._at_start:
            pos = self._take_banner(out, received_at)
            if pos < 0:  # banner line still incomplete
                return out
        while True:
            if self._discarding:
                pos = self._skip_oversized(pos)
                if self._discarding:
                    break
            match = _FRAME_END.search(buf, max(pos, self._scan))
            if match is None:
                end = stop = -1
            elif buf.startswith(b"Response: Follows", pos):
                end = stop = self._follows_end(pos)
            else:
                end, stop = match.end(), match.start()  # stop: the frame without its blank line
            if end < 0:
                if match is None:
                    self._scan = max(pos, len(buf) - 2)  # the end may straddle this feed
                if len(buf) - pos > self.max_frame:
                    self._start_discard()
                    pos = len(buf) - 2
                    self._scan = pos
                break
            if end - pos > self.max_frame:
                self.stats.oversized_frames += 1
                log.warning("AMI frame of %d bytes over the cap discarded", end - pos)
            else:
                message = self._parse_frame(buf[pos:stop], received_at)
                if message is not None:
                    out.append(message)
            pos = end
            self._scan = end
            self._follows_scan = 0
        del buf[:pos]
        self._scan = max(0, self._scan - pos)
        self._follows_scan = max(0, self._follows_scan - pos)
        return out

    def _take_banner(self, out: list[AmiMessage], received_at: float) -> int:
        """Consume a leading banner line; -1 while it may still be arriving."""
        buf = self._buf
        size = min(len(buf), len(BANNER_PREFIX))
        if buf[:size] != BANNER_PREFIX[:size]:
            self._at_start = False
            return 0
        newline = buf.find(b"\n", size - 1 if size else 0)
        if size < len(BANNER_PREFIX) or newline < 0:
            if len(buf) > self.max_frame:
                self._at_start = False  # not a banner after all; the size cap takes over
                return 0
            return -1
        self._at_start = False
        text = bytes(buf[:newline]).decode("utf-8", "replace").strip()
        self.stats.frames += 1
        out.append(AmiMessage([("Banner", text)], "banner", text.partition("/")[2], received_at))
        return newline + 1

    def _follows_end(self, pos: int) -> int:
        """End of a legacy command-output frame, whose body may contain blank lines.

        The frame ends at the blank line after ``--END COMMAND--``, or, if that marker never
        comes, at a blank line followed by a new ``Event:``/``Response:`` frame: a broken frame
        must not hold back the events behind it.  -1 while undecidable.
        """
        buf = self._buf
        scan = max(pos, self._follows_scan)
        while True:
            match = _FRAME_END.search(buf, scan)
            if match is None:
                self._follows_scan = scan
                return -1
            end = match.end()
            line_start = buf.rfind(b"\n", pos, match.start()) + 1
            if buf.startswith(END_COMMAND, max(pos, line_start)):
                return end
            ahead = bytes(buf[end : end + len(_NEXT_FRAME[1])])
            if ahead.startswith(_NEXT_FRAME):
                return end
            if len(ahead) < len(_NEXT_FRAME[1]) and any(f.startswith(ahead) for f in _NEXT_FRAME):
                self._follows_scan = scan
                return -1  # cannot tell yet whether a new frame starts here
            scan = end - 1

    def _start_discard(self) -> None:
        self.stats.oversized_frames += 1
        self._discarding = True
        log.warning("AMI frame over the %d byte cap: discarding until its end", self.max_frame)

    def _skip_oversized(self, pos: int) -> int:
        buf = self._buf
        match = _FRAME_END.search(buf, max(pos, self._scan))
        if match is None:
            # Keep the last two bytes: a "\n" + "\r\n" split across feeds must still be seen.
            keep = max(pos, len(buf) - 2)
            del buf[:keep]
            self._scan = 0
            return 0
        self._discarding = False
        self._scan = match.end()
        return match.end()

    def _parse_frame(self, frame: bytes | bytearray, received_at: float) -> AmiMessage | None:
        try:
            text = frame.decode("utf-8")
        except UnicodeDecodeError:
            self.stats.decode_errors += 1
            text = frame.decode("utf-8", "replace")
        lines = text.split("\n")
        if text.startswith("Asterisk Call Manager/"):
            # A banner glued to the next frame (replayed or concatenated captures).
            del lines[0]
        if text.startswith("Response: Follows"):
            return self._parse_follows(lines, received_at)
        return self._message(self._headers(lines), (), received_at)

    def _headers(self, lines: list[str]) -> list[tuple[str, str]]:
        parts = [line.partition(":") for line in lines]
        headers = [(key.strip(), value.strip()) for key, sep, value in parts if sep]
        if len(headers) < len(parts):  # blank lines, or lines without a colon
            for key, sep, _ in parts:
                if not sep and key.strip():
                    self.stats.skipped_lines += 1
                    log.debug("AMI line without a colon skipped: %r", key[:200])
        return headers

    def _parse_follows(self, lines: list[str], received_at: float) -> AmiMessage | None:
        headers: list[tuple[str, str]] = []
        body: list[str] = []
        in_body = False
        for raw in lines:
            line = raw[:-1] if raw.endswith("\r") else raw
            if line.startswith("--END COMMAND--"):
                break
            if not in_body:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in _FOLLOWS_HEADERS:
                    headers.append((key.strip(), value.strip()))
                    continue
                in_body = True
            body.append(line)
        else:  # no marker: drop the frame terminator's empty lines
            while body and not body[-1]:
                body.pop()
        return self._message(headers, tuple(body), received_at)

    def _message(
        self, headers: list[tuple[str, str]], body: tuple[str, ...], received_at: float
    ) -> AmiMessage | None:
        if not headers:
            if body:
                self.stats.skipped_frames += 1
            return None
        key, value = headers[0]
        lowered = key.lower()
        if lowered == "event":
            kind: MessageKind = "event"
        elif lowered == "response":
            kind = "response"
        else:
            found = _find_kind(headers)
            if found is None:
                self.stats.skipped_frames += 1
                log.debug("AMI frame without Event/Response skipped: %r", headers[:3])
                return None
            kind, value = found
        self.stats.frames += 1
        return AmiMessage(headers, kind, value, received_at, body)


def _find_kind(headers: list[tuple[str, str]]) -> tuple[MessageKind, str] | None:
    for key, value in headers:
        lowered = key.lower()
        if lowered == "event":
            return "event", value
        if lowered == "response":
            return "response", value
    return None


# Asterisk's clock and ours may differ a little; beyond this the header is not trusted.
DEFAULT_MAX_SKEW_S = 300.0
_EARLIEST_PLAUSIBLE = 946_684_800.0  # 2000-01-01: anything older is a broken clock


def event_time(
    message: AmiMessage,
    received_at: float | datetime | None = None,
    *,
    max_skew_s: float = DEFAULT_MAX_SKEW_S,
) -> tuple[datetime, TimeSource]:
    """When did this happen, and where does that time come from?

    Ring and answer times are measured from the PBX's own ``Timestamp:`` header (present when
    manager.conf has ``timestampevents=yes``) because it does not move with our read latency or
    a backlog after reconnect.  It is used only when it parses and lies within ``max_skew_s``
    of receipt; otherwise the receipt time is returned and labelled as such, so a result can
    say which clock produced it.
    """
    if received_at is None:
        received_at = message.received_at
    receipt = received_at.timestamp() if isinstance(received_at, datetime) else float(received_at)
    raw = message.get("Timestamp")
    if raw is not None:
        try:
            stamp = float(raw)
        except ValueError:
            stamp = math.nan
        if (
            math.isfinite(stamp)
            and stamp > _EARLIEST_PLAUSIBLE
            and abs(stamp - receipt) <= max_skew_s
        ):
            return datetime.fromtimestamp(stamp, UTC), "event"
    return datetime.fromtimestamp(receipt, UTC), "receipt"


HeaderValue = str | int | float | Iterable[str]


def encode_action(name: str, action_id: str, **headers: HeaderValue | None) -> bytes:
    """Serialise an action.  Iterables become repeated headers (``Variable=[...]``), ``None``
    values are left out, and CR/LF anywhere raises: a newline in a caller-supplied value would
    otherwise inject extra headers or a second action."""
    parts = [("Action", name), ("ActionID", action_id)]
    for key, value in headers.items():
        if value is None:
            continue
        if isinstance(value, str | int | float):
            parts.append((key, str(value)))
        else:
            parts.extend((key, str(item)) for item in value)
    lines = []
    for key, text in parts:
        if "\r" in key or "\n" in key or ":" in key or "\r" in text or "\n" in text:
            raise AmiProtocolError(f"AMI header {key!r} contains a line break or colon")
        lines.append(f"{key}: {text}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")
