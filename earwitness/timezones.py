"""Local time: one configured zone for days, weeks, periods and every time shown.

Call centres think in their own local days ("yesterday's calls", "the week of Monday
30 November"), while the database stores aware UTC instants. These pure helpers turn what a
user types (``2026-11-29``, ``today``, ``yesterday``, ``this-week``, ``last-week``, an ISO
time with or without an offset) into aware instants in the configured zone
(``EARWITNESS_TIMEZONE``), and bucket instants into local days and ISO weeks, so the SLA,
QA trend, weekly review, timeline and case numbers all agree on where a call at 07:06 in
Beijing belongs. No I/O here except reading the host's zone name once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

RELATIVE_WORDS = ("today", "yesterday", "this-week", "last-week")
EXAMPLES = "2026-11-29, today, yesterday, this-week, last-week or 2026-11-29T08:00+08:00"


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError naming it when the system does not know it."""
    try:
        if not name or name != name.strip():
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown IANA time zone {name!r} (use a name like Asia/Shanghai or UTC)"
        ) from None


def host_zone_name() -> str:
    """The host's zone as an IANA name; ``UTC`` when the host does not say."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception:  # tzlocal raises several kinds on odd hosts; UTC is the safe answer
        return "UTC"
    return name or "UTC"


def day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of ``day`` as an aware instant (DST-safe through zoneinfo)."""
    return datetime.combine(day, time(0), tzinfo=zone)


def local_day(at: datetime, zone: tzinfo) -> date:
    """The local calendar day ``at`` falls on."""
    return _aware(at).astimezone(zone).date()


def week_monday(at: datetime | date, zone: tzinfo) -> date:
    """The Monday that starts the local ISO week of ``at``."""
    day = local_day(at, zone) if isinstance(at, datetime) else at
    return day - timedelta(days=day.weekday())


def iso_week(at: datetime | date, zone: tzinfo) -> str:
    """``2026-W49``: the ISO week label of ``at`` in the zone."""
    day = local_day(at, zone) if isinstance(at, datetime) else at
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def show(at: datetime | None, zone: tzinfo) -> str | None:
    """``2026-11-30 07:06 +08:00``: a time for people, always naming its offset."""
    if at is None:
        return None
    local = _aware(at).astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:5]}"


def iso_local(at: datetime | None, zone: tzinfo) -> str | None:
    """ISO 8601 in the zone, with its offset (``2026-11-30T07:06:00+08:00``)."""
    return None if at is None else _aware(at).astimezone(zone).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Period:
    """A half-open span ``[start, end)`` of instants and the zone its days are counted in.

    Either end may be open (None). ``echo()`` is what every aggregate response returns, so a
    reader knows which local days a figure covers."""

    start: datetime | None
    end: datetime | None
    zone: ZoneInfo

    def echo(self) -> dict[str, Any]:
        return {
            "from": iso_local(self.start, self.zone),
            "to": iso_local(self.end, self.zone),
            "tz": self.zone.key,
        }

    def contains(self, at: datetime) -> bool:
        at = _aware(at)
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


def parse_bound(text: str, zone: tzinfo, *, end: bool, now: datetime) -> datetime:
    """One end of a period as an aware instant.

    A day (``2026-11-29``, ``today``, ``yesterday``) as ``from`` means its local midnight,
    as ``to`` the following midnight (so ``to=2026-11-29`` includes that whole day); weeks
    (``this-week``, ``last-week``) start on Monday. A time without offset is local to the
    zone; one with an offset or ``Z`` is taken as written. ValueError says what is accepted.
    """
    word = text.strip().lower()
    today = local_day(now, zone)
    span: tuple[date, date] | None = None
    if word == "today":
        span = (today, today + timedelta(days=1))
    elif word == "yesterday":
        span = (today - timedelta(days=1), today)
    elif word in ("this-week", "last-week"):
        monday = week_monday(today, zone) - timedelta(days=7 if word == "last-week" else 0)
        span = (monday, monday + timedelta(days=7))
    elif len(word) == 10:
        try:
            day = date.fromisoformat(word)
        except ValueError:
            raise ValueError(f"{text!r} is not a date or time (use {EXAMPLES})") from None
        span = (day, day + timedelta(days=1))
    if span is not None:
        return day_start(span[1] if end else span[0], zone)
    try:
        at = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time (use {EXAMPLES})") from None
    return at.replace(tzinfo=zone) if at.tzinfo is None else at


def parse_period(start: str | None, end: str | None, zone: ZoneInfo, *, now: datetime) -> Period:
    """``from``/``to`` as typed by a user → a Period; ValueError when ``to`` precedes ``from``.

    A single relative word given only as ``from`` (``from=yesterday``) keeps its own end,
    so "yesterday" means that day, not "since yesterday"."""
    lo = parse_bound(start, zone, end=False, now=now) if start else None
    hi = parse_bound(end, zone, end=True, now=now) if end else None
    if start and not end and start.strip().lower() in ("yesterday", "last-week"):
        hi = parse_bound(start, zone, end=True, now=now)
    if lo is not None and hi is not None and hi < lo:
        raise ValueError(f"'to' ({end}) is before 'from' ({start})")
    return Period(lo, hi, zone)


def last_days(days: int, zone: ZoneInfo, *, now: datetime) -> Period:
    """The last ``days`` local days including today (``days=1`` is today so far)."""
    if days < 1:
        raise ValueError(f"days must be 1 or more, got {days}")
    today = local_day(now, zone)
    return Period(day_start(today - timedelta(days=days - 1), zone), None, zone)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive UTC; everything we store is UTC
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
