"""Hypothesis properties over every parser that reads outside input.

Each parser, fed anything, either returns its documented result or raises its documented
error (BadInput, ConfigError, AmiProtocolError, a skipped-line report), never anything
else, and within a per-example deadline (no hang). Where a format can be written back, the
round trip is checked: track → file → parse → file → parse gives the same points, and the
search normalisation is idempotent. Every test prints how many cases it tried.
"""

from __future__ import annotations

import math
import os
import struct
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from earwitness.cases.policy import Policy, load_policy
from earwitness.config import Settings, load_settings
from earwitness.errors import BadInput, ConfigError
from earwitness.evidence.tracks import ParseOptions
from earwitness.evidence.tracks.model import TrackData
from earwitness.evidence.tracks.parse import parse_track
from earwitness.qa.rules import RuleSet, parse_rules
from earwitness.recordings.wavfix import read_header, repair_wav_channels
from earwitness.search.normalize import fold
from earwitness.search.query import parse_query, positive_terms
from earwitness.telephony.ami.protocol import AmiParser, AmiProtocolError, encode_action
from earwitness.telephony.queue_log import QueueLogLineError, parse_line, parse_queue_log
from tests import track_synth

EXAMPLES = int(os.environ.get("EARWITNESS_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=2000,  # ms per example: a parser that hangs fails here, not in production
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def tally(capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Iterator[list]:
    """Counts the cases a property tried and prints the count, also in a quiet run."""
    tried: list[int] = []
    yield tried
    with capsys.disabled():
        print(f"\n{request.node.name}: {len(tried)} cases tried", end="")


# -- AMI frames ---------------------------------------------------------------------------

_header_key = st.text(
    st.characters(codec="ascii", exclude_characters=":\r\n", min_codepoint=33), min_size=1
).filter(lambda k: k.lower() not in ("event", "response"))
_header_value = st.text(
    st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=40
).map(str.strip)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _feed_all(chunks: list[bytes], max_frame: int = 4096) -> tuple[list[Any], AmiParser]:
    parser = AmiParser(max_frame=max_frame)
    out = []
    for chunk in chunks:
        out.extend((m.kind, m.name, tuple(m.headers), m.body) for m in parser.feed(chunk, 0.0))
        assert len(parser._buf) <= max_frame + len(chunk) + 64  # memory stays bounded
    return out, parser


@PROPERTY
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_ami_parser_any_bytes_any_split_same_messages(
    data: bytes, cuts: list[int], tally: list[int]
) -> None:
    tally.append(1)
    whole, _ = _feed_all([data])
    split, _ = _feed_all(_chunks(data, cuts))
    assert split == whole


@PROPERTY
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from(["Event", "Response"]),
            st.text(st.characters(codec="ascii", min_codepoint=65, max_codepoint=122), min_size=1),
            st.lists(st.tuples(_header_key, _header_value), max_size=6),
        ),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(0, 5000), max_size=10),
)
def test_ami_frames_round_trip(
    frames: list[tuple[str, str, list[tuple[str, str]]]], cuts: list[int], tally: list[int]
) -> None:
    tally.append(1)
    wire = b"".join(
        (f"{kind}: {name}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()
        for kind, name, headers in frames
        if not (kind == "Response" and name == "Follows")
    )
    expected = [
        [(kind, name), *headers]
        for kind, name, headers in frames
        if not (kind == "Response" and name == "Follows")
    ]
    messages, parser = _feed_all(_chunks(wire, cuts), max_frame=1 << 20)
    assert [list(headers) for _, _, headers, _ in messages] == expected
    assert parser.stats.skipped_lines == parser.stats.decode_errors == 0


@PROPERTY
@given(
    name=st.text(max_size=20),
    headers=st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in ("name", "action_id")), st.text()
    ),
)
def test_ami_encode_action_refuses_injection(
    name: str, headers: dict[str, str], tally: list[int]
) -> None:
    tally.append(1)
    try:
        wire = encode_action(name, "id-1", **headers)
    except AmiProtocolError:
        return
    # what was accepted is exactly one frame: no header can smuggle a second action in
    assert wire.endswith(b"\r\n\r\n") and wire.count(b"\r\n\r\n") == 1
    assert len(AmiParser().feed(b"Response: x\r\n" + wire.split(b"\r\n", 1)[1], 0.0)) == 1


# -- queue_log -----------------------------------------------------------------------------

_QL_EVENTS = ["ENTERQUEUE", "CONNECT", "RINGNOANSWER", "COMPLETEAGENT", "COMPLETECALLER"]
_QL_EVENTS += ["ABANDON", "EXITWITHKEY", "EXITWITHTIMEOUT", "EXITEMPTY", "TRANSFER"]
_QL_EVENTS += ["BLINDTRANSFER", "ATTENDEDTRANSFER", "ADDMEMBER", "PAUSE", "BOGUS", ""]
_ql_field = st.one_of(
    st.sampled_from(["NONE", "1", "-1", "0", "1e308", "99999999999999999999", "q1", "c1"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True).map(str),
    st.text(st.characters(exclude_characters="|\n\r"), max_size=12),
)
_ql_line = st.one_of(
    st.builds(
        lambda epoch, callid, queue, agent, event, data: "|".join(
            [epoch, callid, queue, agent, event, *data]
        ),
        st.one_of(st.integers(-(2**40), 2**40).map(str), _ql_field),
        st.sampled_from(["c1", "c2", "c3", "NONE", ""]),
        st.sampled_from(["q1", "q2", "NONE"]),
        st.sampled_from(["Local/a@agents", "NONE", ""]),
        st.sampled_from(_QL_EVENTS),
        st.lists(_ql_field, max_size=6),
    ),
    st.text(max_size=60),
    st.binary(max_size=60),
)


@PROPERTY
@given(lines=st.lists(_ql_line, max_size=25))
def test_queue_log_never_raises_and_accounts_for_every_line(
    lines: list[str | bytes], tally: list[int]
) -> None:
    tally.append(1)
    result = parse_queue_log(lines)
    assert result.lines_read == len(lines)
    for problem in [*result.skipped, *result.warnings]:
        assert 1 <= problem.line_no <= max(1, len(lines)) and problem.reason
    for call in result.calls:
        assert call.entered_at <= (call.answered_at or call.entered_at)


@PROPERTY
@given(line=st.text(max_size=200))
def test_queue_log_line_parses_or_says_why(line: str, tally: list[int]) -> None:
    tally.append(1)
    try:
        event = parse_line(line, 1)
    except QueueLogLineError as exc:
        assert str(exc)
    else:
        assert event.event and event.at.tzinfo is not None


# -- tracks: GPX / KML / NMEA / CSV / GeoJSON ------------------------------------------------

_FORMATS = ["gpx", "kml", "nmea", "csv", "geojson"]
_WRITERS: dict[str, Callable[[track_synth.Truth], bytes]] = {
    "gpx": track_synth.to_gpx,
    "kml": track_synth.to_kml,
    "nmea": track_synth.to_nmea,
    "csv": track_synth.to_csv,
    "geojson": track_synth.to_geojson,
}
_SEEDS = {
    f: _WRITERS[f](track_synth.Truth([22.5, 22.6], [113.9, 114.0], [1.7e9, 1.7e9 + 5]))
    for f in _FORMATS
}


def _mutate(seed: bytes, data: st.DataObject) -> bytes:
    """A valid file with a random slice replaced: near-valid inputs reach deep into a parser."""
    start = data.draw(st.integers(0, len(seed)))
    end = data.draw(st.integers(start, len(seed)))
    return seed[:start] + data.draw(st.binary(max_size=40)) + seed[end:]


def _check_track(track: TrackData) -> None:
    n = len(track)
    for column in (track.t, track.lat, track.lon, track.ele, track.speed_mps):
        assert column.shape == (n,)
    assert np.all(np.abs(track.lat) <= 90) and np.all(np.abs(track.lon) <= 180)


@PROPERTY
@given(fmt=st.sampled_from(_FORMATS), data=st.data())
def test_track_parsers_bad_input_or_a_sane_track(
    fmt: str, data: st.DataObject, tally: list[int]
) -> None:
    tally.append(1)
    raw = data.draw(st.one_of(st.binary(max_size=400), st.just(_SEEDS[fmt]).map(lambda s: s)))
    raw = _mutate(raw, data) if data.draw(st.booleans()) else raw
    try:
        track = parse_track(raw, ParseOptions(format=fmt))
    except BadInput as exc:
        assert str(exc)
    else:
        _check_track(track)


_point_times = st.lists(st.integers(0, 3600), min_size=2, max_size=30, unique=True).map(sorted)


@PROPERTY
@given(
    fmt=st.sampled_from(_FORMATS),
    times=_point_times,
    lat0=st.floats(-80, 80),
    lon0=st.floats(-170, 170),
    steps=st.lists(st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), min_size=30),
)
def test_track_round_trip_parse_export_parse(
    fmt: str,
    times: list[int],
    lat0: float,
    lon0: float,
    steps: list[tuple[float, float]],
    tally: list[int],
) -> None:
    tally.append(1)
    base = 1_763_000_000
    truth = track_synth.Truth(
        [lat0 + sum(s[0] for s in steps[: i + 1]) for i in range(len(times))],
        [lon0 + sum(s[1] for s in steps[: i + 1]) for i in range(len(times))],
        [float(base + t) for t in times],
    )
    first = parse_track(_WRITERS[fmt](truth), ParseOptions(format=fmt))
    again = track_synth.Truth(list(first.lat), list(first.lon), list(first.t))
    second = parse_track(_WRITERS[fmt](again), ParseOptions(format=fmt))
    assert len(first) == len(second) == len(times)
    np.testing.assert_array_equal(first.t, second.t)
    np.testing.assert_allclose(first.lat, truth.lat, atol=2e-6)
    np.testing.assert_allclose(first.lon, truth.lon, atol=2e-6)
    np.testing.assert_allclose(second.lat, first.lat, atol=2e-6)
    np.testing.assert_allclose(second.lon, first.lon, atol=2e-6)


# -- WAV / MixMonitor header repair -------------------------------------------------------


def _wav(
    channels: int, bits: int, frames: int, fmt_size: int = 16, data_size: int | None = None
) -> bytes:
    block = channels * max(1, bits // 8)
    body = bytes(range(256)) * (frames * block // 256 + 1)
    body = body[: frames * block]
    fmt = struct.pack("<HHIIHH", 1, channels, 8000, 8000 * block, block, bits)
    fmt += b"\0" * (fmt_size - 16)
    size = len(body) if data_size is None else data_size
    chunks = b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data" + struct.pack("<I", size) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@PROPERTY
@given(
    channels=st.integers(0, 4),
    bits=st.sampled_from([0, 8, 16, 24, 32, 7]),
    frames=st.integers(0, 50),
    fmt_size=st.sampled_from([16, 18, 40, 14, 0xFFFFFFF0 & 0xFF]),
    data_size=st.one_of(st.none(), st.sampled_from([0, 1, 0xFFFFFFFF, 10**6])),
    data=st.data(),
)
def test_wav_repair_bad_input_or_same_length(
    channels: int,
    bits: int,
    frames: int,
    fmt_size: int,
    data_size: int | None,
    data: st.DataObject,
    tally: list[int],
) -> None:
    tally.append(1)
    raw = _wav(channels, bits, frames, fmt_size, data_size)
    if data.draw(st.booleans()):
        raw = _mutate(raw, data)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]  # truncated mid-chunk
    header = read_header(raw)
    try:
        fixed = repair_wav_channels(raw, 2)
    except BadInput:
        assert header is None
        return
    assert header is not None and len(fixed) == len(raw)
    after = read_header(fixed)
    assert after is not None and after.data_size == header.data_size
    if fixed != raw:  # a repair makes a 2-channel header with a consistent block size
        assert after.channels == 2 and after.block_align == 2 * max(1, after.bits // 8)
        assert repair_wav_channels(fixed, 2) == fixed  # and repairing twice changes nothing


# -- search query language -----------------------------------------------------------------

_query_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.sampled_from(
            [
                '"',
                "“",
                "”",
                "(",
                ")",
                "-",
                "NOT",
                "AND",
                "OR",
                "*",
                "~",
                " ",
                "退款",
                "投诉",
                "京A12345",
                "refu",
                "五十",
                "５０",
                "NEAR",
                ":",
                "^",
                "{",
                "}",
                "司机今天又迟到了",
            ]
        ),  # fmt: skip
        max_size=20,
    ).map("".join),
)


@PROPERTY
@given(query=_query_text)
def test_search_query_parses_or_bad_input(query: str, tally: list[int]) -> None:
    tally.append(1)
    try:
        node = parse_query(query)
    except BadInput as exc:
        assert str(exc)
        return
    for term in positive_terms(node):
        assert term.text and fold(term.text).text == term.text  # terms come out normalised


@PROPERTY
@given(text=st.text(max_size=60))
def test_search_normalise_idempotent(text: str, tally: list[int]) -> None:
    tally.append(1)
    once = fold(text)
    assert fold(once.text).text == once.text
    assert len(once.spans) == len(once.text)
    for start, end in once.spans:
        assert 0 <= start < end <= len(text) + 8  # spans point into the original text


# -- QA rules and case policy TOML ----------------------------------------------------------

_scalar = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.booleans(),
)
_value = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _toml_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: Any) -> str:
    """Inline TOML for ``value`` (no writer ships with the standard library)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "inf" if value == math.inf else "-inf" if value == -math.inf else repr(value)
    if isinstance(value, str):
        return (
            '"'
            + "".join(
                c
                if c.isprintable() and c not in '"\\'
                else f"\\u{ord(c):04x}"
                if ord(c) < 0x10000
                else f"\\U{ord(c):08x}"
                for c in value
            )
            + '"'
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(doc: dict[str, Any]) -> str:
    return "\n".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"


def _doc(keys: list[str], nested: dict[str, list[str]]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like the real file: known keys (and some unknown) with any values."""
    inner = {
        key: st.dictionaries(st.sampled_from([*names, "bogus"]), _value, max_size=4)
        for key, names in nested.items()
    }
    field = st.one_of(*(st.tuples(st.just(k), inner.get(k, _value)) for k in [*keys, "bogus"]))
    return st.lists(field, max_size=6).map(dict)


_RULE_KEYS = ["id", "title", "phrases", "regex", "fuzzy", "weight", "speaker", "window_s"]
_RULE = st.dictionaries(st.sampled_from([*_RULE_KEYS, "bogus"]), _value, max_size=6)
_RULES_DOC = _doc(
    ["name", "language", "rule", "check", "timing", "agitation"],
    {"timing": ["interruption_min_overlap_ms", "non_talk_min_ms"],
     "agitation": ["anger_words", "loudness_rise_db", "repeat_similarity"]},
).flatmap(
    lambda d: st.lists(_RULE, max_size=3).map(lambda rules: {**d, "rule": rules} if rules else d)
)  # fmt: skip


@PROPERTY
@given(doc=_RULES_DOC, garbage=st.one_of(st.none(), st.text(max_size=40)))
def test_qa_rules_toml_ruleset_or_config_error(
    doc: dict[str, Any], garbage: str | None, tally: list[int]
) -> None:
    tally.append(1)
    text = garbage if garbage is not None else _toml(doc)
    try:
        ruleset = parse_rules(text, "fuzz.toml")
    except ConfigError as exc:
        assert "fuzz.toml" in str(exc)
    else:
        assert isinstance(ruleset, RuleSet) and ruleset.rules


_POLICY_DOC = _doc(
    ["deadlines", "categories", "root_causes", "satisfaction_target", "follow_up"],
    {"deadlines": ["A", "B", "C"],
     "follow_up": ["contact_within_h", "survey_after_h", "window", "retries", "sms"]},
)  # fmt: skip


@PROPERTY
@given(doc=_POLICY_DOC, garbage=st.one_of(st.none(), st.binary(max_size=40)))
def test_case_policy_toml_policy_or_config_error(
    doc: dict[str, Any], garbage: bytes | None, tally: list[int], tmp_path: Path
) -> None:
    tally.append(1)
    path = tmp_path / "policy.toml"
    path.write_bytes(garbage if garbage is not None else _toml(doc).encode())
    try:
        policy = load_policy(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(policy, Policy)
        assert all(hours > 0 for clocks in policy.hours.values() for hours in clocks.values())


def test_toml_writer_is_read_back_by_tomllib() -> None:
    """The properties above are only as good as the TOML they write."""
    doc = {"a b": [1, 2.5, 'x"\\\n\U0001f600'], "t": {"k": True, "n": -(2**63)}, "f": math.inf}
    assert tomllib.loads(_toml(doc)) == doc


# -- settings ------------------------------------------------------------------------------

_SETTING_NAMES = sorted(Settings.model_fields)


@PROPERTY
@given(name=st.sampled_from(_SETTING_NAMES), value=st.text(max_size=30))
def test_settings_any_string_loads_or_one_line_naming_it(
    name: str, value: str, tally: list[int]
) -> None:
    tally.append(1)
    try:
        load_settings(**{name: value})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and name in message
    # A value that loads is a value of the right type (pydantic guarantees the rest).


def test_settings_errors_name_the_setting_and_its_variable(tmp_path: Path) -> None:
    cases = {
        "sla_cadence": ("mars", "known: au, cn"),
        "tsa_url": ("ftp://tsa.example", "scheme"),
        "sms_gateway_url": ("http://", "no host"),
        "celery_broker_url": ("redis://:notaport", "not a valid URL"),
        "case_policy_file": (str(tmp_path / "missing.toml"), "not an existing file"),
        "qa_rules_file": (str(tmp_path), "not an existing file"),
        "ami_recording_dir": (str(tmp_path / "nope"), "not an existing directory"),
        "data_dir": ("/proc/1/earwitness", "cannot be created"),
    }
    for name, (value, why) in cases.items():
        with pytest.raises(ConfigError) as err:
            load_settings(**{name: value})
        line = str(err.value)
        assert f"{name} (EARWITNESS_{name.upper()})" in line and why in line, line
        assert "\n" not in line


def test_pyannote_settings_live_in_the_settings_and_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earwitness.transcription.pyannote_backend import PyannoteDiarizer

    config = tmp_path / "earwitness.toml"
    config.write_text('pyannote_pipeline = "/models/pyannote"\npyannote_token = "hf_x"\n')
    monkeypatch.setenv("EARWITNESS_CONFIG", str(config))
    monkeypatch.delenv("EARWITNESS_PYANNOTE_PIPELINE", raising=False)
    loaded = load_settings()
    assert loaded.pyannote_pipeline == "/models/pyannote"
    diarizer = PyannoteDiarizer()
    assert (diarizer.pipeline, diarizer.token) == ("/models/pyannote", "hf_x")
    monkeypatch.setenv("EARWITNESS_PYANNOTE_PIPELINE", "/elsewhere")
    assert PyannoteDiarizer().pipeline == "/elsewhere"  # the environment beats the file


def test_settings_extras_checked_for_database_and_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without(*missing: str) -> Callable[..., Any]:
        return lambda name, *a: None if name in missing else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", without("psycopg"))
    with pytest.raises(ConfigError, match=r"earwitness\[postgres\]"):
        load_settings(database_url="postgresql+psycopg://127.0.0.1/test")
    monkeypatch.setattr(importlib.util, "find_spec", without("celery"))
    with pytest.raises(ConfigError, match=r"worker_mode: celery needs celery"):
        load_settings(worker_mode="celery")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert load_settings(worker_mode="celery").worker_mode == "celery"  # installed here
