"""NMEA 0183, CSV and GeoJSON readers: line-oriented formats name the line they reject.

NMEA: ``RMC`` gives date, time, position and speed; ``GGA`` gives time, position and
altitude but no date, so it borrows the last RMC date (or ``ParseOptions.date``).
A GGA and an RMC of the same second become one point. Sentences without a fix are
skipped, a bad checksum is an error: a corrupted log should not quietly move a truck.

CSV: columns are found by common header names (English and Chinese vendor exports)
or named explicitly; times may be ISO, ``YYYY-MM-DD HH:MM:SS`` (zone from options) or
Unix seconds/milliseconds.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pynmea2

from earwitness.errors import BadInput
from earwitness.evidence.tracks.model import PointBuffer, TrackData

KNOTS_TO_MPS = 0.514444
KMH_TO_MPS = 1 / 3.6


@dataclass(frozen=True)
class CsvLayout:
    """Which column holds what; ``None`` means find it by the usual header names."""

    time: str | None = None
    lat: str | None = None
    lon: str | None = None
    ele: str | None = None
    speed: str | None = None
    speed_unit: str = "kmh"  # kmh | mps | knots
    delimiter: str | None = None


HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "time": (
        "time",
        "timestamp",
        "datetime",
        "date_time",
        "gps_time",
        "gpstime",
        "utc",
        "fix_time",
        "定位时间",
        "时间",
        "gps时间",
        "回传时间",
    ),
    "lat": ("lat", "latitude", "纬度", "y", "lat_deg"),
    "lon": ("lon", "lng", "long", "longitude", "经度", "x", "lon_deg"),
    "ele": ("ele", "elevation", "alt", "altitude", "height", "海拔", "高度"),
    "speed": ("speed", "speed_kmh", "velocity", "速度", "车速"),
}


def _tz(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, _, minutes = offset.lstrip("+-").partition(":")
    return timezone(sign * timedelta(hours=int(hours or 0), minutes=int(minutes or 0)))


def parse_naive_or_epoch(value: str, tz: timezone, where: str) -> float:
    """A CSV time: Unix seconds/ms, or ISO/space-separated (``tz`` when no zone is given)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number / 1000.0 if number > 1e11 else number
    for candidate in (text.replace("Z", "+00:00"), text.replace("/", "-")):
        try:
            stamp = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=tz)).timestamp()
    raise BadInput(f"{where}: time {text[:40]!r} is not ISO 8601 or Unix time")


def _find_column(header: list[str], field: str, explicit: str | None) -> int | None:
    lowered = [h.strip().lower().lstrip("\ufeff") for h in header]
    if explicit is not None:
        if explicit.lower() not in lowered:
            raise BadInput(f"CSV line 1: no column named {explicit!r} (have {', '.join(header)})")
        return lowered.index(explicit.lower())
    for name in HEADER_NAMES[field]:
        if name in lowered:
            return lowered.index(name)
    return None


def parse_csv(data: bytes, layout: CsvLayout, assume_tz: str = "+00:00") -> TrackData:
    text = _decode(data, "CSV")
    delimiter = layout.delimiter
    if delimiter is None:
        first = text.split("\n", 1)[0]
        delimiter = max((",", ";", "\t", "|"), key=first.count)
    try:
        return _parse_csv_rows(
            csv.reader(io.StringIO(text), delimiter=delimiter), layout, assume_tz
        )
    except csv.Error as exc:  # NUL bytes, a bare CR inside a field: not a CSV we can read
        raise BadInput(f"CSV file is malformed: {exc}") from None


def _parse_csv_rows(rows: Iterator[list[str]], layout: CsvLayout, assume_tz: str) -> TrackData:
    try:
        header = next(rows)
    except StopIteration:
        raise BadInput("CSV file is empty") from None
    cols = {f: _find_column(header, f, getattr(layout, f)) for f in HEADER_NAMES}
    if cols["lat"] is None or cols["lon"] is None:
        raise BadInput(
            f"CSV line 1: cannot find latitude/longitude columns in {header!r}; "
            "name them with the CSV layout options"
        )
    factor = {"kmh": KMH_TO_MPS, "mps": 1.0, "knots": KNOTS_TO_MPS}.get(layout.speed_unit)
    if factor is None:
        raise BadInput(f"unknown speed unit {layout.speed_unit!r}; kmh, mps or knots")
    tz = _tz(assume_tz)
    buffer = PointBuffer("csv")
    for line_no, row in enumerate(rows, 2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"CSV line {line_no}"

        def cell(field: str, row: list[str] = row, where: str = where) -> str | None:
            index = cols[field]
            if index is None:
                return None
            if index >= len(row):
                raise BadInput(f"{where}: has {len(row)} columns, expected {len(header)}")
            return row[index].strip() or None

        try:
            lat = float(cell("lat") or "")
            lon = float(cell("lon") or "")
            ele_text, speed_text = cell("ele"), cell("speed")
            ele = float(ele_text) if ele_text else None
            speed = float(speed_text) * factor if speed_text else None
        except ValueError as exc:
            raise BadInput(f"{where}: {exc}") from None
        time_text = cell("time")
        stamp = parse_naive_or_epoch(time_text, tz, where) if time_text else None
        buffer.add(lat, lon, stamp, ele, speed, where=where)
    return buffer.build()


def _decode(data: bytes, kind: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Chinese vendor exports are often GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadInput(f"{kind} file is neither UTF-8 nor GB18030 text")


def _nmea_sentences(text: str) -> list[tuple[str, str, Any]]:
    """Parse and checksum every sentence first, so a bad line fails before any point counts."""
    out: list[tuple[str, str, Any]] = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or not line.startswith(("$", "!")):
            continue
        where = f"NMEA line {line_no}"
        try:
            msg = pynmea2.parse(line, check=True)
        except pynmea2.ChecksumError:
            raise BadInput(f"{where}: checksum does not match ({line[:60]!r})") from None
        except pynmea2.ParseError as exc:
            raise BadInput(f"{where}: cannot parse sentence ({str(exc)[:80]})") from None
        kind = getattr(msg, "sentence_type", "")
        if kind in ("RMC", "GGA"):
            out.append((where, kind, msg))
    return out


def parse_nmea(data: bytes, day: date | None = None) -> TrackData:
    sentences = _nmea_sentences(_decode(data, "NMEA"))
    # A receiver sends GGA before RMC within each second: borrow the first RMC's date.
    current_day = day or next(
        (m.datestamp for _, k, m in sentences if k == "RMC" and m.datestamp), None
    )
    by_time: dict[float, dict[str, Any]] = {}
    previous_tod = None
    for where, kind, msg in sentences:
        if msg.timestamp is None:
            raise BadInput(f"{where}: {kind} sentence without a time")
        if kind == "RMC":
            if msg.status != "A" or not msg.lat or msg.datestamp is None:
                continue
            current_day = msg.datestamp
            speed = float(msg.spd_over_grnd) * KNOTS_TO_MPS if msg.spd_over_grnd else None
            point = {"lat": msg.latitude, "lon": msg.longitude, "speed": speed}
        else:
            if not msg.gps_qual or int(msg.gps_qual) == 0 or not msg.lat:
                continue
            alt = float(msg.altitude) if msg.altitude not in (None, "") else None
            point = {"lat": msg.latitude, "lon": msg.longitude, "ele": alt}
        if current_day is None:
            raise BadInput(f"{where}: GGA without any RMC sentence and no date given")
        tod = msg.timestamp.replace(tzinfo=None)
        if kind == "GGA" and previous_tod is not None and tod < previous_tod:
            current_day = current_day + timedelta(days=1)  # GGA-only log crossed midnight
        previous_tod = tod
        stamp = datetime.combine(current_day, tod, UTC).timestamp()
        by_time.setdefault(stamp, {"where": where}).update(
            {k: v for k, v in point.items() if v is not None}
        )
    buffer = PointBuffer("nmea")
    for stamp, p in by_time.items():
        buffer.add(p["lat"], p["lon"], stamp, p.get("ele"), p.get("speed"), where=p["where"])
    return buffer.build()


def parse_geojson(data: bytes) -> TrackData:
    """LineString/MultiLineString features (times in ``coordTimes``/``times``) or Points."""
    try:
        doc = json.loads(_decode(data, "GeoJSON"))
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"GeoJSON is not valid JSON at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise BadInput("GeoJSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise BadInput("GeoJSON must be an object")
    features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if not isinstance(features, list):
        raise BadInput("GeoJSON FeatureCollection has no 'features' list")
    buffer = PointBuffer("geojson")
    for fi, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise BadInput(f"features[{fi}] is not an object")
        geometry = feature.get("geometry") or {}
        props = feature.get("properties") or {}
        if not isinstance(geometry, dict) or not isinstance(props, dict):
            raise BadInput(f"features[{fi}]: geometry and properties must be objects")
        gtype, coords = geometry.get("type"), geometry.get("coordinates")
        lines: Any
        times: Any = props.get("coordTimes") or props.get("times")
        if gtype == "Point":
            lines, times = [[coords]], [[props.get("time")]]
        elif gtype == "LineString":
            lines, times = [coords], [times] if times else None
        elif gtype == "MultiLineString":
            lines = coords
        else:
            continue
        if not isinstance(lines, list):
            raise BadInput(f"features[{fi}].geometry.coordinates is not a list")
        for li, line in enumerate(lines):
            buffer.new_segment()
            line_times = times[li] if isinstance(times, list) and li < len(times) else None
            if not isinstance(line, list):
                raise BadInput(f"features[{fi}].geometry.coordinates[{li}] is not a list")
            for pi, pos in enumerate(line):
                where = f"features[{fi}].geometry.coordinates[{li}][{pi}]"
                if (
                    not isinstance(pos, list)
                    or len(pos) < 2
                    or not all(isinstance(v, int | float) for v in pos[:3])
                ):
                    raise BadInput(f"{where}: {str(pos)[:40]} is not [lon, lat(, alt)]")
                stamp = None
                if isinstance(line_times, list) and pi < len(line_times) and line_times[pi]:
                    value = line_times[pi]
                    stamp = (
                        float(value) / (1000.0 if value > 1e11 else 1.0)
                        if isinstance(value, int | float)
                        else parse_naive_or_epoch(str(value), UTC, where)
                    )
                ele = float(pos[2]) if len(pos) > 2 else None
                buffer.add(float(pos[1]), float(pos[0]), stamp, ele, where=where)
    return buffer.build(
        name=str((features[0].get("properties") or {}).get("name", ""))[:200]
        if features and isinstance(features[0], dict)
        else ""
    )
