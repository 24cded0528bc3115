"""``earwitness qa FILE|RECORDING_ID`` and ``earwitness qa-agents``: scorecards in a terminal.

FILE is a transcript exported as JSON (``earwitness transcribe -f json``) or an audio file,
transcribed first (stereo: a speaker per channel); RECORDING_ID audits a stored recording
and stores the result, like the ``qa.audit`` job.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from earwitness.config import Settings, load_settings
from earwitness.errors import BadInput
from earwitness.qa.audit import Line, audit
from earwitness.qa.report import agents_html, call_html
from earwitness.qa.rules import rules_for
from earwitness.timezones import EXAMPLES

console = Console()
err = Console(stderr=True)
FORMATS = ("text", "json", "html")


def _lines_from_json(path: Path) -> tuple[list[Line], str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        segments = data["segments"]
        lines = [
            Line(i + 1, str(s.get("role") or "unknown"), float(s["start"]), float(s["end"]),
                 str(s["text"]))
            for i, s in enumerate(segments)
        ]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{path} is not a transcript JSON export ({exc})") from None
    languages = [s.get("language") for s in segments if s.get("language")]
    return lines, (max(set(languages), key=languages.count) if languages else None)


def _audit_audio(path: Path, settings: Settings) -> dict[str, Any]:
    from earwitness.qa.loudness import line_loudness
    from earwitness.qa.speech import channel_roles, speech_by_role
    from earwitness.recordings.probe import decode_channels
    from earwitness.transcription.engine import SpeechEngine
    from earwitness.transcription.pipeline import transcribe_audio

    with err.status(f"transcribing {path.name}…"):
        result = transcribe_audio(path, SpeechEngine(settings))
    segs = result.segments
    lines = [Line(i + 1, s.role, s.start, s.end, s.text) for i, s in enumerate(segs)]
    channels = [s.channel for s in segs]
    audio = decode_channels(path, sample_rate=16000)
    lines = line_loudness(lines, channels, audio, 16000)
    speech = speech_by_role(audio, 16000, channel_roles([x.role for x in lines], channels))
    card = audit(lines, rules_for(settings.qa_rules_file, result.language), speech=speech)
    return {"recording_id": path.name, "agent": None, "call_at": None, "machine_score": card.score,
            "params": {"ruleset": card.ruleset}, **card.as_dict()}  # fmt: skip


def _audit_target(target: str, settings: Settings) -> dict[str, Any]:
    if target.isdigit():
        from earwitness.qa.jobs import recording_audio
        from earwitness.qa.store import audit_recording, scorecard
        from earwitness.runtime import Runtime

        runtime = Runtime.open(settings)
        try:
            audio = recording_audio(runtime.db, runtime.blobs, int(target))
            with runtime.db.session() as session:
                audit_recording(session, int(target), rules_file=settings.qa_rules_file,
                                audio=audio)  # fmt: skip
                return scorecard(session, int(target))
        finally:
            runtime.close()
    path = Path(target)
    if not path.is_file():
        raise BadInput(f"{target} is neither a recording id nor a readable file")
    if path.suffix.lower() == ".json":
        lines, language = _lines_from_json(path)
        card = audit(lines, rules_for(settings.qa_rules_file, language))
        return {"recording_id": path.name, "agent": None, "call_at": None,
                "machine_score": card.score, "params": {"ruleset": card.ruleset},
                **card.as_dict()}  # fmt: skip
    return _audit_audio(path, settings)


def _print_card(card: dict[str, Any]) -> None:
    console.print(f"[bold]QA {card['recording_id']}[/]  score [bold]{card['score']}[/]  "
                  f"rules: {card['params']['ruleset']['name']}")  # fmt: skip
    table = Table("rule", "result", "why", "line")
    colour = {"passed": "green", "failed": "red", "not_applicable": "dim"}
    for f in card["findings"]:
        cite = f["cites"][0] if f["cites"] else None
        where = f"#{cite['segment_id']} {cite['start_s']:.1f}s {cite['text'][:50]}" if cite else ""
        result, why = f"[{colour[f['status']]}]{f['status']}[/]", escape(f["reason"])
        override = f.get("override")
        if override:  # a person's decision: say so, and keep the machine's verdict beside it
            result += f" [bold](overridden; machine: {override['machine_status']})[/]"
            why = (
                f"override by {escape(str(override['by']))}: {escape(str(override['reason']))}"
                f" — machine: {why}"
            )
        table.add_row(f["rule_id"], result, why, escape(where))
    console.print(table)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")


def qa(
    target: Annotated[str, typer.Argument(help="transcript JSON, audio file or recording id")],
    format: Annotated[str, typer.Option("--format", "-f", help="text|json|html")] = "text",  # noqa: A002
    rules: Annotated[Path | None, typer.Option(help="rules TOML (default: shipped zh/en)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
) -> None:
    """Audit one call: rules, timing metrics and agitation, each finding citing its line."""
    if format not in FORMATS:
        raise BadInput(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    settings = load_settings(**({"qa_rules_file": rules} if rules else {}))
    card = _audit_target(target, settings)
    if format == "json":
        _emit(json.dumps(card, ensure_ascii=False, indent=2), output)
    elif format == "html":
        _emit(call_html(card), output)
    else:
        _print_card(card)


def qa_agents(
    start: Annotated[
        str | None, typer.Option("--from", help=f"start: {EXAMPLES} (default: 7 days ago)")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="end (default: now)")] = None,
    agent: Annotated[str | None, typer.Option(help="only this agent")] = None,
    tz: Annotated[str | None, typer.Option(help="IANA zone; default EARWITNESS_TIMEZONE")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text|json|html")] = "text",  # noqa: A002
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
) -> None:
    """Per-agent scorecards over a period: mean score, trend (local days), worst calls."""
    from earwitness.qa.store import agent_scorecards
    from earwitness.runtime import Runtime
    from earwitness.timezones import last_days, parse_period, zone_named

    if format not in FORMATS:
        raise BadInput(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    settings = load_settings()
    now = datetime.now(UTC)
    try:
        zone = zone_named(tz or settings.timezone)
        when = parse_period(start, end, zone, now=now)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    stop = when.end or now
    begin = when.start or last_days(7, zone, now=now).start or stop - timedelta(days=7)
    runtime = Runtime.open(settings)
    try:
        with runtime.db.session() as session:
            data = agent_scorecards(session, begin, stop, agent=agent, zone=zone)
    finally:
        runtime.close()
    if format == "json":
        _emit(json.dumps(data, ensure_ascii=False, indent=2), output)
    elif format == "html":
        _emit(agents_html(data), output)
    else:
        table = Table("agent", "calls", "mean score", "most missed")
        for a in data["agents"]:
            missed = ", ".join(f"{m['rule_id']} ({m['calls']})" for m in a["most_missed"][:3])
            table.add_row(a["agent"], str(a["calls"]), str(a["mean_score"]), missed)
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("qa")(qa)
    app.command("qa-agents")(qa_agents)
