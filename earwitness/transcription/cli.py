"""``earwitness transcribe FILE``: transcribe a local file with a progress bar, print an export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from earwitness.config import load_settings
from earwitness.errors import BadInput
from earwitness.transcription.diarization import make_diarizer
from earwitness.transcription.engine import SpeechEngine, TranscribeOptions
from earwitness.transcription.exports import FORMATS, render
from earwitness.transcription.pipeline import transcribe_audio

err = Console(stderr=True)


def transcribe(
    file: Annotated[Path, typer.Argument(help="audio file (WAV, MP3, OGG/Opus, FLAC, M4A, ...)")],
    format: Annotated[str, typer.Option("--format", "-f", help="json|srt|vtt|txt|rttm")] = "txt",  # noqa: A002
    language: Annotated[
        str | None, typer.Option(help="force a language (zh, en, ...); default: detect per channel")
    ] = None,
    vocabulary: Annotated[
        list[str] | None,
        typer.Option(
            "--vocabulary", "-v", help="domain term (hotword, kept only when clearly heard)"
        ),
    ] = None,
    diarizer: Annotated[str, typer.Option(help="mono diarization backend: encoder|pyannote")] = (
        "encoder"
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
    english_model: Annotated[
        bool, typer.Option(help="send English channels to the English-only model")
    ] = False,
) -> None:
    """Transcribe FILE offline: stereo = a speaker per channel, mono = diarized; with roles."""
    if format.lower() not in FORMATS:
        raise BadInput(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if not file.is_file():
        raise BadInput(f"{file} does not exist or is not a file")
    settings = load_settings()
    options = TranscribeOptions(
        language=language, vocabulary=tuple(vocabulary or ()), use_english_model=english_model
    )
    engine = SpeechEngine(settings, options)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(file.name, total=100)

        def progress(pct: float, message: str) -> None:
            bar.update(task, completed=pct, description=f"{file.name}: {message}")

        result = transcribe_audio(file, engine, diarizer=make_diarizer(diarizer), progress=progress)
        bar.update(task, completed=100)
    meta = {
        "file": file.name,
        "model": result.model,
        "diarization": result.diarization,
        "role_rule": result.roles.rule,
        "languages": result.languages,
        "params": result.params,
    }
    text = render(format, result.segments, meta=meta, file_id=file.stem)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output} ({len(result.segments)} segments, roles by {result.roles.rule})")
    else:
        typer.echo(text, nl=not text.endswith("\n"))


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
