"""CLI commands for the call centre floor: live wallboard, SLA report, queue_log import."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from earwitness.config import load_settings
from earwitness.errors import BadInput, UnsafePath
from earwitness.runtime import Runtime
from earwitness.telephony.persist import SlaDefaults, save_imported
from earwitness.telephony.queries import (
    CallFilter,
    agent_states,
    call_records,
    target_of,
)
from earwitness.telephony.queue_log import parse_queue_log
from earwitness.telephony.sla import GROUP_BYS, GroupBy, SlaFigures, live_snapshot, summarise
from earwitness.telephony.sla_export import (
    COLUMNS,
    EXPORT_FORMATS,
    cell,
    heading,
    to_csv,
    to_xlsx,
)
from earwitness.timezones import EXAMPLES, last_days, parse_period, zone_named

console = Console()


def _fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def _defaults(runtime: Runtime) -> SlaDefaults:
    return SlaDefaults(runtime.settings.sla_rings, runtime.settings.sla_cadence)


def sla(
    group_by: Annotated[str, typer.Option(help="queue|agent|hour|day|total")] = "queue",
    days: Annotated[
        int | None, typer.Option(help="the last N local days including today (default 7)")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help=f"start: {EXAMPLES}; days are local to --tz")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="end (a day: up to its end)")] = None,
    queue: Annotated[str | None, typer.Option(help="only this queue")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA zone; default EARWITNESS_TIMEZONE")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table|json|csv|xlsx (csv/json to stdout)")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file (needed for xlsx)")
    ] = None,
) -> None:
    """Service level against the ring target, per queue, agent, hour or day (local time)."""
    if group_by not in GROUP_BYS:
        raise BadInput(f"--group-by must be queue, agent, hour, day or total, not {group_by!r}")
    if fmt not in EXPORT_FORMATS:
        raise BadInput(f"--format must be table, json, csv or xlsx, not {fmt!r}")
    if fmt == "xlsx" and output is None:
        raise BadInput("--format xlsx needs --output FILE.xlsx (a workbook is not terminal text)")
    if days is not None and days < 1:
        raise BadInput(f"--days must be 1 or more (the last N days including today), not {days}")
    if days is not None and (start or end):
        raise BadInput("give --days or --from/--to, not both")
    settings = load_settings()
    now = datetime.now(UTC)
    try:
        zone = zone_named(tz or settings.timezone)
        when = (
            parse_period(start, end, zone, now=now)
            if start or end
            else last_days(days or 7, zone, now=now)
        )
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    runtime = Runtime.open(settings)
    try:
        with runtime.db.session() as session:
            records = call_records(session, CallFilter(start=when.start, end=when.end, queue=queue))
            target = target_of(session, queue, _defaults(runtime))
    finally:
        runtime.close()
    gb: GroupBy = group_by
    figures = summarise(records, target, gb, zone)
    echo = when.echo()
    head = heading(target.describe(), echo, group_by)
    if fmt == "table":
        _print_sla_table(figures, head)
        return
    if fmt == "json":
        text = json.dumps(
            {
                "group_by": group_by,
                "target": target.describe(),
                "period": echo,
                "groups": [asdict(f) for f in figures],
            },
            default=str,
            indent=2,
        )
    else:
        text = to_csv(figures, head) if fmt == "csv" else ""
    if output is None:
        print(text)
        return
    data = to_xlsx(figures, head) if fmt == "xlsx" else text.encode()
    output.write_bytes(data)
    console.print(f"wrote {len(figures)} rows to {output}", highlight=False)


def _print_sla_table(figures: list[SlaFigures], head: list[str]) -> None:
    """The terminal table keeps the main columns; csv/xlsx/json carry all of them."""
    table = Table(title=head[0], caption="\n".join(head[1:]))
    shown = [c for c in COLUMNS if c[0] in TABLE_COLUMNS]
    for title, _ in shown:
        table.add_column(title, justify="left" if title == "group" else "right")
    for fig in figures:
        table.add_row(*("—" if (v := cell(fig, f)) in (None, "") else str(v) for _, f in shown))
    console.print(table)


TABLE_COLUMNS = ("group", "offered", "answered", "SL %", "ASA s", "longest wait s",
                 "abandon %", "RONA", "rings (answered)")  # fmt: skip


def import_queue_log(
    file: Annotated[Path, typer.Argument(help="an Asterisk queue_log file")],
) -> None:
    """Import call history from Asterisk's queue_log (same figures as live tracking)."""
    if not file.is_file():
        raise UnsafePath(f"{file} is not a readable file")
    runtime = Runtime.open(load_settings())
    try:
        with file.open("rb") as stream:
            result = parse_queue_log(stream)
        progress = Progress(
            TextColumn("importing"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(), console=console,
        )  # fmt: skip
        with progress, runtime.db.session() as session:
            task = progress.add_task("calls", total=len(result.calls))
            new, updated = save_imported(
                session,
                result.calls,
                _defaults(runtime),
                members=result.members,
                progress=lambda n: progress.update(task, completed=n),
            )
        console.print(
            f"[green]{new} calls imported, {updated} updated[/] from {result.lines_read} lines; "
            f"{len(result.skipped)} lines skipped, {len(result.warnings)} warnings"
        )
        for problem in result.skipped[:10]:
            console.print(f"  [yellow]line {problem.line_no}:[/] {problem.reason}")
    finally:
        runtime.close()


def watch(
    interval: Annotated[float, typer.Option(help="refresh every N seconds")] = 1.0,
    count: Annotated[int | None, typer.Option(help="stop after N refreshes")] = None,
) -> None:
    """Live wallboard: calls waiting, longest wait in seconds and rings, agents."""
    settings = load_settings()
    if not settings.ami_enabled:
        Console(stderr=True).print(
            "[yellow]note:[/] no PBX configured here (EARWITNESS_AMI_HOST is unset): showing "
            "calls already in the database; new calls appear only while a server with a PBX "
            "link (earwitness serve) writes to the same database",
            highlight=False,
        )
    runtime = Runtime.open(settings)

    def frame() -> Group:
        with runtime.db.session() as session:
            in_progress = call_records(session, CallFilter(outcome="in_progress"))
            states = agent_states(session)
            target = target_of(session, None, _defaults(runtime))
        now = datetime.now(UTC)
        snap = live_snapshot(in_progress, now, target, states)
        head = Table.grid(padding=(0, 3))
        head.add_row(
            f"waiting [bold]{snap.calls_waiting}[/]",
            f"talking [bold]{snap.calls_talking}[/]",
            f"longest [bold]{_fmt(snap.longest_wait_s, ' s')}[/] "
            f"({snap.longest_wait_rings or 0} rings)",
            f"over target [bold red]{snap.waiting_over_target}[/]",
        )
        calls = Table("caller", "queue", "agent", "waited s", "state")
        for r in sorted(in_progress, key=lambda r: r.entered_at):
            waited = ((r.answered_at or now) - r.entered_at).total_seconds()
            calls.add_row(r.caller or "?", r.queue or "—", r.agent or "—", f"{waited:.0f}",
                          "talking" if r.answered else "waiting")  # fmt: skip
        agents = Table("agent", "state")
        for agent, state in sorted(states.items()):
            agents.add_row(agent, state)
        return Group(head, calls, agents)

    try:
        with Live(frame(), console=console, refresh_per_second=4) as live:
            shown = 1
            while count is None or shown < count:
                time.sleep(interval)  # the refresh period of a wallboard
                live.update(frame())
                shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


agents_app = typer.Typer(
    help="Agent identities: one name for every PBX identifier of an agent.", no_args_is_help=True
)


@agents_app.command("list")
def agents_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every agent with the identifiers it is known by, and where each mapping came from."""
    from earwitness.telephony.identities import all_identities

    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            people = all_identities(session)
    finally:
        runtime.close()
    if as_json:
        print(json.dumps(people, ensure_ascii=False, indent=2))
        return
    table = Table("agent", "identifiers (source)")
    for person in people:
        ids = ", ".join(
            f"{i['identifier']} ({i['source'] or 'seen'})" for i in person["identifiers"]
        )
        table.add_row(person["name"] or "[dim](no name)[/]", ids)
    console.print(table)


@agents_app.command("name")
def agents_name(
    identifier: Annotated[str, typer.Argument(help="a PBX identifier, e.g. PJSIP/2001")],
    name: Annotated[str, typer.Argument(help="the agent's name, e.g. 'Lucy Zhao'")],
) -> None:
    """Say who an identifier is; SLA, QA and search count it as that agent from now on."""
    from earwitness.telephony.identities import set_name

    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            result = set_name(session, identifier, name)
    finally:
        runtime.close()
    console.print(f"{result['identifier']} is {result['name']} (manual)", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app, name="agents")
    app.command()(watch)
    app.command()(sla)
    app.command("import-queue-log")(import_queue_log)
