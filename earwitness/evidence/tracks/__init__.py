"""GPS tracks: parse (GPX, NMEA, CSV, GeoJSON, KML; GCJ-02/BD-09 → WGS-84) and analyse."""

from earwitness.evidence.tracks.analysis import AnalysisParams, Place, TrackAnalysis
from earwitness.evidence.tracks.model import TrackData
from earwitness.evidence.tracks.parse import FORMATS, ParseOptions, detect_format, parse_track
from earwitness.evidence.tracks.text_formats import CsvLayout
from earwitness.evidence.tracks.trip import analyze

__all__ = [
    "FORMATS",
    "AnalysisParams",
    "CsvLayout",
    "ParseOptions",
    "Place",
    "TrackAnalysis",
    "TrackData",
    "analyze",
    "detect_format",
    "parse_track",
]
