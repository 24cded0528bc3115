"""Track parsing and analysis: known-truth tracks in every format, real GPX files, hostile input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import gpxpy
import numpy as np
import pytest

from earwitness.errors import BadInput
from earwitness.evidence.tracks import (
    AnalysisParams,
    CsvLayout,
    ParseOptions,
    Place,
    analyze,
    parse_track,
)
from earwitness.evidence.tracks.coords import (
    bd09_to_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    haversine_m,
    to_wgs84,
    wgs84_to_gcj02,
)
from tests import track_synth as synth

# Third-party recorded tracks (from ../shared/data/tracks: gpxpy test files, Apache-2.0, see
# SOURCES and LICENSE-gpxpy.txt there), copied in so a clone anywhere finds them.
REAL = Path(__file__).resolve().parent / "data" / "tracks"
REAL_FILES = sorted(REAL.glob("*.gpx"))
assert len(REAL_FILES) == 3, f"real GPX tracks missing from {REAL}"


@pytest.fixture(scope="module")
def truck() -> synth.Truth:
    return synth.rescue_truck()


def _params(truth: synth.Truth) -> AnalysisParams:
    arrived = datetime.fromtimestamp(float(truth.marks["arrived"]), UTC)  # type: ignore[arg-type]
    return AnalysisParams(
        destination=Place("customer", *truth.marks["customer"]),  # type: ignore[misc]
        promised_at=arrived - timedelta(minutes=50),
        dispatched_at=synth.START + timedelta(minutes=3),
        places=(Place("petrol station", *truth.marks["petrol_station"]),),  # type: ignore[misc]
    )


WRITERS = {
    "gpx": synth.to_gpx,
    "csv": synth.to_csv,
    "nmea": synth.to_nmea,
    "geojson": synth.to_geojson,
    "kml": synth.to_kml,
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_rescue_truck_known_truth_in_every_format(truck: synth.Truth, fmt: str) -> None:
    track = parse_track(WRITERS[fmt](truck))
    assert track.source_format == fmt and len(track) == len(truck.lat)
    result = analyze(track, _params(truck)).as_dict()
    en_route = [s for s in result["stops"] if s["phase"] == "en route"]
    assert len(en_route) == 1
    stop = en_route[0]
    assert abs(stop["minutes"] - 12.0) <= 0.1
    assert stop["place"]["name"] == "petrol station" and stop["place"]["distance_m"] < 10
    assert [g["reason"] for g in result["gaps"]] == ["no fix"]
    assert abs(result["gaps"][0]["seconds"] - 301) <= 1
    drift = [j for j in result["jumps"] if j["outlier_index"] is not None]
    assert {j["outlier_index"] for j in drift} == {truck.marks["drift_index"]}
    assert result["summary"]["points_used"] == len(truck.lat) - 1
    # Detour: 28.5 km driven where 16.5 km is the straight line.
    assert result["detour"]["ratio"] == pytest.approx(28_500 / 16_500, abs=0.02)
    assert result["detour"]["flagged"] is True
    # Geofence of 200 m is entered ~13 s (200 m at 15 m/s) before the truck stops there.
    assert result["lateness"]["late_minutes"] == pytest.approx(50 - 200 / 15 / 60, abs=0.1)
    assert result["lateness"]["departure_after_dispatch_minutes"] == pytest.approx(2.0, abs=0.05)
    verdict = result["verdict"]
    assert any(
        line.startswith("arrived at customer") and "50 min after the promised" in line
        for line in verdict
    ), verdict
    assert any("stopped 12 min at 22.60000,113.95845 (petrol station)" in v for v in verdict)
    assert any(v.startswith("detour ratio 1.7") for v in verdict)
    assert any(v.startswith("GPS gap 5 min") for v in verdict)
    assert sum("positioning drift" in v for v in verdict) == 1
    assert result["params"]["stop_min_minutes"] == 3.0
    assert result["params"]["places"][0]["name"] == "petrol station"


def test_routed_distance_and_no_destination(truck: synth.Truth) -> None:
    track = parse_track(synth.to_gpx(truck))
    base = _params(truck)
    routed = analyze(track, AnalysisParams(**{**base.__dict__, "routed_distance_m": 19_000.0}))
    assert routed.detour is not None and routed.detour["reference"] == "routed"
    assert routed.detour["ratio"] == pytest.approx(28_500 / 19_000, abs=0.02)
    plain = analyze(track)
    assert plain.detour is None and plain.arrival is None
    assert plain.lateness["late_minutes"] is None


def test_gcj02_and_bd09_inputs_convert_to_wgs84(truck: synth.Truth) -> None:
    lat, lon = np.array(truck.lat), np.array(truck.lon)
    glat, glon = wgs84_to_gcj02(lat, lon)
    offset = haversine_m(lat, lon, glat, glon)
    assert 200 < float(offset.mean()) < 700  # the offset that makes trucks look off-road
    shifted = synth.Truth(list(glat), list(glon), truck.t, truck.marks)
    raw = parse_track(synth.to_csv(shifted))
    fixed = parse_track(synth.to_csv(shifted), ParseOptions(coord_system="gcj02"))
    assert fixed.coord_system == "gcj02"
    assert float(haversine_m(lat, lon, fixed.lat, fixed.lon).max()) < 0.05
    assert float(haversine_m(lat, lon, raw.lat, raw.lon).min()) > 100
    stops = analyze(fixed, _params(truck)).stops
    assert [s["place"]["name"] for s in stops if s["place"]] == ["petrol station"]
    blat, blon = gcj02_to_bd09(glat, glon)
    back_lat, back_lon = to_wgs84(blat, blon, "bd09")
    assert float(haversine_m(lat, lon, back_lat, back_lon).max()) < 0.5


def test_datum_reference_values() -> None:
    # Tiananmen, as published with the widely used coordtransform algorithm.
    glat, glon = wgs84_to_gcj02(np.array(39.915), np.array(116.404))
    assert (float(glat), float(glon)) == pytest.approx((39.91640428, 116.41024450), abs=1e-7)
    wlat, wlon = gcj02_to_wgs84(glat, glon)
    assert (float(wlat), float(wlon)) == pytest.approx((39.915, 116.404), abs=1e-9)
    blat, blon = bd09_to_gcj02(np.array(39.915), np.array(116.404))
    assert (float(blat), float(blon)) == pytest.approx((39.90865674, 116.39762729), abs=1e-7)
    # Outside China nothing moves (GCJ-02 only applies inside).
    assert float(wgs84_to_gcj02(np.array(45.3), np.array(13.7))[0]) == 45.3


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_gpx_files_match_gpxpy(path: Path) -> None:
    data = path.read_bytes()
    ours = parse_track(data)
    via_gpxpy = parse_track(data, ParseOptions(gpx_engine="gpxpy"))
    gpx = gpxpy.parse(data.decode())
    assert len(ours) == len(via_gpxpy) == gpx.get_points_no()
    assert np.array_equal(ours.lat, via_gpxpy.lat) and np.array_equal(ours.lon, via_gpxpy.lon)
    result = analyze(ours).as_dict()
    assert result["summary"]["distance_m"] == pytest.approx(gpx.length_2d(), rel=0.005)
    duration = gpx.get_duration()
    if result["summary"]["duration_s"] is None:
        assert duration in (None, 0.0)  # no (usable) times: gpxpy has none either
    else:
        assert result["summary"]["duration_s"] == pytest.approx(duration, abs=1)
    assert all(j["implied_kmh"] < 100_000 for j in result["jumps"])


def test_real_car_drive_is_sane() -> None:
    track = parse_track((REAL / "around-visnjan-with-car.gpx").read_bytes())
    result = analyze(track, AnalysisParams(stop_min_minutes=0.5)).as_dict()
    assert result["jumps"] == [] and result["gaps"] == []
    assert result["summary"]["duration_s"] == 514.0
    phases = [s["phase"] for s in result["stops"]]
    assert phases and phases[-1] == "after arrival"  # parked at the end (SOURCES)
    assert result["trip"]["minutes"] < 514 / 60
    assert result["summary"]["moving_distance_m"] < result["summary"]["distance_m"]
    mojstrovka = analyze(parse_track((REAL / "Mojstrovka.gpx").read_bytes()))
    assert any("timestamps unusable" in w for w in mojstrovka.warnings)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<gpx version="1.1"><trk><name>&lol3;</name></trk></gpx>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<gpx version="1.1"><trk><name>&x;</name><trkseg><trkpt lat="1" lon="1"/></trkseg></trk></gpx>"""


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (BOMB, None, "DTD or entities"),
        (XXE, None, "DTD or entities"),
        (BOMB.replace(b"gpx", b"kml"), ParseOptions(format="kml"), "DTD or entities"),
        (b'<?xml version="1.0"?>\n<gpx>\n<trk>\n</gpx>', None, "line 4, column 2"),
        (
            b'<gpx><trk><trkseg><trkpt lat="1" lon="2"/><trkpt lat="x" lon="2"/>'
            b"</trkseg></trk></gpx>",
            None,
            r"<trkpt> #2: lat 'x' is not a number",
        ),
        (b'<gpx><trk><trkseg><trkpt lat="91" lon="2"/></trkseg></trk></gpx>', None, "out of range"),
        (b"<gpx></gpx>", None, "no track points"),
        (
            b"$GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*62\n"
            b"$GPRMC,081837,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E*00\n",
            None,
            "NMEA line 2: checksum",
        ),
        (
            b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\n",
            None,
            "NMEA line 1: GGA without any RMC",
        ),
        (
            b"time,lat,lon\n2026-11-20T00:00:00Z,22.5,114\n2026-11-20T00:00:01Z,abc,114\n",
            None,
            "CSV line 3",
        ),
        (b"time,lat,lon\nyesterday,22.5,114\n", None, "CSV line 2: time 'yesterday'"),
        (b"a,b,c\n1,2,3\n", None, "cannot find latitude/longitude"),
        (b'{"type": "FeatureCollection",\n "features": [}', None, "line 2, column"),
        (
            b"[" * 100_000 + b"]" * 100_000,
            ParseOptions(format="geojson"),
            "nested|must be an object",
        ),
        (
            b'{"type":"Feature","geometry":{"type":"LineString","coordinates":[[1,2],["a",3]]}}',
            None,
            r"coordinates\[0\]\[1\]",
        ),
        (
            b'<kml><Document><gx:Track xmlns:gx="g"><when>2026-11-20T00:00:00Z</when></gx:Track>'
            b"</Document></kml>",
            None,
            "1 <when> but 0 <gx:coord>",
        ),
        (b"\x00\x01\x02binary", None, "cannot tell the track format"),
    ],
)
def test_broken_and_hostile_input_names_the_place(
    data: bytes, options: ParseOptions | None, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        parse_track(data, options)


def test_csv_vendor_layouts_and_nmea_dates() -> None:
    chinese = (
        "定位时间,经度,纬度,速度\n"
        "2026-11-20 08:00:00,114.0,22.5,36\n2026-11-20 08:00:10,114.001,22.5,36\n"
    )
    track = parse_track(chinese.encode("gb18030"), ParseOptions(format="csv", assume_tz="+08:00"))
    assert track.time_at(0) == datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert track.speed_mps[0] == pytest.approx(10.0)
    assert track.lon[1] == 114.001
    semicolon = b"Zeit;Breite;Laenge\n1795132800000;22.5;114.0\n1795132801000;22.5;114.0001\n"
    layout = CsvLayout(time="Zeit", lat="Breite", lon="Laenge")
    track = parse_track(semicolon, ParseOptions(format="csv", csv=layout))
    assert track.time_at(1) == datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC)
    with pytest.raises(BadInput, match="no column named 'Lat'"):
        parse_track(semicolon, ParseOptions(format="csv", csv=CsvLayout(lat="Lat")))
    gga = (
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\n"
        b"$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74\n"
    )
    track = parse_track(gga, ParseOptions(nmea_date=datetime(2026, 11, 20).date()))
    assert len(track) == 1 and track.ele[0] == 545.4
    assert track.time_at(0) == datetime(2026, 11, 20, 12, 35, 19, tzinfo=UTC)
