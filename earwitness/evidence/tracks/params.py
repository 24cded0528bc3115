"""Analysis and parse options from plain data (API JSON, CLI flags), checked once.

Both front doors hand over a dict; mistakes become one BadInput line naming the
field, never a TypeError from deep inside the analysis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from earwitness.errors import BadInput
from earwitness.evidence.tracks.analysis import AnalysisParams, Place
from earwitness.evidence.tracks.parse import ParseOptions
from earwitness.evidence.tracks.text_formats import CsvLayout

_FLOATS = {
    f.name
    for f in dataclasses.fields(AnalysisParams)
    if f.name.endswith(("_m", "_s", "_kmh", "_minutes", "_ratio"))
}


def parse_place(value: Any, field: str) -> Place:
    """``{"name", "lat", "lon"}``, ``[lat, lon]`` or ``"lat,lon[,name]"`` / ``"name=lat,lon"``."""
    try:
        if isinstance(value, Mapping):
            return Place(str(value.get("name", "")), float(value["lat"]), float(value["lon"]))
        if isinstance(value, list | tuple):
            return Place(str(value[2]) if len(value) > 2 else "", float(value[0]), float(value[1]))
        text = str(value)
        name = ""
        if "=" in text:
            name, text = text.split("=", 1)
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 2 and not name:
            name = ",".join(parts[2:])
        place = Place(name.strip(), float(parts[0]), float(parts[1]))
    except (KeyError, ValueError, IndexError, TypeError):
        raise BadInput(f"{field}: {str(value)[:60]!r} is not a place (lat,lon[,name])") from None
    if not (-90 <= place.lat <= 90 and -180 <= place.lon <= 180):
        raise BadInput(f"{field}: coordinates out of range")
    return place


def parse_instant(value: Any, field: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{field}: {str(value)[:40]!r} is not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        raise BadInput(f"{field}: give a time zone (e.g. 2026-11-20T08:30:00+08:00)")
    return stamp.astimezone(UTC)


def analysis_params(data: Mapping[str, Any] | None) -> AnalysisParams:
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(AnalysisParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadInput(f"unknown analysis parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key == "destination":
            values[key] = parse_place(value, key)
        elif key == "places":
            values[key] = tuple(parse_place(v, f"places[{i}]") for i, v in enumerate(value))
        elif key in ("promised_at", "dispatched_at"):
            values[key] = parse_instant(value, key)
        elif key in _FLOATS:
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise BadInput(f"{key}: {value!r} is not a number") from None
            if values[key] < 0:
                raise BadInput(f"{key}: must not be negative")
        else:
            values[key] = str(value)
    return AnalysisParams(**values)


def parse_options(data: Mapping[str, Any] | None) -> ParseOptions:
    data = dict(data or {})
    csv_keys = {f.name for f in dataclasses.fields(CsvLayout)}
    csv = {k[4:]: v for k, v in data.items() if k.startswith("csv_") and k[4:] in csv_keys}
    nmea_date = data.get("nmea_date")
    try:
        return ParseOptions(
            format=data.get("format") or None,
            coord_system=data.get("coord_system") or "wgs84",
            csv=CsvLayout(**csv),
            assume_tz=data.get("assume_tz") or "+00:00",
            nmea_date=date.fromisoformat(nmea_date) if nmea_date else None,
            gpx_engine=data.get("gpx_engine") or "builtin",
        )
    except ValueError as exc:
        raise BadInput(f"track options: {exc}") from None
