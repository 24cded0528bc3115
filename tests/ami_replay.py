"""Replay a captured AMI byte stream (tests/data/ami/*.raw) through parser and tracker.

A capture may hold several connections back to back (an Asterisk restart): each
starts with its own banner, gets its own parser, and — like the live service —
the tracker is resynchronised from that connection's CoreShowChannels/QueueStatus
answer before its events are handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from earwitness.telephony.ami.protocol import AmiMessage, AmiParser, event_time
from earwitness.telephony.calls import TrackedCall
from earwitness.telephony.tracker import CallTracker

DATA = Path(__file__).parent / "data" / "ami"
BANNER = b"Asterisk Call Manager/"
_LIST_ITEMS = {"coreshowchannel", "queueentry"}


@dataclass
class Replay:
    tracker: CallTracker = field(default_factory=CallTracker)
    finished: list[TrackedCall] = field(default_factory=list)
    messages: list[AmiMessage] = field(default_factory=list)
    hold_times: dict[str, float] = field(default_factory=dict)  # linkedid -> AgentConnect HoldTime

    def by_caller(self, caller: str) -> list[TrackedCall]:
        return [c for c in self.finished if c.caller == caller]


def connections(raw: bytes) -> list[bytes]:
    starts = [i for i in range(len(raw)) if raw.startswith(BANNER, i)] or [0]
    return [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]


def replay(raw: bytes) -> Replay:
    out = Replay()
    last_at: datetime | None = None
    for n, chunk in enumerate(connections(raw)):
        msgs = AmiParser().feed(chunk, received_at=0.0)
        out.messages += msgs
        if n > 0 and last_at is not None:
            # The live service resyncs right after login, before any later event.
            items = [m for m in msgs if m.kind == "event" and m.name.lower() in _LIST_ITEMS]
            chans = [m.as_dict() for m in items if m.name.lower() == "coreshowchannel"]
            entries = [m.as_dict() for m in items if m.name.lower() == "queueentry"]
            for call in out.tracker.resync(chans, entries, last_at):
                if call.ended_at is not None:
                    out.finished.append(call)
                    out.tracker.release(call)
        for msg in msgs:
            if msg.kind != "event" or msg.get("Timestamp") is None:
                continue  # list items and FullyBooted carry no time: not call events
            at = datetime.fromtimestamp(float(msg["Timestamp"]), UTC)
            at, source = event_time(msg, at)
            last_at = at
            if msg.name == "AgentConnect" and msg.get("Linkedid") and msg.get("HoldTime"):
                out.hold_times[msg["Linkedid"]] = float(msg["HoldTime"])
            for call in out.tracker.handle(msg, at, source):
                if call.ended_at is not None:
                    out.finished.append(call)
                    out.tracker.release(call)
    return out


def replay_file(name: str) -> Replay:
    return replay((DATA / f"{name}.raw").read_bytes())
