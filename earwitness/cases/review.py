"""The Monday review (seed 000): a week of complaints by category, root cause, urgency
and agent, the deadline breaches, and follow-up satisfaction against the target (85 %).

``weekly_review`` gathers the numbers; ``to_html`` (inline SVG bar chart, no scripts,
no external files: it can be mailed as is) and ``to_csv`` present them.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.cases.followup_rules import satisfaction
from earwitness.cases.lifecycle import mask_phone, milestones
from earwitness.cases.policy import Policy, deadline_states
from earwitness.models import Case, CaseAction
from earwitness.timezones import day_start, iso_week


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly_review(
    session: Session,
    policy: Policy,
    monday: date,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
) -> dict[str, Any]:
    """The review of the local week (Monday 00:00 to Monday 00:00 in ``zone``) with ``monday``.

    The first-ask agent of a case registered without one is its current owner: a case Lucy
    Zhao owns is hers, not "unassigned"."""
    zone = zone or ZoneInfo("UTC")
    monday = week_start(monday)
    start = day_start(monday, zone)
    end = day_start(monday + timedelta(days=7), zone)
    now = min(now or datetime.now(UTC), end)
    opened = list(
        session.scalars(
            select(Case).where(Case.opened_at >= start, Case.opened_at < end).order_by(Case.id)
        )
    )
    counts = {
        "category": Counter(c.category for c in opened),
        "root_cause": Counter(c.root_cause or "unknown" for c in opened),
        "urgency": Counter(c.urgency for c in opened),
        "agent": Counter(c.first_owner or c.owner or "unassigned" for c in opened),
    }
    breaches = []
    candidates = session.scalars(select(Case).where(Case.opened_at < end))
    for case in candidates:
        for state in deadline_states(policy, case.urgency, milestones(case), now):
            due = datetime.fromisoformat(state["due_at"])
            if state["breach"] and start <= due < end:
                breaches.append(
                    {
                        "case": case.number,
                        "case_id": case.id,
                        "urgency": case.urgency,
                        "phone": mask_phone(case.complainant_phone),
                        "clock": state["label"],
                        "due_at": state["due_at"],
                        "state": state["state"],
                        "text": state["text"],
                    }
                )
    follow_ups = list(
        session.scalars(
            select(CaseAction).where(
                CaseAction.kind == "follow_up", CaseAction.at >= start, CaseAction.at < end
            )
        )
    )
    # Per team (the case's owner: the handling team is measured on it, seed 000).
    by_team: dict[str, list[bool]] = {}
    for action in follow_ups:
        team = action.case.owner or "unassigned"
        by_team.setdefault(team, []).append(action.data.get("satisfied") is True)
    target = policy.satisfaction_target
    return {
        "week": monday.isoformat(),
        "iso_week": iso_week(monday, zone),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "tz": zone.key,
        "period": {"from": start.isoformat(), "to": end.isoformat(), "tz": zone.key},
        "cases_opened": len(opened),
        "counts": {
            k: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for k, v in counts.items()
        },
        "breaches": sorted(breaches, key=lambda b: b["due_at"]),
        "follow_up": satisfaction((a.data.get("satisfied") is True for a in follow_ups), target),
        "follow_up_by_team": {
            team: satisfaction(flags, target) for team, flags in sorted(by_team.items())
        },
        "policy": policy.source,
    }


def bar_chart_svg(title: str, counts: dict[str, int], width: int = 520) -> str:
    """Horizontal bars; labels escaped, sizes computed here (no JS, no fonts fetched)."""
    row, label_w = 24, 170
    height = 34 + row * max(len(counts), 1)
    top = max(counts.values(), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (key, value) in enumerate(counts.items()):
        y = 28 + i * row
        bar = int((width - label_w - 50) * value / top)
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(key)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar}" height="16" fill="#3b6ea5"/>')
        parts.append(f'<text x="{label_w + bar + 6}" y="{y + 15}" font-size="12">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(review: dict[str, Any]) -> str:
    esc = html.escape
    follow = review["follow_up"]
    rate = f"{follow['rate'] * 100:.0f} %" if follow["rate"] is not None else "no data"
    verdict = follow["state"]
    charts = "".join(
        f"<figure>{bar_chart_svg(title, review['counts'][key])}</figure>"
        for key, title in (
            ("category", "By category"),
            ("root_cause", "By root cause"),
            ("urgency", "By urgency"),
            ("agent", "By first-ask agent"),
        )
    )
    rows = (
        "".join(
            "<tr>"
            + "".join(
                f"<td>{esc(str(b[k]))}</td>"
                for k in ("case", "urgency", "phone", "clock", "due_at", "text")
            )
            + "</tr>"
            for b in review["breaches"]
        )
        or '<tr><td colspan="6">no deadline breaches</td></tr>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Weekly complaint review {esc(review["week"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}figure{{margin:1em 0}}</style></head>
<body><h1>Weekly complaint review — week of {esc(review["week"])}
({esc(review.get("iso_week", ""))}, {esc(review.get("tz", "UTC"))})</h1>
<p>{review["cases_opened"]} case(s) opened. Follow-up satisfaction: {esc(rate)}
({follow["satisfied"]} of {follow["count"]}), target {follow["target"] * 100:.0f} % — {verdict}.</p>
{charts}
<h2>Deadline breaches</h2>
<table><tr><th>case</th><th>urgency</th><th>complainant</th><th>deadline</th><th>due</th><th>state</th></tr>
{rows}</table>
<p><small>policy: {esc(review["policy"])}</small></p></body></html>
"""


def to_csv(review: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "key", "value"])
    writer.writerow(["summary", "week", review["week"]])
    writer.writerow(["summary", "cases_opened", review["cases_opened"]])
    for section, counts in review["counts"].items():
        for key, value in counts.items():
            writer.writerow([section, key, value])
    follow = review["follow_up"]
    for key in ("count", "satisfied", "rate", "target", "state"):
        writer.writerow(["follow_up", key, follow[key]])
    for team, figures in review.get("follow_up_by_team", {}).items():
        writer.writerow(["follow_up_team", team, f"{figures['satisfied']}/{figures['count']}"])
    for breach in review["breaches"]:
        writer.writerow(["breach", breach["case"], f"{breach['clock']}: {breach['text']}"])
    return out.getvalue()
