"""CLI commands for the call centre floor: live wallboard, SLA report, queue_log import."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
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
from earwitness.telephony.sla import GroupBy, live_snapshot, summarise

console = Console()


def _fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def _defaults(runtime: Runtime) -> SlaDefaults:
    return SlaDefaults(runtime.settings.sla_rings, runtime.settings.sla_cadence)


def sla(
    group_by: Annotated[str, typer.Option(help="queue|agent|hour|day|total")] = "queue",
    days: Annotated[int, typer.Option(help="look back this many days")] = 7,
    queue: Annotated[str | None, typer.Option(help="only this queue")] = None,
) -> None:
    """Service level against the ring target, per queue, agent, hour or day."""
    if group_by not in ("queue", "agent", "hour", "day", "total"):
        raise BadInput(f"--group-by must be queue, agent, hour, day or total, not {group_by!r}")
    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            start = datetime.now(UTC) - timedelta(days=days)
            records = call_records(session, CallFilter(start=start, queue=queue))
            target = target_of(session, queue, _defaults(runtime))
        gb: GroupBy = group_by  # type: ignore[assignment]
        table = Table(title=f"SLA, last {days} days — target {target.describe()}")
        for col in ("group", "offered", "answered", "SL %", "ASA s", "longest s", "abandon %",
                    "RONA", "rings (answered)"):  # fmt: skip
            table.add_column(col, justify="right" if col != "group" else "left")
        for fig in summarise(records, target, gb):
            hist = " ".join(f"{k}:{v}" for k, v in sorted(fig.rings_histogram.items()))
            table.add_row(
                fig.key,
                str(fig.offered),
                str(fig.answered),
                _fmt(fig.service_level_pct),
                _fmt(fig.asa_s),
                _fmt(fig.longest_wait_s),
                _fmt(fig.abandon_rate_pct),
                str(fig.rona_count),
                hist or "—",
            )
        console.print(table)
    finally:
        runtime.close()


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
    runtime = Runtime.open(load_settings())

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


def register(app: typer.Typer) -> None:
    app.command()(watch)
    app.command()(sla)
    app.command("import-queue-log")(import_queue_log)
