"""GPX and KML readers on defusedxml.

Track files come from outside (a vendor platform, the customer's phone), so XML is
parsed with DTDs forbidden: no entity expansion (billion laughs), no external
entities (file or network reads). The reader walks the tree once and names the
element it rejects (``trkpt #153``) because the underlying parser keeps no line
numbers per element; syntax errors carry the parser's line and column.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from earwitness.errors import BadInput
from earwitness.evidence.tracks.model import PointBuffer, TrackData

_NS = re.compile(r"^\{[^}]*\}")


def _local(tag: Any) -> str:
    return _NS.sub("", tag) if isinstance(tag, str) else ""


def safe_xml_root(data: bytes, kind: str) -> Element:
    """Parse XML with DTDs/entities refused; errors say where (line, column)."""
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BadInput(
            f"{kind} file refused: it declares a DTD or entities ({type(exc).__name__}); "
            "track files never need them"
        ) from None
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise BadInput(
            f"{kind} file is not well-formed XML at line {line}, column {column}"
        ) from None
    return root


def parse_time(text: str | None, where: str) -> float | None:
    """ISO 8601 (``Z`` or offset); a time without zone is taken as UTC, as GPX requires."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(f"{where}: time {value[:40]!r} is not ISO 8601") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _number(text: str | None, what: str, where: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"{where}: {what} {text.strip()[:40]!r} is not a number") from None


def _child_text(element: Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return child.text
    return None


def _speed(element: Element, where: str) -> float | None:
    """GPX 1.0 ``<speed>`` or a Garmin/other extension element named ``speed``."""
    direct = _child_text(element, "speed")
    if direct is not None:
        return _number(direct, "speed", where)
    for node in element.iter():
        if _local(node.tag) == "speed" and node is not element:
            return _number(node.text, "speed", where)
    return None


def parse_gpx(data: bytes) -> TrackData:
    """Track points (all tracks/segments in order); routes, then waypoints, as fallbacks."""
    root = safe_xml_root(data, "GPX")
    if _local(root.tag) != "gpx":
        raise BadInput(f"GPX file has root element <{_local(root.tag)}>, expected <gpx>")
    buffer = PointBuffer("gpx")
    segment_tags = {"trkpt": ("trkseg", "trk"), "rtept": ("rte",), "wpt": ()}
    for point_tag in ("trkpt", "rtept", "wpt"):
        count = 0
        for element in root.iter():
            tag = _local(element.tag)
            if tag in segment_tags[point_tag]:
                buffer.new_segment()
            if tag != point_tag:
                continue
            count += 1
            where = f"<{point_tag}> #{count}"
            lat = _number(element.get("lat"), "lat", where)
            lon = _number(element.get("lon"), "lon", where)
            if lat is None or lon is None:
                raise BadInput(f"{where}: missing lat/lon attribute")
            buffer.add(
                lat,
                lon,
                parse_time(_child_text(element, "time"), where),
                _number(_child_text(element, "ele"), "ele", where),
                _speed(element, where),
                where=where,
            )
        if count:
            break
    name = ""
    for element in root.iter():
        if _local(element.tag) == "name" and element.text:
            name = element.text.strip()[:200]
            break
    return buffer.build(name=name)


def parse_gpx_with_gpxpy(data: bytes) -> TrackData:
    """The same result through gpxpy (after the defused check), for cross-checks."""
    import gpxpy
    import gpxpy.gpx

    safe_xml_root(data, "GPX")  # refuse DTDs/entities before gpxpy's own parser sees it
    try:
        gpx = gpxpy.parse(io.StringIO(data.decode("utf-8-sig")))
    except (gpxpy.gpx.GPXException, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"GPX file rejected by gpxpy: {str(exc)[:200]}") from None
    buffer = PointBuffer("gpx")
    count = 0
    for track in gpx.tracks:
        for segment in track.segments:
            buffer.new_segment()
            for p in segment.points:
                count += 1
                buffer.add(
                    p.latitude,
                    p.longitude,
                    p.time.timestamp() if p.time else None,
                    p.elevation,
                    p.speed,
                    where=f"<trkpt> #{count}",
                )
    return buffer.build(name=(gpx.tracks[0].name or "") if gpx.tracks else "")


def _coordinates(text: str, where: str) -> list[tuple[float, float, float | None]]:
    out: list[tuple[float, float, float | None]] = []
    for n, chunk in enumerate(text.split(), 1):
        parts = chunk.split(",")
        if len(parts) < 2:
            raise BadInput(f"{where}, coordinate #{n}: {chunk[:40]!r} is not lon,lat[,alt]")
        lon = _number(parts[0], "longitude", f"{where}, coordinate #{n}")
        lat = _number(parts[1], "latitude", f"{where}, coordinate #{n}")
        alt = _number(parts[2], "altitude", f"{where}, coordinate #{n}") if len(parts) > 2 else None
        assert lat is not None and lon is not None
        out.append((lat, lon, alt))
    return out


def parse_kml(data: bytes) -> TrackData:
    """``gx:Track`` (``when`` + ``gx:coord``, timed) or ``LineString`` coordinates (untimed)."""
    root = safe_xml_root(data, "KML")
    if _local(root.tag) != "kml":
        raise BadInput(f"KML file has root element <{_local(root.tag)}>, expected <kml>")
    buffer = PointBuffer("kml")
    tracks = [e for e in root.iter() if _local(e.tag) == "Track"]
    for number, track in enumerate(tracks, 1):
        whens = [c.text for c in track if _local(c.tag) == "when"]
        coords = [c.text or "" for c in track if _local(c.tag) == "coord"]
        where = f"<gx:Track> #{number}"
        buffer.new_segment()
        if len(whens) != len(coords):
            raise BadInput(f"{where}: {len(whens)} <when> but {len(coords)} <gx:coord> elements")
        for i, (when, coord) in enumerate(zip(whens, coords, strict=True), 1):
            parts = coord.split()
            if len(parts) < 2:
                raise BadInput(f"{where}, <gx:coord> #{i}: {coord[:40]!r} is not 'lon lat [alt]'")
            lon = _number(parts[0], "longitude", f"{where}, <gx:coord> #{i}")
            lat = _number(parts[1], "latitude", f"{where}, <gx:coord> #{i}")
            alt = (
                _number(parts[2], "altitude", f"{where}, <gx:coord> #{i}")
                if len(parts) > 2
                else None
            )
            assert lat is not None and lon is not None
            buffer.add(lat, lon, parse_time(when, f"{where}, <when> #{i}"), alt, where=where)
    if not tracks:
        lines = [e for e in root.iter() if _local(e.tag) == "LineString"]
        for number, line in enumerate(lines, 1):
            where = f"<LineString> #{number}"
            buffer.new_segment()
            for lat, lon, alt in _coordinates(_child_text(line, "coordinates") or "", where):
                buffer.add(lat, lon, None, alt, where=where)
    name = next((e.text.strip() for e in root.iter() if _local(e.tag) == "name" and e.text), "")
    return buffer.build(name=name[:200])
