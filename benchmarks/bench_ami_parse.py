"""AMI parse throughput: earwitness's AmiParser vs asterisk-ami 0.1.7 on the same real bytes.

The input is every capture in tests/data/ami/*.raw (real Asterisk 22 streams), concatenated
and repeated to about 50,000 messages.  Both parsers get the stream in the same 1 KiB reads
asterisk-ami uses by default (its ``buffer_size``), in the same process, best of three runs.
The baseline is asterisk-ami's own routine: ``AMIClient._next_pack`` (framing over a socket,
here a fake one serving the chunks) followed by ``AMIClient.fire_recv_pack`` (Response/Event
parsing and dispatch with no listeners).

Run: ``python benchmarks/bench_ami_parse.py``.  ``run()`` returns the result lines for a
benchmark runner; ``run(on_message=...)`` applies a callable to each of our parsed messages
(the call tracker hooks in there) so its cost lands in our number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from earwitness.telephony.ami.protocol import AmiMessage, AmiParser

CAPTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "ami"
TARGET_MESSAGES = 50_000
CHUNK = 1024  # asterisk-ami's default recv size
ROUNDS = 3


def load_stream(target: int = TARGET_MESSAGES) -> tuple[bytes, int]:
    """Captures concatenated and repeated until ~target messages; returns (bytes, messages)."""
    files = sorted(CAPTURE_DIR.glob("*.raw"))
    if not files:
        raise FileNotFoundError(f"no AMI captures in {CAPTURE_DIR}")
    # Each capture starts with its connection's banner; only the first may stay (a stream has
    # one), and each is cut after its last complete frame, so both parsers see one valid stream.
    parts = [files[0].read_bytes()] + [_without_banner(p.read_bytes()) for p in files[1:]]
    one = b"".join(_complete_frames(p) for p in parts)
    body = _without_banner(one)
    per_copy = len(AmiParser().feed(one, 0.0))
    per_body = len(AmiParser().feed(body, 0.0))
    copies = max(0, round((target - per_copy) / max(per_body, 1)))
    stream = one + body * copies
    return stream, len(AmiParser().feed(stream, 0.0))


def _complete_frames(data: bytes) -> bytes:
    end = max(data.rfind(b"\r\n\r\n") + 4, data.rfind(b"\n\n") + 2, 0)
    return data[:end] if end else data


def _without_banner(data: bytes) -> bytes:
    if data.startswith(b"Asterisk Call Manager/"):
        return data[data.index(b"\n") + 1 :]
    return data


def chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def ours(
    pieces: list[bytes], on_message: Callable[[AmiMessage], Any] | None = None
) -> tuple[int, float]:
    """Messages (banner excluded) and seconds for AmiParser over the chunks."""
    parser = AmiParser()
    count = 0
    start = time.perf_counter()
    for piece in pieces:
        messages = parser.feed(piece)
        if on_message is not None:
            for message in messages:
                on_message(message)
        count += len(messages)
    elapsed = time.perf_counter() - start
    return count - 1, elapsed  # the banner is not an AMI message for the baseline


class _ChunkSocket:
    """Stands in for asterisk-ami's socket: recv() serves the prepared chunks, then EOF."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces: Iterator[bytes] = iter(pieces)

    def recv(self, _size: int) -> bytes:
        return next(self._pieces, b"")

    def close(self) -> None:
        pass


def baseline(pieces: list[bytes]) -> tuple[int, float]:
    """Messages and seconds for asterisk-ami 0.1.7's framing + parsing over the same chunks."""
    from asterisk.ami.client import AMIClient  # dev dependency, pinned to 0.1.7

    client = AMIClient()
    client._socket = _ChunkSocket(pieces)
    client.finished = threading.Event()
    count = 0
    start = time.perf_counter()
    packs = client._next_pack()
    next(packs)  # the banner line
    for pack in packs:
        client.fire_recv_pack(pack)
        count += 1
    elapsed = time.perf_counter() - start
    return count, elapsed


def panoramisk_rate(pieces: list[bytes]) -> tuple[int, float]:
    """Messages and seconds for panoramisk's AMIProtocol.data_received (optional, not pinned:
    only ``python benchmarks/bench_ami_parse.py --panoramisk`` measures it)."""
    from panoramisk.ami_protocol import AMIProtocol

    count = 0

    class Factory:
        save_stream = None

    def handle_message(message: Any) -> None:  # count responses and events alike
        nonlocal count
        count += 1

    class Transport:
        def close(self) -> None:
            pass

    protocol = AMIProtocol()
    protocol.connection_made(Transport())
    protocol.factory = Factory()
    protocol.handle_message = handle_message
    protocol.encoding = "utf-8"  # its default is ascii with errors="ignore"
    start = time.perf_counter()
    for piece in pieces:
        protocol.data_received(piece)
    elapsed = time.perf_counter() - start
    return count, elapsed


def run(on_message: Callable[[AmiMessage], Any] | None = None) -> list[str]:
    stream, _ = load_stream()
    pieces = chunks(stream)
    best_ours = best_base = float("inf")
    n_ours = n_base = 0
    for _ in range(ROUNDS):
        n_ours, t_ours = ours(pieces, on_message)
        n_base, t_base = baseline(pieces)
        best_ours, best_base = min(best_ours, t_ours), min(best_base, t_base)
    ours_rate = n_ours / best_ours
    base_rate = n_base / best_base
    return [
        f"ami_parse: ours {ours_rate:.0f} events/s, baseline {base_rate:.0f} events/s, "
        f"ratio {ours_rate / base_rate:.2f}"
    ]


if __name__ == "__main__":
    import sys

    for line in run():
        print(line)
    if "--panoramisk" in sys.argv:
        pieces = chunks(load_stream()[0])
        n, seconds = min((panoramisk_rate(pieces) for _ in range(ROUNDS)), key=lambda r: r[1])
        print(f"ami_parse_panoramisk: {n / seconds:.0f} messages/s (same bytes, utf-8)")
