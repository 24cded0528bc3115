"""AMI wire parsing against real captured streams and the ways real streams go wrong.

The captures in tests/data/ami/*.raw are the bytes a real Asterisk 22 sent (tests/pbx); the
parser must give the same messages however TCP happened to cut them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from earwitness.telephony.ami import (
    AmiMessage,
    AmiParser,
    AmiProtocolError,
    encode_action,
    event_time,
)

CAPTURES = sorted((Path(__file__).parent / "data" / "ami").glob("*.raw"))

# Shape of a real Asterisk 22 exchange (banner, login, an event with a UTF-8 caller name).
SAMPLE = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: ew-1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nTimestamp: 1764127000.123456\r\n"
    b"Uptime: 3\r\nLastReload: 3\r\nStatus: Fully Booted\r\n\r\n"
    b"Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1764127001.000001\r\n"
    b"Channel: Local/s@customer-00000000;1\r\nChannelState: 0\r\nChannelStateDesc: Down\r\n"
    b"CallerIDNum: 13800138000\r\nCallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\r\n"
    b"Uniqueid: 1764127001.0\r\nLinkedid: 1764127001.0\r\n\r\n"
)


def streams() -> list[bytes]:
    return [SAMPLE] + [path.read_bytes() for path in CAPTURES]


def signature(
    messages: list[AmiMessage],
) -> list[tuple[str, str, list[tuple[str, str]], tuple[str, ...]]]:
    return [(m.kind, m.name, m.headers, m.body) for m in messages]


def parse_whole(data: bytes) -> list[AmiMessage]:
    return AmiParser().feed(data, received_at=1.0)


def parse_chunks(data: bytes, cuts: list[int]) -> tuple[list[AmiMessage], AmiParser]:
    parser = AmiParser()
    out: list[AmiMessage] = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += parser.feed(data[start:cut], received_at=1.0)
        start = cut
    return out, parser


def test_real_captures_are_present() -> None:
    """The capture files are the ground truth for the tests below; their absence is a failure."""
    assert CAPTURES, "tests/data/ami/*.raw missing (tests/pbx capture script)"


@pytest.mark.parametrize("data", streams(), ids=["sample"] + [p.name for p in CAPTURES])
def test_whole_stream_parses_cleanly(data: bytes) -> None:
    parser = AmiParser()
    messages = parser.feed(data, received_at=1.0)
    assert messages, "no messages"
    assert all(m.kind in ("event", "response", "banner") for m in messages)
    assert parser.stats.oversized_frames == 0
    assert parser.stats.skipped_frames == 0
    assert parser.stats.bytes == len(data)
    assert not parser._buf.strip(), "trailing bytes left over"
    if data.startswith(b"Asterisk Call Manager/"):
        assert messages[0].kind == "banner" and messages[0].name.count(".") == 2


@pytest.mark.parametrize("data", streams(), ids=["sample"] + [p.name for p in CAPTURES])
def test_byte_by_byte_equals_whole(data: bytes) -> None:
    """Every byte offset becomes a feed boundary: all split points at once."""
    expected = signature(parse_whole(data))
    got, parser = parse_chunks(data, list(range(1, len(data))))
    assert signature(got) == expected
    assert len(parser._buf) < 4096  # nothing piles up


@pytest.mark.parametrize("data", streams(), ids=["sample"] + [p.name for p in CAPTURES])
def test_every_single_split_point_of_the_stream_head(data: bytes) -> None:
    """Two feeds, cut at each offset of the first 3 KiB (banner, login, first events)."""
    head = data[: data.find(b"\r\n\r\n", 3072) + 4] if len(data) > 3072 else data
    expected = signature(parse_whole(head))
    for cut in range(len(head) + 1):
        got, _ = parse_chunks(head, [cut])
        assert signature(got) == expected, f"split at {cut}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_chunking_of_captures(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(streams()))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=200))
    got, _ = parse_chunks(stream, cuts)
    assert signature(got) == signature(parse_whole(stream))


@pytest.mark.parametrize("data", streams(), ids=["sample"] + [p.name for p in CAPTURES])
def test_bare_newlines_give_the_same_headers(data: bytes) -> None:
    crlf = parse_whole(data)
    lf = parse_whole(data.replace(b"\r\n", b"\n"))
    assert [(m.kind, m.name, m.headers) for m in lf] == [(m.kind, m.name, m.headers) for m in crlf]


def test_burst_of_many_frames_in_one_feed() -> None:
    frame = b"Event: VarSet\r\nChannel: Local/x\r\nVariable: A\r\nValue: 1\r\n\r\n"
    messages = AmiParser().feed(frame * 5000)
    assert len(messages) == 5000 and messages[-1]["value"] == "1"


def test_non_utf8_bytes_are_replaced_not_raised() -> None:
    gbk_name = "张三".encode("gbk")
    parser = AmiParser()
    (message,) = parser.feed(b"Event: Newchannel\r\nCallerIDName: " + gbk_name + b"\r\n\r\n")
    assert message.name == "Newchannel"
    assert "\ufffd" in (message.get("CallerIDName") or "")
    assert parser.stats.decode_errors == 1


def test_utf8_caller_name_survives() -> None:
    messages = parse_whole(SAMPLE)
    assert messages[-1].get("calleridname") == "张三"


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=2000), cut=st.integers(0, 2000))
def test_garbage_never_raises_and_parsing_recovers(garbage: bytes, cut: int) -> None:
    parser = AmiParser()
    stream = garbage + b"\r\n\r\nEvent: Hangup\r\nUniqueid: 1.2\r\n\r\n"
    cut = min(cut, len(stream))
    messages = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
    assert messages and messages[-1].name == "Hangup" and messages[-1]["Uniqueid"] == "1.2"


def test_lines_without_colon_are_skipped_and_counted() -> None:
    parser = AmiParser()
    (message,) = parser.feed(b"Event: Foo\r\nthis line is junk\r\nKey: v\r\n\r\n")
    assert message.headers == [("Event", "Foo"), ("Key", "v")]
    assert parser.stats.skipped_lines == 1


def test_frame_without_event_or_response_is_skipped() -> None:
    parser = AmiParser()
    assert parser.feed(b"Foo: bar\r\n\r\nEvent: Ok\r\n\r\n")[0].name == "Ok"
    assert parser.stats.skipped_frames == 1


def test_unknown_event_is_kept() -> None:
    (message,) = AmiParser().feed(b"Event: SomethingFromAsterisk99\r\nX: 1\r\n\r\n")
    assert message.kind == "event" and message.name == "SomethingFromAsterisk99"


def test_huge_frame_is_capped_in_memory_and_discarded() -> None:
    parser = AmiParser(max_frame=64 * 1024)
    chunk = b"ChanVariable: X=" + b"y" * 1000 + b"\r\n"
    assert parser.feed(b"Event: Huge\r\n") == []
    for _ in range(300):  # ~300 KiB without a blank line
        assert parser.feed(chunk) == []
        assert len(parser._buf) <= 64 * 1024 + len(chunk)
    messages = parser.feed(b"\r\nEvent: After\r\nA: 1\r\n\r\n")
    assert [m.name for m in messages] == ["After"]
    assert parser.stats.oversized_frames == 1


def test_huge_frame_arriving_in_one_feed_is_discarded() -> None:
    parser = AmiParser(max_frame=1 << 20)
    big = b"Event: Huge\r\nX: " + b"z" * (2 << 20) + b"\r\n\r\n"
    messages = parser.feed(big + b"Event: After\r\n\r\n")
    assert [m.name for m in messages] == ["After"]
    assert parser.stats.oversized_frames == 1


def test_banner_split_across_feeds() -> None:
    parser = AmiParser()
    assert parser.feed(b"Asterisk Call") == []
    assert parser.feed(b" Manager/11.0") == []
    (banner, response) = parser.feed(b".0\r\nResponse: Success\r\nActionID: 1\r\n\r\n")
    assert (banner.kind, banner.name) == ("banner", "11.0.0")
    assert response.action_id == "1"


def test_stream_without_banner_starts_with_frames() -> None:
    (message,) = AmiParser().feed(b"Event: Foo\r\n\r\n")
    assert message.name == "Foo"


def test_legacy_follows_command_output_with_blank_lines() -> None:
    stream = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: ew-7\r\n"
        b"Channel              Location\nLocal/x  s@customer:1\n\nFoo: looks like a header\n"
        b"--END COMMAND--\r\n\r\nEvent: Next\r\n\r\n"
    )
    for cut in range(len(stream) + 1):
        got, _ = parse_chunks(stream, [cut])
        follows, following = got
        assert follows.kind == "response" and follows.name == "Follows"
        assert follows.action_id == "ew-7"
        assert follows.output == [
            "Channel              Location",
            "Local/x  s@customer:1",
            "",
            "Foo: looks like a header",
        ]
        assert following.name == "Next"


def test_modern_command_output_headers() -> None:
    (message,) = AmiParser().feed(
        b"Response: Success\r\nActionID: 3\r\nMessage: Command output follows\r\n"
        b"Output: Name/username             Host\r\nOutput: 0 sip peers\r\n\r\n"
    )
    assert message.output == ["Name/username             Host", "0 sip peers"]


def test_case_insensitive_and_repeated_headers() -> None:
    (message,) = AmiParser().feed(
        b"Event: Hangup\r\nActionId: a1\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n"
    )
    assert message.action_id == "a1" and "chanvariable" in message
    assert message["CHANVARIABLE"] == "A=1"
    assert message.get_all("chanvariable") == ["A=1", "B=2"]
    with pytest.raises(KeyError):
        message["missing"]


def test_event_time_prefers_plausible_timestamp() -> None:
    message = AmiParser().feed(b"Event: X\r\nTimestamp: 1764127001.250000\r\n\r\n", 1764127002.0)[0]
    when, source = event_time(message)
    assert source == "event"
    assert when == datetime.fromtimestamp(1764127001.25, UTC)


@pytest.mark.parametrize("stamp", [None, "garbage", "0", "nan", "1.0", "1864127001.0"])
def test_event_time_falls_back_to_receipt(stamp: str | None) -> None:
    line = b"" if stamp is None else b"Timestamp: " + stamp.encode() + b"\r\n"
    message = AmiParser().feed(b"Event: X\r\n" + line + b"\r\n", 1764127002.0)[0]
    when, source = event_time(message)
    assert source == "receipt"
    assert when == datetime.fromtimestamp(1764127002.0, UTC)
    when2, _ = event_time(message, datetime.fromtimestamp(1764127003.0, UTC))
    assert when2.timestamp() == 1764127003.0


def test_encode_action() -> None:
    wire = encode_action(
        "Originate", "ew-9", Channel="Local/s@customer", Variable=["A=1", "B=2"], Timeout=None
    )
    assert wire == (
        b"Action: Originate\r\nActionID: ew-9\r\nChannel: Local/s@customer\r\n"
        b"Variable: A=1\r\nVariable: B=2\r\n\r\n"
    )
    (parsed,) = AmiParser().feed(b"Response: Success\r\n" + wire[wire.index(b"ActionID") :])
    assert parsed.action_id == "ew-9"


@pytest.mark.parametrize("bad", ["x\r\nAction: Hangup", "x\nAction: Hangup", "\r"])
def test_encode_action_refuses_header_injection(bad: str) -> None:
    with pytest.raises(AmiProtocolError):
        encode_action("Originate", "ew-1", CallerID=bad)
