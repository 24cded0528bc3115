"""Turn the AMI event stream into calls: pure state, no sockets, no database.

One complaint call is one Asterisk ``Linkedid``: every channel it touches (the
caller, Local halves, agents, transfer targets) carries it, so transfers stay one
call. A call counts once it *rings for the caller* — it joins a queue
(``QueueCallerJoin``) or dials an extension (``DialBegin`` from a channel; the
channel-less DialBegin that ``Originate`` emits is not a ring) — and ends when
its last channel hangs up.

Events are fed with the time they happened and where that time came from
(``event`` = the PBX's Timestamp header, ``receipt`` = our clock, ``resync`` =
reconstructed after a reconnect); a call remembers the weakest source used for
its ring/answer times so an SLA figure can say how exact it is.

After every (re)connect ``resync`` is given the PBX's own view (CoreShowChannels
and QueueStatus entries): calls that ended in the gap are closed, calls that
started in the gap are adopted, and nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from earwitness.telephony.calls import (
    Attempt,
    Event,
    EventNote,
    TimeSource,
    TrackedCall,
    agent_interface,
)
from earwitness.telephony.records import CallOutcome

_DIAL_FAILURE = {
    "BUSY": CallOutcome.BUSY,
    "CHANUNAVAIL": CallOutcome.UNAVAILABLE,
    "CONGESTION": CallOutcome.UNAVAILABLE,
    "NOANSWER": CallOutcome.TIMEOUT,
    "CANCEL": CallOutcome.ABANDONED,
}
# Queue() sets QUEUESTATUS when it returns without an answer; AMI's QueueCallerAbandon
# fires on a queue *timeout* too (seen on Asterisk 22), so this variable is what tells a
# timeout from a caller hanging up.
_QUEUE_STATUS = {
    "TIMEOUT": CallOutcome.TIMEOUT,
    "FULL": CallOutcome.UNAVAILABLE,
    "JOINEMPTY": CallOutcome.UNAVAILABLE,
    "LEAVEEMPTY": CallOutcome.UNAVAILABLE,
    "JOINUNAVAIL": CallOutcome.UNAVAILABLE,
    "LEAVEUNAVAIL": CallOutcome.UNAVAILABLE,
}
MAX_EVENTS_PER_CALL = 400  # history kept for the call page; a looping call cannot grow forever


def _caller_number(event: Event) -> str | None:
    value = event.get("CallerIDNum")
    return None if value in (None, "", "<unknown>") else value


def _seconds(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 86_400 else None


class CallTracker:
    """Feeds on events; ``handle`` returns the calls each event changed."""

    #: Events that can change a call (filled in below the class from its ``_on_*``
    #: methods). Most of an AMI stream (VarSet, Newexten, device states, RTCP) is
    #: something else; ``wants`` lets the caller skip those cheaply.
    HANDLED: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.calls: dict[str, TrackedCall] = {}
        self.channel_owner: dict[str, str] = {}  # channel name -> linkedid
        self.ignored = 0

    # -- the event stream -------------------------------------------------------------
    def wants(self, name: str) -> bool:
        return name in self.HANDLED

    def handle(self, event: Event, at: datetime, source: TimeSource) -> list[TrackedCall]:
        if event.name not in self.HANDLED:
            return []
        linkedid = event.get("Linkedid") or event.get("DestLinkedid")
        if not linkedid:
            self.ignored += 1
            return []
        call = self.calls.get(linkedid)
        if call is None:
            if event.name == "Hangup":  # the end of a call we never saw begin
                return []
            call = self.calls[linkedid] = TrackedCall(linkedid)
        call.last_event_at = at
        handler = getattr(self, f"_on_{event.name}", None)
        changed = handler(call, event, at, source) if handler is not None else False
        channel = event.get("Channel")
        if channel and event.name not in ("Hangup",) and channel not in call.channels:
            call.channels.add(channel)
            self.channel_owner[channel] = linkedid
        if changed and call.is_call:
            self._note(call, event, at, source)
            return [call]
        if call.ended_at is not None or (not call.channels and not call.is_call):
            self._forget(call)
        return []

    def _note(self, call: TrackedCall, event: Event, at: datetime, source: TimeSource) -> None:
        call._event_count += 1
        if call._event_count > MAX_EVENTS_PER_CALL:
            return
        keep = (
            "Queue", "Interface", "MemberName", "HoldTime", "RingTime", "TalkTime",
            "Reason", "Cause", "Cause-txt", "DialStatus", "DestChannel", "Position",
            "CallerIDNum", "Extension", "Context",
        )  # fmt: skip
        data = {k: v for k in keep if (v := event.get(k)) is not None}
        call.notes.append(EventNote(at, source, event.name, event.get("Channel"), data))

    def _on_Newchannel(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        if ev.get("Uniqueid") == call.linkedid and call.caller is None:
            call.caller = _caller_number(ev)
            call.caller_name = ev.get("CallerIDName")
        return False

    def _on_QueueCallerJoin(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        if call.kind == "queue" and call.entered_at is not None:
            return True  # re-queued after a transfer: same call, first entry counts
        call.kind = "queue"
        call.queue = ev.get("Queue")
        call.caller = _caller_number(ev) or call.caller
        call.caller_name = ev.get("CallerIDName") or call.caller_name
        call.caller_uniqueid = ev.get("Uniqueid")
        call.entered_at = at
        call._weaken(s)
        return True

    def _on_AgentCalled(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        interface = ev.get("Interface") or ev.get("DestChannel") or "?"
        call.attempts.append(Attempt(agent_interface(interface), ev.get("MemberName"), at))
        return True

    def _close_attempt(self, call: TrackedCall, agent: str, at: datetime, result: str) -> None:
        for attempt in reversed(call.attempts):
            if attempt.agent == agent and attempt.result == "ringing":
                attempt.result, attempt.ended_at = result, at
                return

    def _on_AgentRingNoAnswer(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        self._close_attempt(call, agent_interface(ev.get("Interface") or "?"), at, "rona")
        return True

    def _on_AgentConnect(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        agent = agent_interface(ev.get("Interface") or ev.get("DestChannel") or "?")
        self._answer(call, agent, ev.get("MemberName"), at, s)
        call.asterisk_hold_s = _seconds(ev.get("HoldTime"))
        for attempt in call.attempts:
            if attempt.result == "ringing":
                attempt.result = "answered" if attempt.agent == agent else "cancelled"
                attempt.ended_at = at
        return True

    def _answer(
        self, call: TrackedCall, agent: str, name: str | None, at: datetime, s: TimeSource
    ) -> None:
        if call.answered_at is None:
            call.answered_at, call.agent, call.agent_name = at, agent, name
            call._weaken(s)

    def _on_AgentComplete(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        return True

    def _on_QueueCallerAbandon(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        call._abandoned = True
        return True

    def _on_QueueCallerLeave(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        call._left_queue = True
        return True

    def _on_VarSet(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        if ev.get("Variable") != "QUEUESTATUS" or call.answered_at is not None:
            return False
        outcome = _QUEUE_STATUS.get((ev.get("Value") or "").upper())
        if outcome is None:
            return False
        if call.kind is None:  # refused before joining (joinempty=no): still an offered call
            call.kind, call.entered_at = "queue", at
            call.caller = _caller_number(ev) or call.caller
            call.queue = call.queue or ev.get("Queue")
            call._left_queue = True
            call._weaken(s)
        call._queue_status = outcome
        return True

    def _on_DialBegin(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        if not ev.get("Channel"):
            return False  # Originate's own dial: nobody is ringing for a caller yet
        dest = agent_interface(ev.get("DestChannel") or ev.get("DialString") or "?")
        if call.kind is None:
            call.kind = "direct"
            call.entered_at = at
            call.caller = _caller_number(ev) or call.caller
            call.caller_name = ev.get("CallerIDName") or call.caller_name
            call.caller_uniqueid = ev.get("Uniqueid")
            call._weaken(s)
        if call.kind == "direct" and call.answered_at is None:
            call.attempts.append(Attempt(dest, ev.get("DestCallerIDName"), at))
            return True
        if call.answered_at is not None and not dest.startswith(("Local/queue",)):
            if call.agent is None or dest != call.agent:
                call.transferred_to = dest  # a new leg after answer: a transfer
            return True
        return False

    def _on_DialEnd(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        if not ev.get("Channel") or call.kind != "direct":
            return False
        status = (ev.get("DialStatus") or "").upper()
        dest = agent_interface(ev.get("DestChannel") or "?")
        if status == "ANSWER":
            self._answer(call, dest, ev.get("DestCallerIDName"), at, s)
            self._close_attempt(call, dest, at, "answered")
        elif status:
            call._dial_status = status
            self._close_attempt(call, dest, at, "rona" if status == "NOANSWER" else "cancelled")
        return True

    def _on_BlindTransfer(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        ext, ctx = ev.get("Extension"), ev.get("Context")
        call.transferred_to = f"{ext}@{ctx}" if ext and ctx else ext or call.transferred_to
        return call.is_call

    def _on_AttendedTransfer(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        target = ev.get("SecondTransfererExten") or ev.get("TransferTargetChannel")
        call.transferred_to = target or call.transferred_to
        return call.is_call

    def _on_Hangup(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        channel = ev.get("Channel")
        if channel:
            call.channels.discard(channel)
            self.channel_owner.pop(channel, None)
        if call.ended_at is not None:
            return False
        if channel and channel.split(";")[0] == (call.agent or "") and not call.hangup_cause:
            call.hangup_cause = "agent"
        if call.channels:
            return False
        if not call.is_call:
            return False
        call.hangup_cause = call.hangup_cause or ev.get("Cause-txt") or ev.get("Cause")
        self._finish(call, at, s)
        return True

    def _finish(self, call: TrackedCall, at: datetime, source: TimeSource) -> None:
        assert call.entered_at is not None
        call.ended_at = max(at, call.answered_at or call.entered_at)
        for attempt in call.attempts:
            if attempt.result == "ringing":
                attempt.result, attempt.ended_at = "cancelled", call.ended_at
        if call.answered_at is not None:
            call.outcome = CallOutcome.ANSWERED
        elif call.kind == "queue":
            if call._queue_status is not None:
                call.outcome = call._queue_status
            elif call._abandoned or not call._left_queue:
                call.outcome = CallOutcome.ABANDONED
            elif not call.attempts:
                call.outcome = CallOutcome.UNAVAILABLE
            else:
                call.outcome = CallOutcome.TIMEOUT
        else:
            call.outcome = _DIAL_FAILURE.get(call._dial_status or "CANCEL", CallOutcome.FAILED)
        if source == "resync":
            call._weaken(source)

    def _forget(self, call: TrackedCall) -> None:
        for channel in call.channels:
            self.channel_owner.pop(channel, None)
        self.calls.pop(call.linkedid, None)

    def release(self, call: TrackedCall) -> None:
        """Drop a finished call once its final state has been persisted."""
        if call.ended_at is not None:
            self._forget(call)

    # -- reconnect ---------------------------------------------------------------------
    def resync(
        self,
        channels: Iterable[Mapping[str, str]],
        queue_entries: Iterable[Mapping[str, str]],
        now: datetime,
    ) -> list[TrackedCall]:
        """Reconcile with the PBX's own list of live channels and queue entries.

        Calls we track whose channels are all gone ended during the gap (their end is
        known only to be before ``now``: marked ``resync``). Live channels of unknown
        linkedids are calls that began in the gap: adopted with times rebuilt from the
        channel's Duration and the queue entry's Wait.
        """
        live: dict[str, list[Mapping[str, str]]] = {}
        for ch in channels:
            if ch.get("Linkedid"):
                live.setdefault(ch["Linkedid"], []).append(ch)
        waiting = {e.get("Uniqueid") or e.get("Channel"): e for e in queue_entries}
        changed: list[TrackedCall] = []
        for linkedid, call in list(self.calls.items()):
            still = {c["Channel"] for c in live.get(linkedid, []) if c.get("Channel")}
            for gone in call.channels - still:
                self.channel_owner.pop(gone, None)
            call.channels = still
            if not still and call.ended_at is None:
                if call.is_call:
                    # Ended unseen: the PBX restarted or the link was down. The last event we
                    # saw is the best bound we have for when; ``resync`` marks it as such.
                    call.hangup_cause = call.hangup_cause or "interrupted: PBX link lost"
                    self._finish(call, call.last_event_at or now, "resync")
                    changed.append(call)
                else:
                    self._forget(call)
        for linkedid, chans in live.items():
            if linkedid in self.calls:
                continue
            adopted = self._adopt(linkedid, chans, waiting, now)
            if adopted is not None:
                changed.append(adopted)
        return changed

    def _adopt(
        self,
        linkedid: str,
        chans: list[Mapping[str, str]],
        waiting: Mapping[str | None, Mapping[str, str]],
        now: datetime,
    ) -> TrackedCall | None:
        call = TrackedCall(linkedid, time_source="resync")
        call.channels = {c["Channel"] for c in chans if c.get("Channel")}
        for ch in call.channels:
            self.channel_owner[ch] = linkedid
        self.calls[linkedid] = call
        oldest = max((_duration_s(c.get("Duration")) for c in chans), default=0.0)
        root = next((c for c in chans if c.get("Uniqueid") == linkedid), chans[0])
        call.caller = _caller_number_map(root)
        in_queue = [c for c in chans if (c.get("Application") or "").lower() == "queue"]
        entry = next(
            (
                waiting[k]
                for c in chans
                for k in (c.get("Uniqueid"), c.get("Channel"))
                if k in waiting
            ),
            None,
        )
        if entry is not None:
            call.kind, call.queue = "queue", entry.get("Queue")
            call.caller = _caller_number_map(entry) or call.caller
            call.caller_uniqueid = entry.get("Uniqueid")
            call.entered_at = now - timedelta(seconds=_seconds(entry.get("Wait")) or oldest)
        elif in_queue:
            call.kind = "queue"
            call.queue = (in_queue[0].get("ApplicationData") or "").split(",")[0] or None
            call.caller_uniqueid = in_queue[0].get("Uniqueid")
            call.entered_at = now - timedelta(seconds=oldest)
            bridged = [c for c in chans if c.get("BridgeId")]
            if len(bridged) >= 2:  # talking to an agent: answered at some point in the gap
                call.answered_at = now
                agent_ch = next((c for c in bridged if c not in in_queue), None)
                call.agent = agent_interface(agent_ch["Channel"]) if agent_ch else None
        else:
            self._forget(call)
            return None
        return call


CallTracker.HANDLED = frozenset(
    name.removeprefix("_on_") for name in vars(CallTracker) if name.startswith("_on_")
)


def _duration_s(value: str | None) -> float:
    """CoreShowChannel's ``Duration`` is ``HH:MM:SS``."""
    if not value:
        return 0.0
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        return 0.0
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return float(min(seconds, 86_399))


def _caller_number_map(fields: Mapping[str, str]) -> str | None:
    value = fields.get("CallerIDNum")
    return None if value in (None, "", "<unknown>") else value
