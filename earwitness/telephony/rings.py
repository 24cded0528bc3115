"""Ring maths: turn a wait in seconds into the number of rings the caller heard.

"Answer within 3 rings" is how complaint hotlines state their SLA, but a ring is not a
fixed length: it is one period of the ringback cadence the caller hears, which depends on
the country. The presets below are Asterisk's own (``configs/samples/indications.conf.sample``,
``ringcadence`` for each country, checked against the same file's ``ring =`` tone, which
has the same on/off durations for every preset here). A double ring (uk, au, in: 0.4 s on,
0.2 s off, 0.4 s on, 2 s off) counts as ONE ring: it is one period of the pattern.

Counting rule (the only one in the project; see ``ring_count``): the first ring starts at
the moment the call starts ringing for the caller (t = 0), ring k starts at (k - 1) x period,
and a ring counts if it started strictly before the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from earwitness.telephony.records import MAX_WAIT_S

_US_PER_S = 1_000_000


@dataclass(frozen=True)
class Cadence:
    """A ringback cadence: alternating on/off durations in milliseconds, repeated."""

    name: str
    pattern_ms: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("cadence needs a name")
        if not self.pattern_ms or len(self.pattern_ms) % 2:
            raise ValueError(f"cadence {self.name!r}: need on/off pairs, got {self.pattern_ms!r}")
        for ms in self.pattern_ms:
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise ValueError(f"cadence {self.name!r}: durations must be ints >= 0 ms")
        if self.period_ms <= 0 or self.period_ms > 60_000:
            raise ValueError(f"cadence {self.name!r}: period must be in (0, 60] s")

    @property
    def period_ms(self) -> int:
        return sum(self.pattern_ms)

    @property
    def period_s(self) -> float:
        """Length of one ring (one full on/off pattern) in seconds."""
        return self.period_ms / 1000

    @classmethod
    def custom(cls, on_off_ms: Sequence[int], name: str = "custom") -> Cadence:
        """A site-specific cadence, e.g. from a PBX's ``ringcadence = 1000,4000`` line."""
        return cls(name=name, pattern_ms=tuple(on_off_ms))

    @classmethod
    def for_country(cls, country: str) -> Cadence:
        """The Asterisk preset for a two-letter indications.conf zone (``cn``, ``us``...)."""
        try:
            return CADENCES[country.lower()]
        except KeyError:
            known = ", ".join(sorted(CADENCES))
            raise ValueError(f"no ring cadence for {country!r}; known: {known}") from None


# Values from Asterisk configs/samples/indications.conf.sample (ringcadence = ...),
# which cites ITU-T "Various tones used in national networks" (tones-0203) for most zones.
CADENCES: dict[str, Cadence] = {
    c.name: c
    for c in (
        Cadence("cn", (1000, 4000)),  # China: 450 Hz 1 s on / 4 s off -> 5 s
        Cadence("us", (2000, 4000)),  # United States / North America -> 6 s
        Cadence("uk", (400, 200, 400, 2000)),  # United Kingdom (BT SIN350) double ring -> 3 s
        Cadence("de", (1000, 4000)),  # Germany -> 5 s
        Cadence("fr", (1500, 3500)),  # France -> 5 s
        Cadence("jp", (1000, 2000)),  # Japan -> 3 s
        Cadence("in", (400, 200, 400, 2000)),  # India double ring -> 3 s
        Cadence("au", (400, 200, 400, 2000)),  # Australia double ring -> 3 s
        Cadence("nz", (400, 200, 400, 2000)),  # New Zealand double ring -> 3 s
        Cadence("it", (1000, 4000)),  # Italy -> 5 s
        Cadence("es", (1500, 3000)),  # Spain -> 4.5 s
        Cadence("ru", (1000, 4000)),  # Russian Federation -> 5 s
    )
}

CN = CADENCES["cn"]


def _check_wait(wait_s: float) -> float:
    if isinstance(wait_s, bool) or not isinstance(wait_s, int | float):
        raise ValueError(f"wait must be a number of seconds, got {wait_s!r}")
    if math.isnan(wait_s) or wait_s < 0 or wait_s > MAX_WAIT_S:
        raise ValueError(f"wait must be within [0, {MAX_WAIT_S:.0f}] s, got {wait_s!r}")
    return float(wait_s)


def ring_count(wait_s: float, cadence: Cadence = CN) -> int:
    """Number of rings that started strictly before the answer (or hang-up).

    Rings start at 0, P, 2P, ... (P = ``cadence.period_s``), so the count is ceil(wait / P):
    a call answered at t = 0 heard no ring (0); any wait in (0, P] is 1 ring; a wait of
    exactly P is still 1 ring because ring 2 starts at P, which is not before the answer;
    P + 0.01 s is 2 rings. With China's 5 s cadence, 3 rings means answered within 15 s.

    The wait is rounded to whole microseconds first (datetimes carry no more), so float
    noise such as 15.000000000000002 from subtracting timestamps cannot add a ring.
    """
    wait_us = round(_check_wait(wait_s) * _US_PER_S)
    period_us = cadence.period_ms * 1000
    return -(-wait_us // period_us)


@dataclass(frozen=True)
class SlaTarget:
    """An answer-time target in rings, seconds or both (then both must hold).

    The cadence is kept even for a seconds-only target, because rings are still reported
    (histograms, short abandons) and a result must say which cadence produced them.
    """

    rings: int | None = 3
    seconds: float | None = None
    cadence: Cadence = CN

    def __post_init__(self) -> None:
        if self.rings is None and self.seconds is None:
            raise ValueError("SLA target needs rings, seconds or both")
        if self.rings is not None and (
            isinstance(self.rings, bool) or not isinstance(self.rings, int) or self.rings < 1
        ):
            raise ValueError(f"target rings must be an int >= 1, got {self.rings!r}")
        if self.seconds is not None:
            _check_wait(self.seconds)

    @property
    def max_wait_s(self) -> float:
        """Longest wait that still meets the target (the ring limit is N x period)."""
        limits: list[float] = []
        if self.rings is not None:
            limits.append(self.rings * self.cadence.period_ms / 1000)
        if self.seconds is not None:
            limits.append(float(self.seconds))
        return min(limits)

    def met(self, wait_s: float) -> bool:
        """True if a call answered after ``wait_s`` seconds is within target."""
        wait = _check_wait(wait_s)
        if self.rings is not None and ring_count(wait, self.cadence) > self.rings:
            return False
        # Compare in whole microseconds like ring_count, so met(w) == (w <= max_wait_s)
        # holds at the microsecond resolution the records carry.
        return not (
            self.seconds is not None and round(wait * _US_PER_S) > round(self.seconds * _US_PER_S)
        )

    def describe(self) -> str:
        """``3 rings at the cn cadence (1 s on, 4 s off)``: rings, never read as seconds."""
        parts = []
        if self.rings is not None:
            pattern = ", ".join(
                f"{ms / 1000:g} s {'on' if i % 2 == 0 else 'off'}"
                for i, ms in enumerate(self.cadence.pattern_ms)
            )
            parts.append(f"{self.rings} rings at the {self.cadence.name} cadence ({pattern})")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        return " and ".join(parts)
