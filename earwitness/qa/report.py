"""Scorecards as self-contained HTML with inline SVG (no scripts, no external files).

Why pictures: a QA reviewer sees an interruption or a long silence on a two-lane timeline
at a glance, and an agent's trend as a line, faster than in a table of numbers. The pages
can be mailed or archived as they are.
"""

from __future__ import annotations

import html
from typing import Any

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;"
    "text-align:left;vertical-align:top}.passed{color:#17702b}.failed{color:#b3261e}"
    ".not_applicable{color:#888}small{color:#666}"
)
_LANE = {"customer": (20, "#5b8def"), "agent": (60, "#43a047")}


def _e(value: Any) -> str:
    return html.escape(str(value))


def call_timeline_svg(card: dict[str, Any], width: int = 900) -> str:
    """Customer and agent lanes over the call; overtalk red, long silences grey, and a
    marker under each line a finding cites (red: failed, green: passed)."""
    metrics = card.get("metrics", {})
    duration = float(metrics.get("duration_s") or 1.0) or 1.0
    scale = (width - 90) / duration

    def x(t: float) -> float:
        return 80 + t * scale

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="130" '
             'font-size="11" role="img" aria-label="call timeline">']  # fmt: skip
    for role, (y, _) in _LANE.items():
        parts.append(f'<text x="4" y="{y + 13}">{role}</text>')
    for gap in metrics.get("non_talk", []):
        w = (gap["end_s"] - gap["start_s"]) * scale
        parts.append(f'<rect x="{x(gap["start_s"]):.1f}" y="14" width="{w:.1f}" height="72" '
                     'fill="#ddd"><title>silence</title></rect>')  # fmt: skip
    seen: set[tuple[Any, float]] = set()
    for finding in card.get("findings", []):
        for cite in finding.get("cites", []):
            key = (cite["segment_id"], cite["start_s"])
            y, colour = _LANE.get(cite["role"], (40, "#999"))
            if key not in seen:
                seen.add(key)
                w = max((cite["end_s"] - cite["start_s"]) * scale, 1.0)
                parts.append(f'<rect x="{x(cite["start_s"]):.1f}" y="{y}" width="{w:.1f}" '
                             f'height="18" fill="{colour}" opacity="0.8">'
                             f'<title>{_e(cite["text"])}</title></rect>')  # fmt: skip
            mark = "#b3261e" if finding["status"] == "failed" else "#17702b"
            parts.append(f'<circle cx="{x(cite["start_s"]):.1f}" cy="{96 + 8 * (len(seen) % 3)}" '
                         f'r="3" fill="{mark}"><title>{_e(finding["rule_id"])}: '
                         f'{_e(finding["reason"])}</title></circle>')  # fmt: skip
    for cut in metrics.get("interruptions", []):
        w = max(cut["overlap_s"] * scale, 1.5)
        parts.append(f'<rect x="{x(cut["at_s"]):.1f}" y="14" width="{w:.1f}" height="72" '
                     f'fill="#e53935" opacity="0.45"><title>{_e(cut["by"])} interrupts at '
                     f'{cut["at_s"]:.1f} s</title></rect>')  # fmt: skip
    for t in range(0, int(duration) + 1, max(5, int(duration / 10) or 1)):
        parts.append(f'<text x="{x(t):.1f}" y="128">{t}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def call_html(card: dict[str, Any]) -> str:
    rows = []
    for f in card["findings"]:
        cites = "<br>".join(
            f"{_e(c['role'])} {c['start_s']:.1f} s (segment {_e(c['segment_id'])}): "
            f"“{_e(c['text'][:160])}”"
            + (f" <small>[{_e(c['match'])}]</small>" if c["match"] else "")
            for c in f["cites"]
        )
        over = f["override"]
        note = (f'<br><small>override by {_e(over["by"])} at {_e(over["at"])}: '
                f'{_e(over["reason"])} (machine: {_e(over["machine_status"])})</small>'
                if over else "")  # fmt: skip
        rows.append(
            f"<tr><td>{_e(f['rule_id'])}<br><small>{_e(f['title'])}</small></td>"
            f'<td class="{_e(f["status"])}">{_e(f["status"])}{note}</td>'
            f"<td>{_e(f['weight']):s}</td><td>{_e(f['reason'])}</td><td>{cites}</td></tr>"
        )
    m = card["metrics"]
    facts = ", ".join(
        f"{k} {_e(m.get(k))}"
        for k in ("talk_ratio_agent", "agent_interruptions", "overtalk_s", "non_talk_s",
                  "longest_silence_s", "mean_response_latency_s", "agitation_start",
                  "agitation_end")
    )  # fmt: skip
    return (
        f"<!doctype html><meta charset='utf-8'><title>QA recording {card['recording_id']}</title>"
        f"<style>{_STYLE}</style><h1>QA scorecard — recording {card['recording_id']}</h1>"
        f"<p>agent <b>{_e(card.get('agent'))}</b>, {_e(card.get('call_at'))}, score "
        f"<b>{_e(card['score'])}</b> <small>(machine {_e(card.get('machine_score'))}; rules "
        f"{_e(card['params'].get('ruleset', {}).get('name'))})</small></p>"
        f"{call_timeline_svg(card)}<p><small>{facts}</small></p>"
        "<table><tr><th>rule</th><th>result</th><th>weight</th><th>why</th><th>lines</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def trend_svg(trend: list[dict[str, Any]], width: int = 420, height: int = 120) -> str:
    """Daily mean score (0–100) as a line with dots."""
    if not trend:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>"
    n = len(trend)
    step = (width - 40) / max(n - 1, 1)
    pts = [(30 + i * step, 10 + (100 - t["mean_score"]) * (height - 30) / 100)
           for i, t in enumerate(trend)]  # fmt: skip
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0"><title>{_e(t["day"])}: '
        f"{t['mean_score']} ({t['calls']} calls)</title></circle>"
        for (x, y), t in zip(pts, trend, strict=True)
    )
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-size="10"><text x="0" y="14">100</text><text x="0" y="{height - 18}">0</text>'
            f'<polyline points="{path}" fill="none" stroke="#1565c0"/>{dots}'
            f'<text x="30" y="{height - 4}">{_e(trend[0]["day"])}</text>'
            f'<text x="{width - 80}" y="{height - 4}">{_e(trend[-1]["day"])}</text>'
            "</svg>")  # fmt: skip


def agents_html(data: dict[str, Any]) -> str:
    blocks = []
    for a in data["agents"]:
        worst = "".join(
            f"<li>recording {w['recording_id']}: {_e(w['score'])} — "
            f"{_e(', '.join(w['failed']))}</li>"
            for w in a["worst_calls"]
        )
        missed = "".join(
            f"<li>{_e(m['title'])}: {m['calls']} calls ({m['share'] * 100:.0f} %)</li>"
            for m in a["most_missed"]
        )
        blocks.append(
            f"<h2>{_e(a['agent'])}</h2><p>{a['calls']} calls, mean score "
            f"<b>{_e(a['mean_score'])}</b>, {a['interruptions_per_call']} interruptions/call</p>"
            f"{trend_svg(a['trend'])}<h3>Worst calls</h3><ul>{worst}</ul>"
            f"<h3>Most missed rules</h3><ul>{missed}</ul>"
        )
    return (
        "<!doctype html><meta charset='utf-8'><title>QA by agent</title>"
        f"<style>{_STYLE}</style><h1>QA by agent</h1><p>{_e(data['from'])} – {_e(data['to'])}</p>"
        + ("".join(blocks) or "<p>No audited calls in this period.</p>")
    )
