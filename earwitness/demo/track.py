"""The rescue truck's GPX track for the demo incident, with the truth of what happened.

Why: seed 000 says investigators check the platform's GPS track — was the driver really late,
did he stop to refuel, did dispatch send him the wrong way, did positioning drift? The track
analysis code needs a track where the answers are known. This one is generated (seeded,
deterministic) along a road-like polyline in north-east Beijing: the truck leaves its depot,
waits at a red light, refuels for 12 minutes, is sent south-west down the Airport Expressway
(away from the customer) until it turns round, shows two drifting fixes several hundred metres
off the road, and reaches the customer on the expressway 50 minutes after the promised time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import gpxpy.gpx

from earwitness.demo.script import INCIDENT

LatLon = tuple[float, float]

#: Default dispatch time: 26 Nov 2026, 16:30 Beijing time (the work order's date).
DEFAULT_DISPATCHED_AT = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)

_M_PER_DEG_LAT = 111_320.0

# Waypoints (lat, lon) along real roads, approximately: the depot in Dongba, a petrol station
# by Siyuanqiao, the Airport Expressway between Sanyuanqiao and the Wenyu River, and the East
# Third Ring Road south of Sanyuanqiao where the misdirected truck turns round.
DEPOT: LatLon = (39.9560, 116.5480)
PETROL_STATION: LatLon = (39.9800, 116.4905)
ON_RAMP: LatLon = (39.9842, 116.4835)  # Siyuanqiao
SANYUANQIAO: LatLon = (39.9605, 116.4565)
U_TURN: LatLon = (39.9420, 116.4620)  # Nongzhanguan, East Third Ring
INCIDENT_POINT: LatLon = (40.0400, 116.5550)  # northbound, near the Wenyu River bridge

_TO_STATION = [DEPOT, (39.9568, 116.5300), (39.9580, 116.5150), (39.9700, 116.4980), PETROL_STATION]
_TO_RAMP = [PETROL_STATION, (39.9822, 116.4870), ON_RAMP]
_WRONG_WAY = [ON_RAMP, (39.9750, 116.4720), (39.9690, 116.4680), SANYUANQIAO, (39.9500, 116.4615)]
_WRONG_WAY += [U_TURN]
_BACK_TO_3RING = [U_TURN, (39.9500, 116.4615), SANYUANQIAO]
_EXPRESSWAY = [
    SANYUANQIAO,
    (39.9690, 116.4680),
    (39.9750, 116.4720),
    ON_RAMP,
    (39.9950, 116.4960),
    (40.0070, 116.5120),
    (40.0230, 116.5330),
    INCIDENT_POINT,
]


@dataclass(frozen=True)
class Interval:
    """A span of time in the track (UTC)."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Length of the span; what an analysis reports as "stopped for N minutes"."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class TrackTruth:
    """What really happened on the way — the answers a track analysis must find."""

    work_order: str
    plate: str
    sample_interval_s: int
    dispatched_at: datetime
    departed_at: datetime
    promised_arrival: datetime
    actual_arrival: datetime
    refuel_stop: Interval
    traffic_light_stop: Interval
    wrong_direction: Interval
    drift_indices: tuple[int, ...]
    drift_offsets_m: tuple[float, ...]
    depot: LatLon
    petrol_station: LatLon
    u_turn: LatLon
    incident: LatLon

    @property
    def arrival_delay_s(self) -> float:
        """Seconds after the promised time the truck reached the customer (50 min here)."""
        return (self.actual_arrival - self.promised_arrival).total_seconds()


@dataclass(frozen=True)
class DemoTrack:
    """The GPX document (as text, ready to file as evidence) and its truth."""

    gpx_xml: str
    truth: TrackTruth


def _to_xy(p: LatLon, ref: LatLon) -> tuple[float, float]:
    """Local metres east/north of ``ref`` (equirectangular; exact enough over 20 km)."""
    k = _M_PER_DEG_LAT * math.cos(math.radians(ref[0]))
    return ((p[1] - ref[1]) * k, (p[0] - ref[0]) * _M_PER_DEG_LAT)


def _from_xy(x: float, y: float, ref: LatLon) -> LatLon:
    k = _M_PER_DEG_LAT * math.cos(math.radians(ref[0]))
    return (ref[0] + y / _M_PER_DEG_LAT, ref[1] + x / k)


class _Builder:
    """Accumulates (time, lat, lon) fixes at a fixed sample interval."""

    def __init__(self, t0: datetime, step_s: int, rng: random.Random) -> None:
        self.t0 = t0
        self.step = step_s
        self.rng = rng
        self.fixes: list[tuple[datetime, float, float]] = []
        self.t = 0  # seconds since t0 of the next fix

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def dwell(self, where: LatLon, until_s: int) -> None:
        """Standing still: fixes scatter by ~1 m, as a parked receiver does."""
        while self.t < until_s:
            dx, dy = self.rng.gauss(0, 1.0), self.rng.gauss(0, 1.0)
            lat, lon = _from_xy(dx, dy, where)
            self.fixes.append((self.at(self.t), lat, lon))
            self.t += self.step

    def drive(self, path: list[LatLon], until_s: int, *, waves: int = 3) -> None:
        """Drive ``path`` so the last vertex is reached exactly at ``until_s``.

        Speed swings ±25 % around the mean (``waves`` slow-downs), like traffic, while the
        endpoints and the leg's duration stay exact.
        """
        ref = path[0]
        xy = [_to_xy(p, ref) for p in path]
        cum = [0.0]
        for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False):
            cum.append(cum[-1] + math.hypot(x1 - x0, y1 - y0))
        length, start, dur = cum[-1], self.t, until_s - self.t
        mean_kmh = length / dur * 3.6
        if not 12.0 <= mean_kmh <= 100.0:
            raise ValueError(f"leg of {length:.0f} m in {dur} s is {mean_kmh:.0f} km/h")
        while self.t < until_s:
            u = (self.t - start) / dur
            s = length * (u + 0.25 * math.sin(2 * math.pi * waves * u) / (2 * math.pi * waves))
            i = max(j for j in range(len(cum) - 1) if cum[j] <= s)
            f = (s - cum[i]) / (cum[i + 1] - cum[i])
            x = xy[i][0] + f * (xy[i + 1][0] - xy[i][0])
            y = xy[i][1] + f * (xy[i + 1][1] - xy[i][1])
            lat, lon = _from_xy(x, y, ref)
            self.fixes.append((self.at(self.t), lat, lon))
            self.t += self.step


def build_track(
    dispatched_at: datetime | None = None, *, sample_interval_s: int = 5, seed: int = 20261126
) -> DemoTrack:
    """Generate the demo incident's GPX track and its truth.

    ``dispatched_at`` (timezone-aware) anchors the timeline; the demo passes
    ``now + INCIDENT.dispatched_offset_s`` so the track lines up with the demo calls, tests
    use the fixed default. Minute marks below are relative to dispatch.
    """
    t0 = dispatched_at or DEFAULT_DISPATCHED_AT
    if t0.tzinfo is None:
        raise ValueError("dispatched_at must be timezone-aware")
    if 60 % sample_interval_s:
        raise ValueError("sample_interval_s must divide 60")
    m = 60
    promised_s = INCIDENT.promised_minutes * m
    arrival_s = promised_s + INCIDENT.delay_minutes * m  # 80 min after dispatch
    b = _Builder(t0, sample_interval_s, random.Random(seed))

    b.dwell(DEPOT, 3 * m)  # crew gets going
    light = _TO_STATION[2]
    b.drive(_TO_STATION[:3], 9 * m)
    b.dwell(light, 9 * m + 45)  # red light: a short stop an analysis must not call a break
    b.drive(_TO_STATION[2:], 15 * m)
    b.dwell(PETROL_STATION, 27 * m)  # the 12-minute refuelling stop
    b.drive(_TO_RAMP, 29 * m)
    b.drive(_WRONG_WAY, 45 * m, waves=2)  # dispatch error: away from the customer
    b.drive(_BACK_TO_3RING, 53 * m, waves=1)
    expressway_from = b.t
    b.drive(_EXPRESSWAY, arrival_s, waves=4)
    b.dwell(INCIDENT_POINT, arrival_s + 8 * m)  # on site, loading the car
    fixes = b.fixes

    # Positioning drift: two consecutive fixes on the expressway jump off the road.
    first = (expressway_from + 12 * m) // sample_interval_s
    drift_idx = (first, first + 1)
    drift_m = (480.0, 650.0)
    for idx, off in zip(drift_idx, drift_m, strict=True):
        t, lat, lon = fixes[idx]
        # Push perpendicular to the road (the expressway runs SW–NE, so push NW).
        dlat, dlon = _from_xy(-off / math.sqrt(2), off / math.sqrt(2), (lat, lon))
        fixes[idx] = (t, dlat, dlon)

    gpx = gpxpy.gpx.GPX()
    gpx.name = f"Rescue truck, work order {INCIDENT.work_order}"
    gpx.description = (
        f"Dispatched {t0.isoformat()} to {INCIDENT.place}; promised arrival "
        f"{b.at(promised_s).isoformat()}. Synthetic demo track (earwitness)."
    )
    gpx.creator = "earwitness demo"
    gpx.time = t0
    trk = gpxpy.gpx.GPXTrack(name=f"{INCIDENT.plate} rescue {INCIDENT.work_order}")
    seg = gpxpy.gpx.GPXTrackSegment()
    for t, lat, lon in fixes:
        seg.points.append(
            gpxpy.gpx.GPXTrackPoint(round(lat, 7), round(lon, 7), elevation=38.0, time=t)
        )
    trk.segments.append(seg)
    gpx.tracks.append(trk)

    truth = TrackTruth(
        work_order=INCIDENT.work_order,
        plate=INCIDENT.plate,
        sample_interval_s=sample_interval_s,
        dispatched_at=t0,
        departed_at=b.at(3 * m),
        promised_arrival=b.at(promised_s),
        actual_arrival=b.at(arrival_s),
        refuel_stop=Interval(b.at(15 * m), b.at(27 * m)),
        traffic_light_stop=Interval(b.at(9 * m), b.at(9 * m + 45)),
        wrong_direction=Interval(b.at(29 * m), b.at(45 * m)),
        drift_indices=drift_idx,
        drift_offsets_m=drift_m,
        depot=DEPOT,
        petrol_station=PETROL_STATION,
        u_turn=U_TURN,
        incident=INCIDENT_POINT,
    )
    return DemoTrack(gpx_xml=gpx.to_xml(version="1.1"), truth=truth)
