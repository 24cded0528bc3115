"""Everything about a case on one time axis, as JSON for the web UI and the bundle.

Calls (with wait and rings), the transcript lines facts came from, promises (made,
due, kept), track events (departure, stops, arrival, gaps, drift), case actions
and deadlines. Each event carries ``at`` (ISO in the configured zone), ``type``, ``label`` a
person can read, plus the ids needed to open the source.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.cases.lifecycle import get_case, milestones, promise_states
from earwitness.cases.policy import Policy, deadline_states
from earwitness.models import Call, Track, case_calls, utcnow
from earwitness.timezones import iso_local, local_day


def _call_events(call: Call) -> list[dict[str, Any]]:
    agent = (call.agent.name or call.agent.interface) if call.agent else None
    base: dict[str, Any] = {"call_id": call.id, "caller": call.caller}
    events: list[dict[str, Any]] = [
        base
        | {
            "at": call.entered_at.isoformat(),
            "type": "call",
            "label": f"call from {call.caller or 'unknown'} ({call.outcome})",
            "wait_s": call.wait_s,
            "rings": call.rings,
            "outcome": call.outcome,
        }
    ]
    if call.answered_at:
        rings = f", {call.rings} ring(s)" if call.rings is not None else ""
        wait = f" after {call.wait_s:.0f} s" if call.wait_s is not None else ""
        events.append(
            base
            | {
                "at": call.answered_at.isoformat(),
                "type": "call_answered",
                "label": f"answered by {agent or 'an agent'}{wait}{rings}",
                "agent": agent,
            }
        )
    if call.ended_at:
        events.append(
            base | {"at": call.ended_at.isoformat(), "type": "call_ended", "label": "call ended"}
        )
    return events


def _track_events(track: Track) -> list[dict[str, Any]]:
    result = track.analysis or {}
    base: dict[str, Any] = {"track_id": track.id, "evidence_id": track.evidence_id}
    events: list[dict[str, Any]] = []
    trip = result.get("trip") or {}
    if trip.get("departed_at"):
        events.append(base | {"at": trip["departed_at"], "type": "departure", "label": "departed"})
    for stop in result.get("stops") or []:
        place = f" ({stop['place']['name']})" if stop.get("place") else ""
        events.append(
            base
            | {
                "at": stop["start"],
                "end": stop["end"],
                "type": "stop",
                "label": f"stopped {stop['minutes']} min{place} ({stop.get('phase', '')})",
                "lat": stop["lat"],
                "lon": stop["lon"],
            }
        )
    arrival = result.get("arrival") or {}
    if arrival.get("reached"):
        events.append(base | {"at": arrival["at"], "type": "arrival", "label": "arrived"})
    for gap in result.get("gaps") or []:
        if gap.get("start"):
            events.append(
                base
                | {"at": gap["start"], "end": gap["end"], "type": "gps_gap", "label": "GPS gap"}
            )
    for jump in result.get("jumps") or []:
        if jump.get("at") and jump.get("outlier_index") == jump.get("to_index"):
            events.append(
                base | {"at": jump["at"], "type": "drift", "label": f"drift {jump['distance_m']} m"}
            )
    return events


def build_timeline(
    session: Session,
    policy: Policy,
    case_id: int,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
) -> dict[str, Any]:
    """Events sorted by time; every time is ISO with the offset of ``zone`` (the configured
    zone), so calls, actions and track verdicts read on one clock, and ``day`` is local."""
    zone = zone or ZoneInfo("UTC")
    case = get_case(session, case_id)
    now = now or utcnow()
    events: list[dict[str, Any]] = []
    calls = session.scalars(
        select(Call)
        .join(case_calls, case_calls.c.call_id == Call.id)
        .where(case_calls.c.case_id == case.id)
    )
    for call in calls:
        events.extend(_call_events(call))
    for fact in (case.facts or {}).get("items", []):
        source = fact.get("source") or {}
        if source.get("at") and fact.get("status") != "rejected":
            events.append(
                {
                    "at": source["at"],
                    "type": "transcript_line",
                    "label": f"{fact['kind']}: {fact['value']}",
                    "line": source.get("line"),
                    "role": source.get("role"),
                    "call_id": source.get("call_id"),
                    "segment_id": source.get("segment_id"),
                    "fact_id": fact.get("id"),
                }
            )
    for promise in promise_states(case, now):
        events.append(
            {
                "at": promise["made_at"],
                "type": "promise",
                "label": promise["text"],
                "due_at": promise["due_at"],
                "state": promise["state"],
                "action_id": promise["id"],
            }
        )
        events.append(
            {
                "at": promise["due_at"],
                "type": "promise_due",
                "label": f"promise due ({promise['state']}): {promise['text']}",
                "state": promise["state"],
                "action_id": promise["id"],
            }
        )
    for action in case.actions:
        if action.kind in ("promise",):
            continue
        events.append(
            {
                "at": action.at.isoformat(),
                "type": "action",
                "kind": action.kind,
                "label": f"{action.kind}: {action.text}".strip(": "),
                "actor": action.actor,
                "action_id": action.id,
            }
        )
    for track in session.scalars(select(Track).where(Track.case_id == case.id)):
        events.extend(_track_events(track))
    for deadline in deadline_states(policy, case.urgency, milestones(case), now):
        events.append(
            {
                "at": deadline["due_at"],
                "type": "deadline",
                "label": f"{deadline['label']} due ({deadline['text']})",
                "clock": deadline["clock"],
                "state": deadline["state"],
            }
        )
    events.sort(key=lambda e: (datetime.fromisoformat(e["at"]), e["type"]))
    for event in events:
        for key in ("at", "end", "due_at"):
            if event.get(key):
                event[key] = iso_local(datetime.fromisoformat(event[key]), zone)
        event["day"] = local_day(datetime.fromisoformat(event["at"]), zone).isoformat()
    return {
        "case_id": case.id,
        "number": case.number,
        "tz": zone.key,
        "generated_at": iso_local(now, zone),
        "events": events,
    }
