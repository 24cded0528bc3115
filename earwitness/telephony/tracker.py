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

Queue overflow — the caller times out of queue A and the dialplan sends them on to
queue B — stays one call. Its wait runs from the first join; every queue it passed
through is kept as a ``QueueVisit`` with its own wait and result; and the call is
*owned* by the answering queue (the queue of the first AgentConnect), or, when nobody
answered, by the last queue it was in: that is the queue whose service level it counts
in, for answers, abandons and timeouts alike. A queue the caller merely passed through
did not fail the caller for good (the dialplan moved them on), and counting the call in
every queue would count one caller several times in any total.

Transfers are routed by the customer's side: ``BlindTransfer`` and ``AttendedTransfer``
carry ``TransfereeLinkedid``/``TransfererLinkedid`` (no ``Linkedid``). Each becomes a
``Transfer`` (who, to whom, when, whether the target answered). An attended transfer whose
consultation ran under a linkedid of its own folds that consultation into the customer's
call (``merged_into``), so the customer keeps one call.

After every (re)connect ``resync`` is given the PBX's own view (CoreShowChannels
and QueueStatus entries): calls that ended in the gap are closed, calls that
started in the gap are adopted, and nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from earwitness.telephony.calls import (
    DIALLED_KINDS,
    ORIGINATED_PREFIX,
    Attempt,
    Event,
    EventNote,
    QueueVisit,
    TimeSource,
    TrackedCall,
    Transfer,
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
        self.aliases: dict[str, str] = {}  # folded consultation linkedid -> customer's linkedid
        self.ignored = 0

    # -- the event stream -------------------------------------------------------------
    def wants(self, name: str) -> bool:
        return name in self.HANDLED

    def handle(self, event: Event, at: datetime, source: TimeSource) -> list[TrackedCall]:
        if event.name not in self.HANDLED:
            return []
        linkedid = (
            event.get("Linkedid")
            or event.get("DestLinkedid")
            # transfer events name each party; the customer (transferee) owns the call
            or event.get("TransfereeLinkedid")
            or event.get("OrigTransfererLinkedid")
            or event.get("TransfererLinkedid")
        )
        if not linkedid:
            self.ignored += 1
            return []
        linkedid = self.aliases.get(linkedid, linkedid)
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
            folded = (
                self._fold_consultation(call, event) if event.name == "AttendedTransfer" else []
            )
            return [call, *folded]
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
            "CallerIDNum", "Extension", "Context", "Result", "DestType", "IsExternal",
            "TransfererChannel", "TransfereeChannel", "TransferTargetChannel",
            "SecondTransfererChannel",
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
        queue = ev.get("Queue") or "?"
        if call.kind == "queue" and call.entered_at is not None:
            # Overflow (not answered yet) or a transfer into a queue (answered): same call,
            # the first entry still starts the wait; a new visit starts here.
            self._settle_visit(call, at, moved_on=True)
            call._abandoned = call._left_queue = False
            call._queue_status = None
            if call.answered_at is None:
                call.queue = queue  # the owner so far: the queue the caller is now in
            call.visits.append(QueueVisit(queue, at))
            return True
        call.kind = "queue"
        call.queue = queue
        call.visits.append(QueueVisit(queue, at))
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
        if call.answered_at is None:
            # The answering queue owns the answer (and so the call's SLA), however many
            # queues the caller waited in before.
            call.queue = ev.get("Queue") or call.queue
            call.asterisk_hold_s = _seconds(ev.get("HoldTime"))
        else:
            self._transfer_answered(call, agent, at)  # transferred into a queue, taken there
        self._answer(call, agent, ev.get("MemberName"), at, s)
        visit = self._visit(call, ev.get("Queue"))
        if visit is not None:
            visit.result = "answered"
            visit.left_at = visit.left_at or at
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
        visit = self._visit(call, ev.get("Queue"))
        if visit is not None and visit.left_at is None:
            visit.left_at = at
        return True

    @staticmethod
    def _visit(call: TrackedCall, queue: str | None) -> QueueVisit | None:
        """The caller's latest visit to ``queue`` (the latest visit when unnamed)."""
        for visit in reversed(call.visits):
            if queue is None or visit.queue == queue:
                return visit
        return None

    def _settle_visit(self, call: TrackedCall, at: datetime, *, moved_on: bool) -> None:
        """Give the latest visit its result once the caller is known to be out of it.

        ``moved_on``: the caller went on to another queue, so they did not hang up here.
        """
        if not call.visits or call.visits[-1].result != "waiting":
            return
        visit = call.visits[-1]
        visit.left_at = visit.left_at or at
        if moved_on:
            outcome = call._queue_status or CallOutcome.TIMEOUT
        elif call.answered_at is not None and call.answered_at < visit.joined_at:
            outcome = call._queue_status or CallOutcome.ABANDONED  # transferred in, gave up
        else:
            outcome = self._queue_outcome(call)
        visit.result = outcome.value

    @staticmethod
    def _queue_outcome(call: TrackedCall) -> CallOutcome:
        """How the caller's latest queue visit ended unanswered."""
        if call._queue_status is not None:
            return call._queue_status
        if call._abandoned or not call._left_queue:
            return CallOutcome.ABANDONED
        if not call.attempts:
            return CallOutcome.UNAVAILABLE
        return CallOutcome.TIMEOUT

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
            call.kind = "outbound" if call.linkedid.startswith(ORIGINATED_PREFIX) else "direct"
            call.entered_at = at
            call.caller = _caller_number(ev) or call.caller
            call.caller_name = ev.get("CallerIDName") or call.caller_name
            call.caller_uniqueid = ev.get("Uniqueid")
            call._weaken(s)
        if call.kind in DIALLED_KINDS and call.answered_at is None:
            call.attempts.append(Attempt(dest, ev.get("DestCallerIDName"), at))
            return True
        if call.answered_at is not None and not dest.startswith(("Local/queue",)):
            if not call.transfers and (call.agent is None or dest != call.agent):
                call.transferred_to = dest  # a new leg with no transfer event (Redirect)
            return True
        return False

    def _on_DialEnd(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        if not ev.get("Channel"):
            return False
        status = (ev.get("DialStatus") or "").upper()
        dest = agent_interface(ev.get("DestChannel") or "?")
        if call.answered_at is not None:
            # A leg after the answer: a blind transfer's target, or an attended transfer's
            # consultation (which is answered before the transfer completes).
            if status != "ANSWER" or dest == call.agent:
                return False
            if not self._transfer_answered(call, dest, at):
                call._consult = (dest, at)
            return True
        if call.kind not in DIALLED_KINDS:
            return False
        if status == "ANSWER":
            self._answer(call, dest, ev.get("DestCallerIDName"), at, s)
            self._close_attempt(call, dest, at, "answered")
        elif status:
            call._dial_status = status
            self._close_attempt(call, dest, at, "rona" if status == "NOANSWER" else "cancelled")
        return True

    @staticmethod
    def _transfer_answered(call: TrackedCall, agent: str, at: datetime) -> bool:
        """Mark the latest transfer still waiting for its target as taken by ``agent``."""
        for transfer in reversed(call.transfers):
            if transfer.result == "Success" and transfer.answered_at is None:
                transfer.answered_at, transfer.answered_by = at, agent
                return True
        return False

    def _on_BlindTransfer(self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource) -> bool:
        ext, ctx = ev.get("Extension"), ev.get("Context")
        target = f"{ext}@{ctx}" if ext and ctx else ext or "?"
        result = ev.get("Result") or "Success"
        transferer = ev.get("TransfererChannel")
        call.transfers.append(
            Transfer(
                "blind", at, agent_interface(transferer) if transferer else None, target, result
            )
        )
        if result == "Success":
            call.transferred_to = target
        return call.is_call

    def _on_AttendedTransfer(
        self, call: TrackedCall, ev: Event, at: datetime, s: TimeSource
    ) -> bool:
        result = ev.get("Result") or "Success"
        channel = ev.get("TransferTargetChannel")
        target = agent_interface(channel) if channel else ev.get("SecondTransfererExten") or "?"
        transferer = ev.get("OrigTransfererChannel") or ev.get("SecondTransfererChannel")
        transfer = Transfer(
            "attended", at, agent_interface(transferer) if transferer else None, target, result
        )
        if result == "Success":
            # The target took the consultation call first: that is when they answered.
            answerer, answered_at = call._consult or (target, at)
            transfer.answered_at, transfer.answered_by = min(answered_at, at), answerer
            call.transferred_to = target
        call._consult = None
        call.transfers.append(transfer)
        return call.is_call

    def _fold_consultation(self, call: TrackedCall, ev: Event) -> list[TrackedCall]:
        """An attended transfer whose consultation had a linkedid of its own (a phone that
        made a second call): that consultation is the agent's, not a customer's call. Its
        channels join the customer's call and it is handed back marked ``merged_into``."""
        folded: list[TrackedCall] = []
        for key in ("SecondTransfererLinkedid", "TransferTargetLinkedid"):
            other_id = ev.get(key)
            other = self.calls.get(other_id) if other_id else None
            if other is None or other is call:
                continue
            for channel in other.channels:
                self.channel_owner[channel] = call.linkedid
            call.channels |= other.channels
            other.channels = set()
            other.merged_into = call.linkedid
            self.aliases[other.linkedid] = call.linkedid
            self.calls.pop(other.linkedid, None)
            if other.is_call:
                folded.append(other)
        return folded

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
        self._settle_visit(call, call.ended_at, moved_on=False)
        for attempt in call.attempts:
            if attempt.result == "ringing":
                attempt.result, attempt.ended_at = "cancelled", call.ended_at
        if call.answered_at is not None:
            call.outcome = CallOutcome.ANSWERED
        elif call.kind == "queue":
            call.outcome = self._queue_outcome(call)
        else:
            call.outcome = _DIAL_FAILURE.get(call._dial_status or "CANCEL", CallOutcome.FAILED)
        if source == "resync":
            call._weaken(source)

    def _forget(self, call: TrackedCall) -> None:
        for channel in call.channels:
            self.channel_owner.pop(channel, None)
        self.calls.pop(call.linkedid, None)
        for alias in [a for a, target in self.aliases.items() if target == call.linkedid]:
            del self.aliases[alias]

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
