"""Tracks with known truth for the tests and the benchmark, and writers for every format.

The rescue-truck scenario (seed 000): 5 min parked at the depot, 6 km east, a
12-minute stop at a petrol station, a 15 km detour (north, east, south) where 3 km
would do, a 5-minute GPS gap while driving, one drifted fix 2 km off, 3 km to the
customer, 10 minutes parked there. All distances/times below are exact by design.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

START = datetime(2026, 11, 20, 0, 0, 0, tzinfo=UTC)  # 08:00 in Shenzhen
DEPOT = (22.60, 113.90)
M_PER_DEG = 6_371_008.8 * math.pi / 180


@dataclass
class Truth:
    lat: list[float] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    marks: dict[str, object] = field(default_factory=dict)

    def times(self) -> list[datetime]:
        return [datetime.fromtimestamp(x, UTC) for x in self.t]


class _Walker:
    def __init__(self, truth: Truth, rng: np.random.Generator) -> None:
        self.truth, self.rng = truth, rng
        self.lat, self.lon = DEPOT
        self.now = START.timestamp()

    def _emit(self, jitter_m: float) -> None:
        dn, de = self.rng.normal(0, jitter_m, 2) if jitter_m else (0.0, 0.0)
        self.truth.lat.append(self.lat + dn / M_PER_DEG)
        self.truth.lon.append(self.lon + de / (M_PER_DEG * math.cos(math.radians(self.lat))))
        self.truth.t.append(self.now)

    def park(self, seconds: int, jitter_m: float = 2.0) -> None:
        for _ in range(seconds):
            self._emit(jitter_m)
            self.now += 1

    def drive(
        self, north_m: float, east_m: float, speed: float = 15.0, record: bool = True
    ) -> None:
        steps = int(round(math.hypot(north_m, east_m) / speed))
        for _ in range(steps):
            if record:
                self._emit(0.5)
            self.lat += north_m / steps / M_PER_DEG
            self.lon += east_m / steps / (M_PER_DEG * math.cos(math.radians(self.lat)))
            self.now += 1

    def here(self) -> tuple[float, float]:
        return self.lat, self.lon


def rescue_truck(seed: int = 7) -> Truth:
    truth = Truth()
    walk = _Walker(truth, np.random.default_rng(seed))
    walk.park(300)
    truth.marks["departed"] = walk.now - 1
    walk.drive(0, 6000)
    truth.marks["petrol_station"] = walk.here()
    truth.marks["stop_start"] = walk.now
    walk.park(720)
    truth.marks["detour_start"] = walk.now
    walk.drive(6000, 0)
    walk.drive(0, 3000)
    walk.drive(-3000, 0)
    drift_at = len(truth.lat) + 30
    walk.drive(-3000, 0)
    truth.marks["gap_start"] = walk.now - 1
    walk.drive(0, 4500, record=False)  # 300 s without a fix
    truth.marks["gap_end"] = walk.now
    walk.drive(0, 3000)
    truth.marks["customer"] = walk.here()
    truth.marks["arrived"] = walk.now
    walk.park(600)
    truth.lat[drift_at] += 2000 / M_PER_DEG  # one fix thrown 2 km north
    truth.marks["drift_index"] = drift_at
    truth.marks["drift_at"] = truth.t[drift_at]
    truth.marks["straight_m"] = 16_500.0
    truth.marks["driven_m"] = 28_500.0
    return truth


def day_track(points: int = 86_400) -> Truth:
    """One fix per second for a day: a delivery van doing loops with stops (benchmark)."""
    truth = Truth()
    walk = _Walker(truth, np.random.default_rng(1))
    while len(truth.t) < points:
        walk.drive(0, 3000)
        walk.park(600)
        walk.drive(2000, 0)
        walk.drive(0, -3000)
        walk.park(300)
        walk.drive(-2000, 0)
    del truth.lat[points:], truth.lon[points:], truth.t[points:]
    return truth


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_gpx(truth: Truth) -> bytes:
    rows = [
        f'<trkpt lat="{la:.7f}" lon="{lo:.7f}"><ele>12.0</ele><time>{_iso(t)}</time></trkpt>'
        for la, lo, t in zip(truth.lat, truth.lon, truth.t, strict=True)
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="tests" '
        'xmlns="http://www.topografix.com/GPX/1/1"><trk><name>rescue</name><trkseg>\n'
        + "\n".join(rows)
        + "\n</trkseg></trk></gpx>\n"
    ).encode()


def to_csv(truth: Truth, header: str = "time,lat,lon,speed", local: bool = False) -> bytes:
    lines = [header]
    for la, lo, t in zip(truth.lat, truth.lon, truth.t, strict=True):
        stamp = (
            (datetime.fromtimestamp(t, UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
            if local
            else _iso(t)
        )
        lines.append(f"{stamp},{la:.7f},{lo:.7f},")
    return ("\n".join(lines) + "\n").encode()


def _nmea(body: str) -> str:
    checksum = 0
    for ch in body:
        checksum ^= ord(ch)
    return f"${body}*{checksum:02X}"


def _dm(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60
    return (f"{deg:02d}{minutes:09.6f}" if lat else f"{deg:03d}{minutes:09.6f}"), hemi


def to_nmea(truth: Truth) -> bytes:
    lines = []
    for la, lo, t in zip(truth.lat, truth.lon, truth.t, strict=True):
        stamp = datetime.fromtimestamp(t, UTC)
        (lat_s, ns), (lon_s, ew) = _dm(la, True), _dm(lo, False)
        hhmmss, ddmmyy = stamp.strftime("%H%M%S.00"), stamp.strftime("%d%m%y")
        lines.append(_nmea(f"GPGGA,{hhmmss},{lat_s},{ns},{lon_s},{ew},1,08,0.9,12.0,M,,M,,"))
        lines.append(_nmea(f"GPRMC,{hhmmss},A,{lat_s},{ns},{lon_s},{ew},0.0,0.0,{ddmmyy},,,A"))
    return ("\r\n".join(lines) + "\r\n").encode()


def to_geojson(truth: Truth) -> bytes:
    feature = {
        "type": "Feature",
        "properties": {"name": "rescue", "coordTimes": [_iso(t) for t in truth.t]},
        "geometry": {
            "type": "LineString",
            "coordinates": [[lo, la] for la, lo in zip(truth.lat, truth.lon, strict=True)],
        },
    }
    return json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()


def to_kml(truth: Truth) -> bytes:
    whens = "".join(f"<when>{_iso(t)}</when>" for t in truth.t)
    coords = "".join(
        f"<gx:coord>{lo:.7f} {la:.7f} 12</gx:coord>"
        for la, lo in zip(truth.lat, truth.lon, strict=True)
    )
    return (
        '<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2" '
        'xmlns:gx="http://www.google.com/kml/ext/2.2"><Document><Placemark><name>rescue</name>'
        f"<gx:Track>{whens}{coords}</gx:Track></Placemark></Document></kml>"
    ).encode()
