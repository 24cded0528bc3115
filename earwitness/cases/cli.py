"""Command bodies for ``earwitness case ...`` and ``earwitness review``.

Each command opens the configured storage, does one service call in one
transaction, and prints a short human line (or JSON with ``--json``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from earwitness.cases import lifecycle as lc
from earwitness.cases.policy import Policy, deadline_states, policy_for
from earwitness.errors import BadInput
from earwitness.timezones import local_day, zone_named

case_app = typer.Typer(help="Complaint cases.", no_args_is_help=True)
console = Console()
T = TypeVar("T")
ACTOR = typer.Option("--as", help="who is acting (recorded in the history)")


@contextmanager
def _session() -> Iterator[tuple[Session, Policy, Any]]:
    from earwitness.config import load_settings
    from earwitness.runtime import Runtime

    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            yield session, policy_for(runtime.settings.case_policy_file), runtime
    finally:
        runtime.close()


def _emit(data: Any, as_json: bool, line: Callable[[], str]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        console.print(line(), highlight=False)


@case_app.command("create")
def create(
    phone: Annotated[str | None, typer.Option(help="complainant phone")] = None,
    category: Annotated[str, typer.Option()] = "other",
    urgency: Annotated[str, typer.Option(help="A (major service failure), B or C")] = "B",
    tier: Annotated[int, typer.Option(help="escalation tier 1-3")] = 1,
    summary: Annotated[str, typer.Option()] = "",
    owner: Annotated[str | None, typer.Option(help="first-ask owner")] = None,
    actor: Annotated[str, ACTOR] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register a complaint case (its number carries the local day)."""
    if not (phone or summary.strip()):
        raise BadInput("a case needs --phone or --summary (who complains or about what)")
    with _session() as (session, policy, runtime):
        case = lc.create_case(
            session,
            policy,
            zone=zone_named(runtime.settings.timezone),
            actor=actor,
            owner=owner,
            complainant_phone=phone,
            category=category,
            urgency=urgency,
            tier=tier,
            summary=summary,
        )
        data = {"id": case.id, "number": case.number, "owner": case.owner}
    _emit(
        data, as_json, lambda: f"case {data['number']} (id {data['id']}) owned by {data['owner']}"
    )


@case_app.command("from-call")
def from_call(
    call_id: Annotated[int, typer.Argument()],
    category: Annotated[str, typer.Option()] = "other",
    actor: Annotated[str, ACTOR] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open a case from a call, linking the number's earlier calls and suggesting facts."""
    from earwitness.cases.from_call import open_from_call

    with _session() as (session, policy, runtime):
        zone = zone_named(runtime.settings.timezone)
        case = open_from_call(session, policy, call_id, actor=actor, category=category, zone=zone)
        facts = case.facts.get("items", [])
        data = {
            "id": case.id,
            "number": case.number,
            "owner": case.owner,
            "urgency": case.urgency,
            "facts": facts,
        }
    _emit(
        data,
        as_json,
        lambda: (
            f"case {data['number']} (id {data['id']}), urgency {data['urgency']}, "
            f"owner {data['owner']}, {len(facts)} suggested fact(s)"
        ),
    )


@case_app.command("list")
def list_cases(
    status: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Cases, newest first (phone numbers masked)."""
    from sqlalchemy import select

    from earwitness.models import Case

    with _session() as (session, _, _rt):
        query = select(Case).order_by(Case.id.desc()).limit(200)
        if status:
            query = query.where(Case.status == status)
        rows = [
            {
                "id": c.id,
                "number": c.number,
                "status": c.status,
                "urgency": c.urgency,
                "owner": c.owner,
                "phone": lc.mask_phone(c.complainant_phone),
                "category": c.category,
            }
            for c in session.scalars(query)
        ]
    _emit(
        rows,
        as_json,
        lambda: (
            "\n".join(
                f"{r['number']}  {r['status']:<13} {r['urgency']}  {r['category']:<18} "
                f"{r['phone'] or '-':<12} {r['owner'] or '-'}"
                for r in rows
            )
            or "no cases"
        ),
    )


@case_app.command("status")
def status(
    case_id: Annotated[int, typer.Argument()],
    to: Annotated[
        str, typer.Argument(help="assigned|investigating|resolved|follow_up|closed|reopened")
    ],
    note: Annotated[str, typer.Option(help="note; required as the reason to reopen")] = "",
    actor: Annotated[str, ACTOR] = "cli",
) -> None:
    """Move a case along its workflow."""
    from earwitness.cases.followup import schedule_on_resolution

    with _session() as (session, policy, _rt):
        case = lc.change_status(session, lc.get_case(session, case_id), to, actor, note)
        console.print(f"case {case.number} is now {case.status}")
        if case.status == "resolved":
            fu = schedule_on_resolution(session, policy, case, actor)
            if fu is not None:
                console.print(f"follow-up {fu.id} ({fu.channel}): {fu.state}, due {fu.due_at}")


@case_app.command("handover")
def handover(
    case_id: Annotated[int, typer.Argument()],
    to: Annotated[str, typer.Argument(help="new owner")],
    reason: Annotated[str, typer.Option(help="why (required)")],
    actor: Annotated[str, ACTOR] = "cli",
) -> None:
    """Hand a case to a new owner (recorded; custody log of its evidence too)."""
    with _session() as (session, _, _rt):
        case = lc.handover(session, lc.get_case(session, case_id), to, actor, reason)
        console.print(f"case {case.number} now owned by {case.owner}")


@case_app.command("promise")
def promise(
    case_id: Annotated[int, typer.Argument()],
    text: Annotated[str, typer.Argument(help="what was promised")],
    within: Annotated[float, typer.Option(help="minutes from now")],
    actor: Annotated[str, ACTOR] = "cli",
) -> None:
    """Record a time commitment to the customer."""
    from earwitness.timezones import show as show_time

    with _session() as (session, _, runtime):
        action = lc.add_promise(
            session, lc.get_case(session, case_id), actor, text, within_minutes=within
        )
        due = show_time(action.due_at, zone_named(runtime.settings.timezone))
        console.print(f"promise {action.id} due {due}", highlight=False)


@case_app.command("deadlines")
def deadlines(
    all_clocks: Annotated[bool, typer.Option("--all", help="also running clocks")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Breached deadlines and broken promises of open cases, with how long overdue."""
    from earwitness.cases.deadlines import list_deadlines
    from earwitness.models import utcnow

    with _session() as (session, policy, _):
        rows = list_deadlines(session, policy, utcnow(), breached_only=not all_clocks)
    _emit(
        rows,
        as_json,
        lambda: (
            "\n".join(f"{r['number']}  {r['urgency']}  {r['what']:<32} {r['text']}" for r in rows)
            or "no breaches"
        ),
    )


@case_app.command("show")
def show(
    case_id: Annotated[int, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A case: summary, owner, facts, calls, evidence, deadlines and promises."""
    with _session() as (session, policy, runtime):
        data = case_overview(session, policy, case_id, zone_named(runtime.settings.timezone))
    _emit(data, as_json, lambda: overview_text(data))


def case_overview(session: Session, policy: Policy, case_id: int, zone: Any) -> dict[str, Any]:
    """What an investigator needs first, with times in the configured zone."""
    from sqlalchemy import select

    from earwitness.models import Call, Evidence, case_calls, utcnow
    from earwitness.timezones import show as show_time

    case = lc.get_case(session, case_id)
    now = utcnow()
    calls = session.scalars(
        select(Call)
        .join(case_calls, case_calls.c.call_id == Call.id)
        .where(case_calls.c.case_id == case.id)
        .order_by(Call.entered_at)
    ).all()
    evidence = session.scalars(
        select(Evidence).where(Evidence.case_id == case.id).order_by(Evidence.id)
    ).all()
    facts = [f for f in (case.facts or {}).get("items", []) if f.get("status") != "rejected"]
    return {
        "id": case.id,
        "number": case.number,
        "status": case.status,
        "urgency": case.urgency,
        "category": case.category,
        "tier": case.tier,
        "summary": case.summary,
        "complainant": {"phone": case.complainant_phone, "name": case.complainant_name},
        "owner": case.owner,
        "first_owner": case.first_owner,
        "opened_at": show_time(case.opened_at, zone),
        "facts": [
            {"kind": f.get("kind"), "value": f.get("value"), "status": f.get("status")}
            for f in facts
        ],
        "calls": [
            {
                "id": c.id,
                "at": show_time(c.entered_at, zone),
                "caller": c.caller,
                "outcome": c.outcome,
                "wait_s": c.wait_s,
                "rings": c.rings,
                "agent": (c.agent.name or c.agent.interface) if c.agent else None,
            }
            for c in calls
        ],
        "evidence": [
            {
                "id": e.id,
                "kind": e.kind,
                "name": e.original_name,
                "size_bytes": e.size_bytes,
                "sha256": e.sha256,
                "received_at": show_time(e.received_at, zone),
            }
            for e in evidence
        ],
        "deadlines": deadline_states(policy, case.urgency, lc.milestones(case), now),
        "promises": lc.promise_states(case, now),
    }


def overview_text(data: dict[str, Any]) -> str:
    who = data["complainant"]
    lines = [
        f"{data['number']}  {data['status']}  urgency {data['urgency']}  tier {data['tier']}  "
        f"{data['category']}  opened {data['opened_at']}",
        f"owner: {data['owner'] or 'unassigned'} (first ask: {data['first_owner'] or '-'})",
        f"complainant: {who['name'] or '-'}  {who['phone'] or '-'}",
        f"summary: {data['summary'] or '-'}",
        "facts:" if data["facts"] else "facts: none",
        *(f"  {f['kind']}: {f['value']} ({f['status'] or 'suggested'})" for f in data["facts"]),
        "calls:" if data["calls"] else "calls: none",
        *(
            f"  #{c['id']} {c['at']}  {c['caller'] or '?'}  {c['outcome']}  "
            f"wait {c['wait_s'] if c['wait_s'] is not None else '-'} s, "
            f"{c['rings'] if c['rings'] is not None else '-'} ring(s)  {c['agent'] or ''}".rstrip()
            for c in data["calls"]
        ),
        "evidence:" if data["evidence"] else "evidence: none",
        *(
            f"  #{e['id']} {e['kind']}  {e['name']}  {e['size_bytes']} B  "
            f"sha256 {e['sha256'][:12]}…  {e['received_at']}"
            for e in data["evidence"]
        ),
        "deadlines:",
        *(f"  {d['label']:<28} {d['state']:<9} {d['text']}" for d in data["deadlines"]),
        *(f"  promise: {p['text']} — {p['state']}" for p in data["promises"]),
    ]
    return "\n".join(lines)


@case_app.command("timeline")
def timeline(case_id: Annotated[int, typer.Argument()]) -> None:
    """The case's timeline as JSON."""
    from earwitness.cases.timeline import build_timeline

    with _session() as (session, policy, runtime):
        data = build_timeline(session, policy, case_id, zone=zone_named(runtime.settings.timezone))
    _emit(data, True, str)


@case_app.command("bundle")
def bundle(
    case_id: Annotated[int, typer.Argument()],
    out: Annotated[Path, typer.Option(help="zip file to write (must not exist)")],
    allow_tampered: Annotated[
        bool,
        typer.Option(
            "--allow-tampered",
            help="export even if verification fails (the zip then opens with TAMPERED.txt)",
        ),
    ] = False,
    actor: Annotated[str, ACTOR] = "cli",
) -> None:
    """Export the case bundle (verify it with: unzip; sha256sum -c SHA256SUMS).

    Refused (exit 2, naming each failure, nothing written) when the case's evidence
    fails verification, unless --allow-tampered.
    """
    import os
    import tempfile

    from earwitness.cases.timeline import build_timeline
    from earwitness.evidence.bundle import write_bundle

    if out.exists():
        raise BadInput(f"{out} exists; evidence exports never overwrite")
    # Written beside the target and linked into place only when complete: a refused or
    # failed export leaves no file, and a concurrent writer of ``out`` is never clobbered.
    if not out.parent.is_dir():
        raise BadInput(f"{out.parent} is not a directory")
    fd, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as fh, _session() as (session, policy, runtime):
            lc.get_case(session, case_id)
            data = build_timeline(
                session, policy, case_id, zone=zone_named(runtime.settings.timezone)
            )
            manifest = write_bundle(
                session,
                runtime.blobs,
                case_id,
                fh,
                actor=actor,
                timeline=data,
                allow_tampered=allow_tampered,
                settings=runtime.settings,
            )
        try:
            os.link(partial, out)
        except FileExistsError:
            raise BadInput(f"{out} exists; evidence exports never overwrite") from None
    finally:
        Path(partial).unlink(missing_ok=True)
    summary = (
        f"wrote {out}: {len(manifest['files'])} file(s), "
        f"{sum(1 for r in manifest['recordings'] if r['audio'])} recording(s), "
        f"verified={manifest['verified']}"
    )
    if manifest["tampered"]:
        console.print(f"[bold red]TAMPERED[/] {summary}", highlight=False)
        for line in manifest["tampered"]:
            console.print(f"  [red]{line}[/]", highlight=False)
    else:
        console.print(summary, highlight=False)


def review_command(
    week: Annotated[str | None, typer.Option(help="any day of the week (YYYY-MM-DD)")] = None,
    html: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    csv: Annotated[Path | None, typer.Option(help="write the CSV here")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The Monday review: counts, breaches, follow-up satisfaction vs target."""
    from earwitness.cases.review import to_csv, to_html, week_start, weekly_review
    from earwitness.models import utcnow

    with _session() as (session, policy, runtime):
        zone = zone_named(runtime.settings.timezone)
        try:
            day = date.fromisoformat(week) if week else local_day(utcnow(), zone)
        except ValueError:
            raise BadInput(f"--week {week!r} is not a date (YYYY-MM-DD)") from None
        data = weekly_review(session, policy, week_start(day), zone=zone)
    if html:
        html.write_text(to_html(data), encoding="utf-8")
    if csv:
        csv.write_text(to_csv(data), encoding="utf-8")
    follow = data["follow_up"]
    _emit(
        data,
        as_json,
        lambda: (
            f"week of {data['week']} ({data['iso_week']}, {data['tz']}): "
            f"{data['cases_opened']} case(s), "
            f"{len(data['breaches'])} breach(es), "
            f"follow-up satisfaction {follow['rate'] if follow['rate'] is not None else '-'} "
            f"(target {follow['target']}: {follow['state']})"
        ),
    )


def register(app: typer.Typer) -> None:
    """Attach ``case`` and ``review`` to the main CLI (earwitness/cli.py stays thin)."""
    app.add_typer(case_app, name="case")
    app.command("review")(review_command)
