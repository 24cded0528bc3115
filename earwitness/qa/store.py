"""QA results in the database: audit a stored transcript, override a rule, agent scorecards.

Why results are stored and not recomputed on every view: per-agent scorecards over a
month read thousands of calls; the audit runs once per transcript (the ``qa.audit`` job
follows every transcription) and the scorecard query only aggregates. Overrides live in
their own table, so re-auditing after a rule change keeps the QA team's decisions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, NotFound
from earwitness.models import Call, QaOverride, QaResult, Recording, Transcript
from earwitness.qa.audit import Finding, Line, apply_overrides, audit, score_of
from earwitness.qa.loudness import line_loudness
from earwitness.qa.rules import rules_for
from earwitness.qa.speech import channel_roles, speech_by_role
from earwitness.timezones import iso_local, local_day
from earwitness.transcription.pipeline import latest_transcript

STATUSES = ("passed", "failed", "not_applicable")
REMOVED = "removed"  # an override row that withdraws the one before it


def transcript_lines(transcript: Transcript) -> tuple[list[Line], list[int | None]]:
    """Stored segments as audit lines (segment ids kept for citations) and their channels."""
    segs = sorted(transcript.segments, key=lambda s: (s.start_s, s.end_s, s.id))
    lines = [Line(s.id, s.role, s.start_s, s.end_s, s.text) for s in segs]
    return lines, [s.channel for s in segs]


def _agent_and_time(
    session: Session, recording: Recording
) -> tuple[Call | None, str | None, datetime]:
    call = session.get(Call, recording.call_id) if recording.call_id else None
    if call is None:
        return None, None, recording.created_at
    agent = (call.agent.name or call.agent.interface) if call.agent else None
    return call, agent, call.answered_at or call.entered_at


def audit_recording(
    session: Session,
    recording_id: int,
    *,
    rules_file: Path | None = None,
    audio: tuple[npt.NDArray[np.float32], int] | None = None,
) -> QaResult:
    """Audit the recording's latest transcript and store (replace) its result.

    ``audio`` — ``(channels × samples, 16 kHz)`` — adds loudness cues and, for stereo,
    speech timing from voice activity per channel (:mod:`earwitness.qa.speech`); without
    it the timing comes from the segments and agitation from words and repetition.
    """
    recording = session.get(Recording, recording_id)
    if recording is None:
        raise NotFound(f"recording {recording_id} does not exist")
    transcript = latest_transcript(session, recording_id)
    lines, channels = transcript_lines(transcript)
    speech = None
    if audio is not None:
        lines = line_loudness(lines, channels, audio[0], audio[1])
        if not recording.dual_mono:
            roles = channel_roles([x.role for x in lines], channels)
            speech = speech_by_role(audio[0], audio[1], roles)
    ruleset = rules_for(rules_file, transcript.language)
    card = audit(lines, ruleset, duration_s=recording.duration_s, speech=speech)
    call, agent, call_at = _agent_and_time(session, recording)
    row = session.scalar(select(QaResult).where(QaResult.recording_id == recording_id))
    if row is None:
        row = QaResult(recording_id=recording_id, call_at=call_at)
        session.add(row)
    row.transcript_id = transcript.id
    row.call_id = call.id if call else None
    row.agent = agent
    row.call_at = call_at
    row.language = transcript.language
    row.score = card.score
    row.failed = len(card.failed)
    row.findings = {"items": [f.as_dict() for f in card.findings], "agitation": card.agitation}
    row.metrics = card.metrics
    row.params = {
        "ruleset": card.ruleset,
        "rules": card.rules,
        "loudness": audio is not None,
        "transcript_model": transcript.model,
    }
    session.flush()
    return row


def _overrides(
    session: Session, recording_ids: Sequence[int]
) -> dict[int, dict[str, dict[str, Any]]]:
    """Newest override per (recording, rule), with its history count."""
    out: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    if not recording_ids:
        return out
    rows = session.scalars(
        select(QaOverride).where(QaOverride.recording_id.in_(recording_ids)).order_by(QaOverride.id)
    )
    for o in rows:
        if o.status == REMOVED:  # withdrawn: the machine's result applies again
            out[o.recording_id].pop(o.rule_id, None)
            continue
        earlier = out[o.recording_id].get(o.rule_id, {}).get("revisions", 0)
        out[o.recording_id][o.rule_id] = {
            "status": o.status,
            "by": o.by,
            "at": o.created_at.isoformat(),
            "reason": o.reason,
            "revisions": earlier + 1,
        }
    return out


def _findings(row: QaResult, overrides: dict[str, dict[str, Any]]) -> list[Finding]:
    stored = [Finding.from_dict(f) for f in row.findings.get("items", [])]
    return apply_overrides(stored, overrides)


def scorecard(session: Session, recording_id: int) -> dict[str, Any]:
    """The call's scorecard with overrides applied (the machine's score kept beside it)."""
    row = session.scalar(select(QaResult).where(QaResult.recording_id == recording_id))
    if row is None:
        raise _not_audited(session, recording_id)
    findings = _findings(row, _overrides(session, [recording_id]).get(recording_id, {}))
    return {
        "recording_id": recording_id,
        "transcript_id": row.transcript_id,
        "call_id": row.call_id,
        "agent": row.agent,
        "call_at": row.call_at.isoformat(),
        "language": row.language,
        "score": score_of(findings),
        "machine_score": row.score,
        "passed": [f.rule_id for f in findings if f.status == "passed"],
        "failed": [f.rule_id for f in findings if f.status == "failed"],
        "findings": [f.as_dict() for f in findings],
        "metrics": row.metrics,
        "agitation": row.findings.get("agitation", {}),
        "params": row.params,
        "audited_at": row.updated_at.isoformat(),
    }


def set_override(
    session: Session, recording_id: int, rule_id: str, status: str, reason: str, by: str
) -> dict[str, Any]:
    """Record a QA person's decision on one rule; returns the updated scorecard."""
    if status not in STATUSES:
        raise BadInput(f"status must be one of {', '.join(STATUSES)}")
    if not reason.strip():
        raise BadInput("an override needs a reason")
    row = session.scalar(select(QaResult).where(QaResult.recording_id == recording_id))
    if row is None:
        raise _not_audited(session, recording_id)
    known = {f["rule_id"] for f in row.findings.get("items", [])}
    if rule_id not in known:
        raise NotFound(f"rule {rule_id!r} is not in this call's audit; known: {sorted(known)}")
    session.add(QaOverride(recording_id=recording_id, rule_id=rule_id, status=status,
                           reason=reason.strip(), by=by))  # fmt: skip
    session.flush()
    return scorecard(session, recording_id)


def _not_audited(session: Session, recording_id: int) -> NotFound:
    """'Does not exist' for a missing recording; 'not audited yet' only for a real one."""
    if session.get(Recording, recording_id) is None:
        return NotFound(f"recording {recording_id} does not exist")
    return NotFound(f"recording {recording_id} has not been audited yet")


def remove_override(
    session: Session, recording_id: int, rule_id: str, reason: str, by: str
) -> dict[str, Any]:
    """Withdraw a rule's override: the machine's result applies again. Nothing is deleted;
    a ``removed`` row joins the history, so who changed what and why stays on record.
    Idempotent like any DELETE: a rule with no override is left as it is."""
    row = session.scalar(select(QaResult).where(QaResult.recording_id == recording_id))
    if row is None:
        raise _not_audited(session, recording_id)
    known = {f["rule_id"] for f in row.findings.get("items", [])}
    if rule_id not in known:
        raise NotFound(f"rule {rule_id!r} is not in this call's audit; known: {sorted(known)}")
    current = _overrides(session, [recording_id]).get(recording_id, {})
    if rule_id not in current:
        return scorecard(session, recording_id)
    session.add(QaOverride(recording_id=recording_id, rule_id=rule_id, status=REMOVED,
                           reason=reason.strip() or "override removed", by=by))  # fmt: skip
    session.flush()
    return scorecard(session, recording_id)


def override_history(session: Session, recording_id: int) -> list[dict[str, Any]]:
    """Every override of a call, oldest first, including withdrawals (status ``removed``)."""
    if session.get(Recording, recording_id) is None:
        raise NotFound(f"recording {recording_id} does not exist")
    rows = session.scalars(
        select(QaOverride).where(QaOverride.recording_id == recording_id).order_by(QaOverride.id)
    )
    return [
        {"id": o.id, "rule_id": o.rule_id, "status": o.status, "reason": o.reason,
         "by": o.by, "at": o.created_at.isoformat()}
        for o in rows
    ]  # fmt: skip


def agent_scorecards(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    agent: str | None = None,
    worst: int = 5,
    zone: ZoneInfo | None = None,
) -> dict[str, Any]:
    """Per agent over [start, end): calls, mean score, daily trend, worst calls, missed rules.

    Trend days are local to ``zone`` (EARWITNESS_TIMEZONE): a 07:06 Beijing call counts on
    that Beijing day, not the UTC day before."""
    zone = zone or ZoneInfo("UTC")
    if end <= start:
        raise BadInput("'to' must be after 'from'")
    query = select(QaResult).where(QaResult.call_at >= start, QaResult.call_at < end)
    if agent is not None:
        query = query.where(QaResult.agent == agent)
    rows = list(session.scalars(query.order_by(QaResult.call_at)))
    overrides = _overrides(session, [r.recording_id for r in rows])
    by_agent: dict[str, list[tuple[QaResult, float | None, list[Finding]]]] = defaultdict(list)
    for row in rows:
        findings = _findings(row, overrides.get(row.recording_id, {}))
        by_agent[row.agent or "unknown"].append((row, score_of(findings), findings))
    agents = []
    for name, items in sorted(by_agent.items()):
        scores = [s for _, s, _ in items if s is not None]
        daily: dict[str, list[float]] = defaultdict(list)
        for row, s, _ in items:
            if s is not None:
                daily[local_day(row.call_at, zone).isoformat()].append(s)
        missed = Counter(f.rule_id for _, _, fs in items for f in fs if f.status == "failed")
        titles = {f.rule_id: f.title for _, _, fs in items for f in fs}
        ranked = sorted(items, key=lambda x: (x[1] is None, x[1] if x[1] is not None else 0))
        agents.append(
            {
                "agent": name,
                "calls": len(items),
                "mean_score": round(sum(scores) / len(scores), 1) if scores else None,
                "trend": [
                    {"day": day, "mean_score": round(sum(v) / len(v), 1), "calls": len(v)}
                    for day, v in sorted(daily.items())
                ],
                "worst_calls": [
                    {
                        "recording_id": r.recording_id,
                        "call_id": r.call_id,
                        "score": s,
                        "call_at": iso_local(r.call_at, zone),
                        "failed": [f.rule_id for f in fs if f.status == "failed"],
                    }
                    for r, s, fs in ranked[:worst]
                ],  # fmt: skip
                "most_missed": [
                    {
                        "rule_id": rule,
                        "title": titles.get(rule, rule),
                        "calls": n,
                        "share": round(n / len(items), 3),
                    }
                    for rule, n in missed.most_common(10)
                ],  # fmt: skip
                "interruptions_per_call": round(
                    sum(r.metrics.get("agent_interruptions", 0) for r, _, _ in items) / len(items),
                    2,
                ),
            }
        )
    return {
        "from": iso_local(start, zone),
        "to": iso_local(end, zone),
        "tz": zone.key,
        "period": {"from": iso_local(start, zone), "to": iso_local(end, zone), "tz": zone.key},
        "agents": agents,
    }
