"""The wallboard's calls from the tracker's memory, as the database will hold them (issue 17).

Why: from an AMI event to the wallboard used to mean the writer thread's transaction, then a
re-read of every call in progress. With 50 calls joining at once on a loaded 2-core host the
writer ran seconds behind (p99 ~0.9 s). The tracker already knows the answer the moment the
event arrives, and a queue wallboard is a view of the PBX's present, so the process running
the tracker serves calls in progress from the snapshots it hands the writer; other processes
(and other sources' calls) still read the database.

The records must be the ones ``queries.live_records`` would read once the writer caught up:
same key, same labels. Agent labels are the one thing the database adds (identities a person
edited, names learned earlier), so they are passed in as plain maps; everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from earwitness.telephony.calls import TrackedCall
from earwitness.telephony.records import CallOutcome, CallRecord

#: ``Call.source`` of the tracker's rows: record keys are ``source:linkedid``.
TRACKER_SOURCE = "ami"


@dataclass(frozen=True)
class AgentLabels:
    """What the database knows of agent names, each by PBX identifier: identities a person
    set (``manual``), identities learned from the PBX, and agent rows' names."""

    manual: Mapping[str, str]
    learned: Mapping[str, str]
    rows: Mapping[str, str]

    def label(self, interface: str, pbx_name: str | None) -> str:
        """The label ``persist.agent_row`` leaves on the agent once the call is saved: a
        person's name for the identifier wins; else the name the PBX sent (saving learns
        it); else what was learned before, the row's old name, the identifier itself."""
        return (
            self.manual.get(interface)
            or pbx_name
            or self.learned.get(interface)
            or self.rows.get(interface)
            or interface
        )


def shows(call: TrackedCall) -> bool:
    """Whether the call belongs on the wallboard (as ``live_records`` selects rows):
    a call, waiting or talking, not one earwitness placed, not a folded consultation."""
    return (
        call.is_call
        and call.outcome is CallOutcome.IN_PROGRESS
        and call.kind != "outbound"
        and call.merged_into is None
    )


def live_record(call: TrackedCall, labels: AgentLabels) -> CallRecord:
    """The record ``queries.to_record`` builds from the call's saved row."""
    names = _pbx_names(call)
    return CallRecord(
        key=f"{TRACKER_SOURCE}:{call.linkedid}",
        caller=call.caller,
        queue=call.queue,
        agent=labels.label(call.agent, names.get(call.agent)) if call.agent else None,
        entered_at=call.entered_at,  # type: ignore[arg-type]  # shows() checked is_call
        answered_at=call.answered_at,
        ended_at=None,
        outcome=CallOutcome.IN_PROGRESS,
        rona=tuple(
            labels.label(a.agent, names.get(a.agent)) for a in call.attempts if a.result == "rona"
        ),
        transferred_to=call.transferred_to,
    )


def _pbx_names(call: TrackedCall) -> dict[str, str]:
    """The name the PBX gave each agent of the call, as saving it leaves them: the call's
    agent is saved first, then each ring in order, and every name is learned for the agent
    (so an agent new to us is named by whichever event carried a name)."""
    names = {call.agent: call.agent_name} if call.agent and call.agent_name else {}
    names.update((a.agent, a.name) for a in call.attempts if a.name)
    return names


def live_agent_states(calls: Iterable[TrackedCall], labels: AgentLabels) -> dict[str, str]:
    """agent -> ringing|talking, as ``queries.agent_states`` reads it: ringing first, then
    talking over it (an agent talking on one call and rung for another is talking)."""
    calls = list(calls)
    states: dict[str, str] = {}
    for call in calls:
        names = _pbx_names(call)
        for attempt in call.attempts:
            if attempt.result == "ringing":
                states[labels.label(attempt.agent, names.get(attempt.agent))] = "ringing"
    for call in calls:
        if call.answered_at is not None and call.agent:
            states[labels.label(call.agent, _pbx_names(call).get(call.agent))] = "talking"
    return states
