"""Command bodies for ``earwitness verify``, ``earwitness evidence ...`` and ``track analyze``.

``track analyze`` works on a local file without a database (an investigator can run
it on a laptop); ``verify`` opens the configured storage and exits 1 when anything
changed, so it can run from cron or CI. ``evidence list`` shows a case's items with
the note and source given at intake.
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
evidence_app = typer.Typer(help="Evidence filed on cases.", no_args_is_help=True)


@evidence_app.command("list")
def evidence_list(
    case_id: Annotated[int, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json", help="print the items as JSON")] = False,
) -> None:
    """A case's evidence: id, kind, name, who filed it from where, and the intake note."""
    from earwitness.evidence.intake import case_evidence, note_of, recording_id_of
    from earwitness.runtime import configured_runtime

    with configured_runtime() as runtime, runtime.db.session() as session:
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "kind": e.kind,
                "original_name": e.original_name,
                "sha256": e.sha256,
                "size_bytes": e.size_bytes,
                "media_type": e.media_type,
                "received_at": e.received_at.isoformat(),
                "received_by": e.received_by,
                "source": e.source,
                "note": note_of(e),
                "recording_id": recording_id_of(e),
            }
            for e in case_evidence(session, case_id)
        ]
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        console.print(f"case {case_id} has no evidence")
    for r in rows:
        console.print(
            f"{r['id']:>5}  {r['kind']:<10} {r['original_name']}  "
            f"by {r['received_by'] or '-'} from {r['source'] or '-'}  {r['sha256'][:12]}",
            highlight=False,
            markup=False,
        )
        if r["note"]:
            console.print(f"       note: {r['note']}", highlight=False, markup=False)


@evidence_app.command("register-recordings")
def evidence_register_recordings() -> None:
    """File stored recordings that predate recordings-as-evidence (idempotent, no hashing)."""
    from earwitness.recordings.intake import register_existing_recordings
    from earwitness.runtime import configured_runtime

    with configured_runtime() as runtime, runtime.db.session() as session:
        filed = register_existing_recordings(session)
    console.print(
        f"filed {len(filed)} recording(s) as evidence"
        + (f": {', '.join(map(str, filed))}" if filed else " (all were already)"),
        highlight=False,
    )


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
    full: Annotated[
        bool, typer.Option("--full", help="walk every custody entry, not from the checkpoint")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Re-hash every stored file, check the signed custody chain; exit 1 naming what changed."""
    from earwitness.evidence.signing import CustodyKeys
    from earwitness.evidence.verify import verify
    from earwitness.runtime import configured_runtime

    with configured_runtime() as runtime, runtime.db.session() as session:
        report = verify(
            session,
            runtime.blobs,
            evidence_ids=evidence,
            case_id=case,
            full=full,
            keys=CustodyKeys(runtime.settings),
        )
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        for line in report.lines():
            console.print(("[green]" if report.ok else "[bold red]") + line, highlight=False)
        for note in report.notes:
            console.print(f"[dim]note:[/] {note}", highlight=False)
    if not report.ok:
        # sys.exit, not typer.Exit: main() runs click with standalone_mode=False, which
        # turns typer.Exit into a discarded return value (exit status 0).
        sys.exit(1)


keys_app = typer.Typer(
    help="API keys (create, list, revoke) and custody signing keys (rotate, signing, timestamp).",
    no_args_is_help=True,
)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; old public keys stay to verify what they signed."""
    from earwitness.config import load_settings
    from earwitness.evidence.signing import CustodyKeys

    keys = CustodyKeys(load_settings())
    old, new = keys.rotate()
    console.print(f"custody signing key is now [bold]{new}[/] ({keys.public_dir / new}.pem)")
    if old:
        console.print(f"previous key {old}: public key kept for verification, private key gone")


@keys_app.command("signing")
def keys_signing() -> None:
    """The custody signing keys verify trusts (public keys), the current one marked."""
    from earwitness.config import load_settings
    from earwitness.evidence.signing import CustodyKeys

    keys = CustodyKeys(load_settings())
    current = keys.key_id
    ring = keys.keyring()
    for key_id in sorted(ring.keys):
        console.print(f"{key_id}{'  (signing)' if key_id == current else ''}")
    for bad in ring.bad_files:
        console.print(f"[bold red]bad public key file[/] {bad}", highlight=False)


@keys_app.command("timestamp")
def keys_timestamp() -> None:
    """Get an RFC 3161 token from the configured TSA over the signed chain head."""
    from earwitness.evidence.signing import CustodyKeys
    from earwitness.evidence.timestamps import timestamp_head
    from earwitness.runtime import configured_runtime

    with configured_runtime() as runtime, runtime.db.session() as session:
        result = timestamp_head(session, CustodyKeys(runtime.settings))
    console.print(f"{result.status}: {result.detail}", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach ``verify``, ``evidence`` and ``track`` (earwitness/cli.py stays thin)."""
    app.command("verify")(verify_command)
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(track_app, name="track")
