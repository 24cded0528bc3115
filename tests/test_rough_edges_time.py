"""Issue 18, time: one configured zone (EARWITNESS_TIMEZONE) for every day, week and number.

The central test files a call at 07:06 on Monday 30 November in Beijing (23:06 UTC on
Sunday) and follows it through the SLA, the QA trend, the weekly review, the case number
and the case timeline: each must put it on Monday 30 November, ISO week 49 — and, to show
the zone is what decides, on Sunday 29 November / week 48 when asked in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from earwitness.cases import lifecycle as lc
from earwitness.cases.policy import Policy
from earwitness.config import load_settings
from earwitness.errors import ConfigError
from earwitness.models import Recording, case_calls
from earwitness.qa.store import audit_recording
from earwitness.runtime import Runtime
from earwitness.timezones import (
    iso_week,
    last_days,
    local_day,
    parse_bound,
    parse_period,
    show,
    week_monday,
    zone_named,
)
from tests.accounts_helpers import api_client
from tests.qa_calls import EN_MODEL
from tests.test_cli_errors import run_cli
from tests.test_qa_store import add_call

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALL_AT = datetime(2026, 11, 30, 7, 6, tzinfo=SHANGHAI)  # Monday in Beijing
NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)  # Wednesday of the same week


# --- the setting ------------------------------------------------------------------------


def test_timezone_setting_defaults_to_the_host_zone_and_is_validated(tmp_path: Path) -> None:
    default = load_settings(data_dir=tmp_path).timezone
    zone_named(default)  # whatever the host says is a real IANA zone
    assert load_settings(data_dir=tmp_path, timezone="Asia/Shanghai").timezone == "Asia/Shanghai"
    with pytest.raises(ConfigError) as bad:
        load_settings(data_dir=tmp_path, timezone="Mars/Olympus")
    assert "timezone" in bad.value.detail and "Mars/Olympus" in bad.value.detail


def test_bad_timezone_setting_is_one_cli_line_naming_it(tmp_path: Path) -> None:
    res = run_cli(["sla"], {"EARWITNESS_TIMEZONE": "Beijing"}, tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "timezone" in lines[0] and "Beijing" in lines[0], res.stderr


# --- the pure helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-11-30", False, datetime(2026, 11, 30, tzinfo=SHANGHAI)),
        ("2026-11-30", True, datetime(2026, 12, 1, tzinfo=SHANGHAI)),  # a day includes itself
        ("today", False, datetime(2026, 12, 2, tzinfo=SHANGHAI)),
        ("today", True, datetime(2026, 12, 3, tzinfo=SHANGHAI)),
        ("yesterday", False, datetime(2026, 12, 1, tzinfo=SHANGHAI)),
        ("this-week", False, datetime(2026, 11, 30, tzinfo=SHANGHAI)),  # Monday
        ("this-week", True, datetime(2026, 12, 7, tzinfo=SHANGHAI)),
        ("last-week", False, datetime(2026, 11, 23, tzinfo=SHANGHAI)),
        ("2026-11-30T07:06", False, CALL_AT),  # no offset: local to the zone
        ("2026-11-29T23:06:00Z", False, CALL_AT),  # an offset wins
        ("2026-11-30T07:06:00+08:00", True, CALL_AT),
    ],
)
def test_parse_bound_reads_days_words_and_times_in_the_zone(
    text: str, end: bool, expected: datetime
) -> None:
    assert parse_bound(text, SHANGHAI, end=end, now=NOW) == expected


def test_parse_period_rejects_nonsense_and_reversed_periods() -> None:
    with pytest.raises(ValueError, match="not a date or time"):
        parse_period("last tuesday", None, SHANGHAI, now=NOW)
    with pytest.raises(ValueError, match="before"):
        parse_period("2026-11-30", "2026-11-01", SHANGHAI, now=NOW)
    yesterday = parse_period("yesterday", None, SHANGHAI, now=NOW)  # that day, not "since"
    assert (yesterday.start, yesterday.end) == (
        datetime(2026, 12, 1, tzinfo=SHANGHAI),
        datetime(2026, 12, 2, tzinfo=SHANGHAI),
    )
    echo = yesterday.echo()
    assert echo == {
        "from": "2026-12-01T00:00:00+08:00",
        "to": "2026-12-02T00:00:00+08:00",
        "tz": "Asia/Shanghai",
    }


def test_local_day_and_iso_week_bucketing() -> None:
    utc_instant = CALL_AT.astimezone(UTC)
    assert utc_instant.date() == date(2026, 11, 29)  # the UTC day is Sunday...
    assert local_day(utc_instant, SHANGHAI) == date(2026, 11, 30)  # ...Beijing's is Monday
    assert week_monday(utc_instant, SHANGHAI) == date(2026, 11, 30)
    assert iso_week(utc_instant, SHANGHAI) == "2026-W49"
    assert iso_week(utc_instant, ZoneInfo("UTC")) == "2026-W48"
    assert show(utc_instant, SHANGHAI) == "2026-11-30 07:06 +08:00"
    assert last_days(7, SHANGHAI, now=NOW).start == datetime(2026, 11, 26, tzinfo=SHANGHAI)
    with pytest.raises(ValueError):
        last_days(0, SHANGHAI, now=NOW)


# --- the call at 07:06 in Beijing through every report ---------------------------------


@pytest.fixture
def beijing(tmp_path: Path) -> Iterator[tuple[Runtime, int, int]]:
    """A runtime in Asia/Shanghai with one audited call at 07:06 Monday and its case."""
    settings = load_settings(
        data_dir=tmp_path / "data", timezone="Asia/Shanghai", demo="never", job_poll_s=0.05
    )
    runtime = Runtime.open(settings)
    try:
        recording_id = add_call(runtime, "Lucy", CALL_AT.astimezone(UTC), EN_MODEL, "en")
        with runtime.db.session() as session:
            audit_recording(session, recording_id)
            case = lc.create_case(
                session,
                Policy(),
                actor="li",
                owner="Lucy",
                complainant_phone="13800138000",
                summary="truck late",
                opened_at=CALL_AT.astimezone(UTC),
                zone=SHANGHAI,
            )
            recording = session.get(Recording, recording_id)
            assert recording is not None and recording.call_id is not None
            call_id = recording.call_id
            session.execute(insert(case_calls).values(case_id=case.id, call_id=call_id))
            case_id = case.id
        yield runtime, recording_id, case_id
    finally:
        runtime.close()


def test_call_at_0706_beijing_lands_on_monday_in_every_report(
    beijing: tuple[Runtime, int, int],
) -> None:
    runtime, _, case_id = beijing
    with api_client(runtime, "admin") as api:
        # SLA by day: default zone is the configured one, the period is echoed with it
        sla = api.get("/api/sla", params={"group_by": "day", "from": "2026-11-30"}).json()
        assert [(g["key"], g["offered"]) for g in sla["groups"]] == [("2026-11-30", 1)]
        assert sla["tz"] == "Asia/Shanghai"
        assert sla["period"]["from"] == "2026-11-30T00:00:00+08:00"
        in_utc = api.get("/api/sla", params={"group_by": "day", "tz": "UTC"}).json()
        assert [g["key"] for g in in_utc["groups"]] == ["2026-11-29"]
        hourly = api.get("/api/sla", params={"group_by": "hour"}).json()
        assert [g["key"] for g in hourly["groups"]] == ["2026-11-30T07:00+08:00"]
        # the Monday date alone selects it (date-only filters on /api/calls too)
        calls = api.get("/api/calls", params={"from": "2026-11-30", "to": "2026-11-30"}).json()
        assert calls["total"] == 1
        sunday = api.get("/api/calls", params={"from": "2026-11-29", "to": "2026-11-29"}).json()
        assert sunday["total"] == 0

        # QA trend: Monday, with from/to as plain dates
        qa = api.get("/api/qa/agents", params={"from": "2026-11-30", "to": "2026-11-30"}).json()
        assert [t["day"] for t in qa["agents"][0]["trend"]] == ["2026-11-30"]
        assert qa["period"] == {
            "from": "2026-11-30T00:00:00+08:00",
            "to": "2026-12-01T00:00:00+08:00",
            "tz": "Asia/Shanghai",
        }

        # weekly review: the week of Monday 30 November (ISO week 49) holds the case
        review = api.get("/api/review/weekly", params={"week": "2026-12-02"}).json()
        assert (review["week"], review["iso_week"], review["cases_opened"]) == (
            "2026-11-30",
            "2026-W49",
            1,
        )
        assert review["tz"] == "Asia/Shanghai" and review["from"].endswith("+08:00")
        previous = api.get("/api/review/weekly", params={"week": "2026-11-23"}).json()
        assert previous["cases_opened"] == 0
        assert review["counts"]["agent"] == {"Lucy": 1}

        # case number and timeline: Monday, on the Beijing clock
        case = api.get(f"/api/cases/{case_id}").json()
        assert case["number"].startswith("EW-20261130-")
        timeline = api.get(f"/api/cases/{case_id}/timeline").json()
        call_event = next(e for e in timeline["events"] if e["type"] == "call")
        assert call_event["at"] == "2026-11-30T07:06:00+08:00"
        assert call_event["day"] == "2026-11-30" and timeline["tz"] == "Asia/Shanghai"


def test_weekly_review_in_utc_puts_the_same_call_in_week_48(tmp_path: Path) -> None:
    """The control: the same instant under EARWITNESS_TIMEZONE=UTC is Sunday, week 48."""
    settings = load_settings(data_dir=tmp_path / "d", timezone="UTC", demo="never")
    runtime = Runtime.open(settings)
    try:
        with runtime.db.session() as session:
            case = lc.create_case(
                session,
                Policy(),
                actor="li",
                summary="x",
                opened_at=CALL_AT.astimezone(UTC),
                zone=zone_named("UTC"),
            )
            assert case.number.startswith("EW-20261129-")
        with api_client(runtime, "admin") as api:
            review = api.get("/api/review/weekly", params={"week": "2026-11-29"}).json()
            assert (review["week"], review["iso_week"], review["cases_opened"]) == (
                "2026-11-23",
                "2026-W48",
                1,
            )
    finally:
        runtime.close()


def test_date_filters_and_words_accepted_everywhere(beijing: tuple[Runtime, int, int]) -> None:
    runtime, _, _ = beijing
    with api_client(runtime, "admin") as api:
        for path in ("/api/calls", "/api/sla", "/api/qa/agents"):
            for value in ("2026-11-30", "today", "yesterday", "this-week", "last-week"):
                res = api.get(path, params={"from": value})
                assert res.status_code == 200, (path, value, res.text)
            bad = api.get(path, params={"from": "the day before"})
            assert bad.status_code == 422 and "not a date or time" in bad.json()["detail"]
        week = api.get("/api/sla", params={"from": "this-week", "group_by": "total"}).json()
        monday = week_monday(datetime.now(UTC), SHANGHAI)
        assert week["period"]["from"] == f"{monday.isoformat()}T00:00:00+08:00"
        assert api.get("/api/sla", params={"tz": "Mars/Olympus"}).status_code == 422
        one_day_later = (CALL_AT + timedelta(days=1)).date().isoformat()
        none = api.get("/api/sla", params={"from": one_day_later, "group_by": "total"}).json()
        assert none["groups"][0]["offered"] == 0
