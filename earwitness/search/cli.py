"""``earwitness search "..."`` (rich table or JSON), ``search reindex``, ``search caller``.

``search`` is a group whose unknown first word is taken as the query, so
``earwitness search 退款`` and ``earwitness search reindex`` both read naturally.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from earwitness.errors import BadInput
from earwitness.runtime import configured_runtime

console = Console()


class _QueryByDefault(TyperGroup):
    """Route ``search <words>`` to the ``query`` command unless the word is a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer vendors click
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["query", *args]
        return super().parse_args(ctx, args)


search_app = typer.Typer(
    cls=_QueryByDefault,
    help='Search transcripts: earwitness search "refund promised" [--role agent ...].',
    no_args_is_help=True,
)


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _marked(text: str, spans: list[tuple[int, int]]) -> Text:
    out = Text(text)
    for start, end in spans:
        out.stylize("bold black on yellow", start, end)
    return out


@search_app.command("query")
def query(
    q: Annotated[str, typer.Argument(help='words, "phrase", OR, -word, prefix*, fuzzy~')],
    role: Annotated[str | None, typer.Option(help="agent|customer")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="call time ≥: a day, today, this-week or ISO")
    ] = None,
    to: Annotated[str | None, typer.Option(help="call time < (a day: up to its end)")] = None,
    agent: Annotated[str | None, typer.Option()] = None,
    queue: Annotated[str | None, typer.Option()] = None,
    caller: Annotated[str | None, typer.Option()] = None,
    case: Annotated[str | None, typer.Option(help="case id or number")] = None,
    category: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    outcome: Annotated[str | None, typer.Option()] = None,
    min_wait: Annotated[float | None, typer.Option(help="seconds")] = None,
    min_rings: Annotated[int | None, typer.Option()] = None,
    sort: Annotated[str, typer.Option(help="relevance|newest|oldest")] = "relevance",
    by_call: Annotated[bool, typer.Option("--by-call", help="group hits by call")] = False,
    fuzzy: Annotated[bool, typer.Option(help="every term fuzzy")] = False,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find transcript segments; each row links to the audio at that moment."""
    from earwitness.config import load_settings
    from earwitness.search import SearchFilter, SearchOptions, search
    from earwitness.timezones import parse_period, show, zone_named

    if sort not in ("relevance", "newest", "oldest"):
        raise BadInput(f"--sort must be relevance, newest or oldest, not {sort!r}")
    zone = zone_named(load_settings().timezone)  # days and times without offset: local
    try:
        when = parse_period(from_, to, zone, now=datetime.now(UTC))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    filters = SearchFilter(
        start=when.start,
        end=when.end,
        role=role,
        agent=agent,
        queue=queue,
        caller=caller,
        case=case,
        category=category,
        language=language,
        outcome=outcome,
        min_wait_s=min_wait,
        min_rings=min_rings,
    )
    options = SearchOptions(
        sort=sort,  # type: ignore[arg-type]  # checked above
        limit=limit,
        offset=offset,
        group_by_call=by_call,
        fuzzy=fuzzy,
    )
    with configured_runtime() as runtime, runtime.db.session() as session:
        result = search(session, q, filters, options)
    if as_json:
        _json(asdict(result))
        return
    plus = "" if result.total_exact else "+"  # capped count: "10000+"
    table = Table(
        title=f"{result.total}{plus} match(es) for {q!r} ({result.backend})", show_lines=False
    )
    for column in ("when", "call", "case", "role", "at", "text", "audio"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        table.add_row(
            show(hit.at, zone),
            str(hit.call_id or "-"),
            ", ".join(c.number for c in hit.cases) or "-",
            hit.role,
            f"{hit.start_s:.1f}s",
            _marked(hit.text, hit.highlights),
            hit.audio_url,
        )
    console.print(table)
    shown = result.offset + len(result.groups if result.groups is not None else result.hits)
    total = result.grouped_total if result.grouped_total is not None else result.total
    if shown < total:
        console.print(f"showing up to {shown} of {total}{plus}; next page: --offset {shown}")


@search_app.command("reindex")
def reindex(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Rebuild the search index from every stored transcript."""
    from earwitness.search import reindex_all

    with configured_runtime() as runtime:
        report = reindex_all(runtime.db)
    if as_json:
        _json(asdict(report))
    else:
        console.print(f"indexed {report.segments} segments of {report.recordings} recordings")


@search_app.command("caller")
def caller(
    number: Annotated[str, typer.Argument(help="phone number, any common form")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Caller history: all calls and cases of one number, newest first."""
    from earwitness.search import caller_history

    with configured_runtime() as runtime, runtime.db.session() as session:
        history = caller_history(session, number)
    if as_json:
        _json(asdict(history))
        return
    table = Table(title=f"calls of {number}")
    for column in ("call", "when", "queue", "agent", "outcome", "wait", "rings", "rec", "cases"):
        table.add_column(column)
    for c in history.calls:
        table.add_row(
            str(c.id),
            c.entered_at.strftime("%Y-%m-%d %H:%M"),
            c.queue or "-",
            c.agent or "-",
            c.outcome,
            "-" if c.wait_s is None else f"{c.wait_s:.0f}s",
            "-" if c.rings is None else str(c.rings),
            ", ".join(map(str, c.recording_ids)) or "-",
            ", ".join(x.number for x in c.cases) or "-",
        )
    console.print(table)
    for k in history.cases:
        console.print(
            f"case {k.number} ({k.category}, {k.status}, urgency {k.urgency}): {k.summary}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(search_app, name="search")
