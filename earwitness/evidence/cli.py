"""Command bodies for ``earwitness verify`` and ``earwitness track analyze``.

``track analyze`` works on a local file without a database (an investigator can run
it on a laptop); ``verify`` opens the configured storage and exits 1 when anything
changed, so it can run from cron or CI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from earwitness.errors import BadInput
from earwitness.evidence.tracks import analyze, parse_track
from earwitness.evidence.tracks.params import analysis_params, parse_options

console = Console()
track_app = typer.Typer(help="GPS track analysis.", no_args_is_help=True)


@track_app.command("analyze")
def track_analyze(
    file: Annotated[Path, typer.Argument(help="GPX, NMEA, CSV, GeoJSON or KML file")],
    as_json: Annotated[bool, typer.Option("--json", help="print the full result as JSON")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="gpx|nmea|csv|geojson|kml")] = None,
    coord: Annotated[str, typer.Option(help="datum of the file: wgs84|gcj02|bd09")] = "wgs84",
    destination: Annotated[str | None, typer.Option(help="lat,lon[,name] of the customer")] = None,
    radius: Annotated[float | None, typer.Option(help="geofence radius in metres")] = None,
    promised: Annotated[
        str | None, typer.Option(help="promised arrival, ISO 8601 with zone")
    ] = None,
    dispatched: Annotated[
        str | None, typer.Option(help="dispatch time, ISO 8601 with zone")
    ] = None,
    place: Annotated[list[str] | None, typer.Option(help="name=lat,lon (repeatable)")] = None,
    stop_speed: Annotated[float | None, typer.Option(help="stop below this km/h")] = None,
    stop_min: Annotated[float | None, typer.Option(help="stop lasting at least N minutes")] = None,
    gap: Annotated[float | None, typer.Option(help="gap after N seconds without a fix")] = None,
    max_speed: Annotated[float | None, typer.Option(help="faster (km/h) is drift")] = None,
    routed_m: Annotated[float | None, typer.Option(help="routed distance for the detour")] = None,
    tz: Annotated[str, typer.Option(help="display zone of the verdict")] = "+08:00",
    assume_tz: Annotated[str, typer.Option(help="zone of CSV times without one")] = "+00:00",
    csv_time: Annotated[str | None, typer.Option(help="CSV time column")] = None,
    csv_lat: Annotated[str | None, typer.Option(help="CSV latitude column")] = None,
    csv_lon: Annotated[str | None, typer.Option(help="CSV longitude column")] = None,
) -> None:
    """Analyse a track file: stops, gaps, drift, arrival, lateness, detour. Stores nothing."""
    if not file.is_file():
        raise BadInput(f"{file}: no such file")
    params: dict[str, Any] = {
        "destination": destination,
        "geofence_radius_m": radius,
        "promised_at": promised,
        "dispatched_at": dispatched,
        "places": place or None,
        "stop_speed_kmh": stop_speed,
        "stop_min_minutes": stop_min,
        "gap_s": gap,
        "max_speed_kmh": max_speed,
        "routed_distance_m": routed_m,
        "display_tz": tz,
    }
    options = parse_options(
        {
            "format": fmt,
            "coord_system": coord,
            "assume_tz": assume_tz,
            "csv_time": csv_time,
            "csv_lat": csv_lat,
            "csv_lon": csv_lon,
        }
    )
    track = parse_track(file.read_bytes(), options, file.name)
    result = analyze(track, analysis_params({k: v for k, v in params.items() if v is not None}))
    out = result.as_dict() | {"file": str(file), "parse_options": options.record()}
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
        return
    summary = out["summary"]
    console.print(
        f"[bold]{file.name}[/]: {summary['points']} points, {summary['distance_m'] / 1000:.2f} km"
        + (f", {summary['duration_s'] / 60:.1f} min" if summary["duration_s"] else "")
    )
    for line in out["verdict"] or ["nothing remarkable"]:
        console.print(f"  • {line}", highlight=False)
    for warning in out["warnings"]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False)


def verify_command(
    evidence: Annotated[list[int] | None, typer.Option(help="evidence id (repeatable)")] = None,
    case: Annotated[int | None, typer.Option(help="only this case's evidence")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Re-hash every stored file and the custody chain; exit 1 naming what changed."""
    from earwitness.config import load_settings
    from earwitness.evidence.verify import verify
    from earwitness.runtime import Runtime

    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            report = verify(session, runtime.blobs, evidence_ids=evidence, case_id=case)
    finally:
        runtime.close()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        for line in report.lines():
            console.print(("[green]" if report.ok else "[bold red]") + line, highlight=False)
    if not report.ok:
        # sys.exit, not typer.Exit: main() runs click with standalone_mode=False, which
        # turns typer.Exit into a discarded return value (exit status 0).
        sys.exit(1)


def register(app: typer.Typer) -> None:
    """Attach ``verify`` and ``track`` to the main CLI (earwitness/cli.py stays thin)."""
    app.command("verify")(verify_command)
    app.add_typer(track_app, name="track")
