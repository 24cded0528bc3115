"""Shared request parameter types: bounded integers and periods in the configured zone.

``DbInt`` is the one integer type of every path id and integer query parameter. Ids and
counts live in INTEGER columns, 32-bit on PostgreSQL, so ``/api/calls/9223372036854775808``
(or 2^31) must be a 422 that names the parameter, not an overflow deep in SQLite or
PostgreSQL (a 500). Routes annotate ``call_id: DbInt`` or ``Annotated[DbInt, Query(ge=0)]``;
FastAPI keeps both bounds.

:func:`period` turns ``from``/``to`` as users type them (``2026-11-29``, ``today``,
``this-week``, ISO with or without offset) into a :class:`~earwitness.timezones.Period` in
``tz`` or the configured ``EARWITNESS_TIMEZONE``, so every aggregate can echo what it covered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import annotated_types

from earwitness.errors import BadInput
from earwitness.runtime import Runtime
from earwitness.timezones import Period, parse_period, zone_named

DB_INT_MAX = 2**31 - 1  # PostgreSQL INTEGER (SQLite's is wider; the smaller one decides)
DbInt = Annotated[int, annotated_types.Interval(ge=-(2**31), le=DB_INT_MAX)]


def zone_for(runtime: Runtime, tz: str | None) -> str:
    """``tz`` if given, else the configured zone (``EARWITNESS_TIMEZONE``)."""
    return tz or runtime.settings.timezone


def period(
    runtime: Runtime,
    start: str | None,
    end: str | None,
    tz: str | None = None,
    now: datetime | None = None,
) -> Period:
    """The period a request asks for; 422 with one line naming what is wrong."""
    try:
        zone = zone_named(zone_for(runtime, tz))
        return parse_period(start, end, zone, now=now or datetime.now(UTC))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
