"""Demo data with known truth: scripted complaint calls, their synthetic stereo recordings
and the rescue truck's GPX track, so the whole pipeline can be shown and tested offline."""

from earwitness.demo.script import DEMO_CALLS, INCIDENT, CallScript, Incident, Turn, get_call

__all__ = ["DEMO_CALLS", "INCIDENT", "CallScript", "Incident", "Turn", "get_call"]
