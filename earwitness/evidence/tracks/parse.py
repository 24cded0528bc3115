"""One entry point for every track format: detect, parse, convert to WGS-84.

A broken or hostile file raises BadInput naming the line or element; parsing
happens before anything is stored, so a rejected file leaves no trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath

from earwitness.errors import BadInput
from earwitness.evidence.sniff import sniff_media_type
from earwitness.evidence.tracks import text_formats, xml_formats
from earwitness.evidence.tracks.coords import DATUMS, to_wgs84
from earwitness.evidence.tracks.model import TrackData
from earwitness.evidence.tracks.text_formats import CsvLayout

FORMATS = ("gpx", "nmea", "csv", "geojson", "kml")
_BY_MEDIA = {
    "application/gpx+xml": "gpx",
    "application/vnd.google-earth.kml+xml": "kml",
    "application/geo+json": "geojson",
    "application/x-nmea": "nmea",
    "text/csv": "csv",
}
_BY_SUFFIX = {
    ".gpx": "gpx",
    ".kml": "kml",
    ".geojson": "geojson",
    ".json": "geojson",
    ".nmea": "nmea",
    ".nma": "nmea",
    ".log": "nmea",
    ".csv": "csv",
    ".txt": "csv",
}


@dataclass(frozen=True)
class ParseOptions:
    """How to read a file; recorded beside every analysis made from it."""

    format: str | None = None  # None: detect from content, then from the name
    coord_system: str = "wgs84"  # datum of the file: wgs84 | gcj02 | bd09
    csv: CsvLayout = field(default_factory=CsvLayout)
    assume_tz: str = "+00:00"  # zone for CSV times written without one
    nmea_date: date | None = None  # for GGA-only logs
    gpx_engine: str = "builtin"  # builtin (fast, defusedxml) | gpxpy

    @classmethod
    def from_record(cls, record: dict[str, object]) -> ParseOptions:
        """Rebuild the options an earlier analysis recorded (to re-read the same file)."""
        csv = record.get("csv")
        nmea = record.get("nmea_date")
        return cls(
            format=str(record["format"]) if record.get("format") else None,
            coord_system=str(record.get("coord_system") or "wgs84"),
            csv=CsvLayout(**csv) if isinstance(csv, dict) else CsvLayout(),
            assume_tz=str(record.get("assume_tz") or "+00:00"),
            nmea_date=date.fromisoformat(str(nmea)) if nmea else None,
            gpx_engine=str(record.get("gpx_engine") or "builtin"),
        )

    def record(self) -> dict[str, object]:
        return {
            "format": self.format,
            "coord_system": self.coord_system,
            "csv": self.csv.__dict__,
            "assume_tz": self.assume_tz,
            "nmea_date": self.nmea_date.isoformat() if self.nmea_date else None,
            "gpx_engine": self.gpx_engine,
        }


def detect_format(data: bytes, filename: str | None = None) -> str:
    media = sniff_media_type(data[:4096])
    if media in _BY_MEDIA:
        return _BY_MEDIA[media]
    if filename:
        suffix = PurePath(filename.replace("\\", "/")).suffix.lower()
        if suffix in _BY_SUFFIX:
            return _BY_SUFFIX[suffix]
    raise BadInput(
        f"cannot tell the track format (content looks like {media}); "
        f"give one of {', '.join(FORMATS)}"
    )


def parse_track(
    data: bytes, options: ParseOptions | None = None, filename: str | None = None
) -> TrackData:
    """Parse ``data`` into a WGS-84 TrackData (raises BadInput, never stores anything)."""
    options = options or ParseOptions()
    if options.coord_system not in DATUMS:
        raise BadInput(f"unknown coordinate system {options.coord_system!r}; one of {DATUMS}")
    fmt = options.format or detect_format(data, filename)
    if fmt == "gpx":
        if options.gpx_engine == "gpxpy":
            track = xml_formats.parse_gpx_with_gpxpy(data)
        elif options.gpx_engine == "builtin":
            track = xml_formats.parse_gpx(data)
        else:
            raise BadInput(f"unknown GPX engine {options.gpx_engine!r}; builtin or gpxpy")
    elif fmt == "kml":
        track = xml_formats.parse_kml(data)
    elif fmt == "geojson":
        track = text_formats.parse_geojson(data)
    elif fmt == "nmea":
        track = text_formats.parse_nmea(data, options.nmea_date)
    elif fmt == "csv":
        track = text_formats.parse_csv(data, options.csv, options.assume_tz)
    else:
        raise BadInput(f"unknown track format {fmt!r}; one of {', '.join(FORMATS)}")
    if options.coord_system != "wgs84":
        track.lat, track.lon = to_wgs84(track.lat, track.lon, options.coord_system)
        track.coord_system = options.coord_system
        track.warnings.append(f"converted from {options.coord_system.upper()} to WGS-84")
    return track
