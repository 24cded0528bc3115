"""Chinese map datums to WGS-84, and distances on the sphere.

Chinese platforms export GCJ-02 ("Mars coordinates", obfuscated by law, offset up to
~700 m) or Baidu's BD-09 (GCJ-02 rotated once more). Comparing those with a GPS
receiver's WGS-84 without converting makes a truck look hundreds of metres off the
road. GCJ-02 has no closed-form inverse; a fixed-point iteration of the public forward
transform converges to well under a centimetre in a few steps.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from earwitness.errors import BadInput
from earwitness.evidence.tracks.model import FloatArray

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
_A = 6378245.0  # Krasovsky 1940, used by the GCJ-02 algorithm
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0
DATUMS = ("wgs84", "gcj02", "bd09")


def _out_of_china(lat: FloatArray, lon: FloatArray) -> np.ndarray:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _transform_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The published forward transform (what a Chinese map app applies to GPS fixes)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = _out_of_china(lat, lon)
    return np.where(outside, lat, lat + dlat), np.where(outside, lon, lon + dlon)


def gcj02_to_wgs84(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Invert the forward transform by fixed-point iteration (error < 1e-9 degree)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    wlat, wlon = lat.copy(), lon.copy()
    for _ in range(30):
        glat, glon = wgs84_to_gcj02(wlat, wlon)
        dlat, dlon = glat - lat, glon - lon
        wlat, wlon = wlat - dlat, wlon - dlon
        if (
            float(np.max(np.abs(dlat), initial=0.0)) < 1e-10
            and float(np.max(np.abs(dlon), initial=0.0)) < 1e-10
        ):
            break
    return wlat, wlon


def bd09_to_gcj02(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(lon, dtype=np.float64) - 0.0065
    y = np.asarray(lat, dtype=np.float64) - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.sin(theta), z * np.cos(theta)


def gcj02_to_bd09(lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
    x, y = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.sin(theta) + 0.006, z * np.cos(theta) + 0.0065


def to_wgs84(lat: FloatArray, lon: FloatArray, datum: str) -> tuple[FloatArray, FloatArray]:
    """Convert from ``datum`` (wgs84 | gcj02 | bd09) to WGS-84."""
    if datum == "wgs84":
        return lat, lon
    if datum == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if datum == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))
    raise BadInput(f"unknown coordinate system {datum!r}; one of {', '.join(DATUMS)}")


def haversine_m(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance in metres, element-wise."""
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return float(haversine_m(np.array(lat1), np.array(lon1), np.array(lat2), np.array(lon2)))
