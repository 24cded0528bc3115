"""Ring counting: presets match Asterisk, boundaries follow "started strictly before answer"."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from earwitness.telephony.rings import CADENCES, CN, Cadence, SlaTarget, ring_count

# Expected values typed from Asterisk configs/samples/indications.conf.sample (ringcadence).
ASTERISK_RINGCADENCE = {
    "cn": (1000, 4000),
    "us": (2000, 4000),
    "uk": (400, 200, 400, 2000),
    "de": (1000, 4000),
    "fr": (1500, 3500),
    "jp": (1000, 2000),
    "in": (400, 200, 400, 2000),
    "au": (400, 200, 400, 2000),
}


@pytest.mark.parametrize(("country", "pattern"), sorted(ASTERISK_RINGCADENCE.items()))
def test_presets_match_asterisk_indications(country: str, pattern: tuple[int, ...]) -> None:
    cadence = Cadence.for_country(country.upper())
    assert cadence.pattern_ms == pattern
    assert cadence.period_s == sum(pattern) / 1000


def test_periods_of_the_design_examples() -> None:
    # DESIGN.md: China 1 s on / 4 s off = 5 s, US 2 s / 4 s = 6 s, UK double ring 3 s.
    assert CADENCES["cn"].period_s == 5.0
    assert CADENCES["us"].period_s == 6.0
    assert CADENCES["uk"].period_s == 3.0


def test_unknown_country_is_an_error() -> None:
    with pytest.raises(ValueError, match="known"):
        Cadence.for_country("xx")


@pytest.mark.parametrize(
    ("wait_s", "rings"),
    [
        (0.0, 0),  # answered before any ring tone: no ring
        (0.000001, 1),  # ring 1 starts at t=0, before the answer
        (0.5, 1),
        (5.0, 1),  # ring 2 starts at 5.0, not strictly before the answer
        (5.01, 2),
        (10.0, 2),
        (10.000001, 3),
        (15.0, 3),  # the seeds' "3 rings" = 15 s with the Chinese cadence
        (15.000001, 4),
        (15.000000000000002, 3),  # float noise from subtracting timestamps adds no ring
    ],
)
def test_ring_count_boundaries_cn(wait_s: float, rings: int) -> None:
    assert ring_count(wait_s, CN) == rings


def test_ring_count_double_ring_counts_once() -> None:
    uk = Cadence.for_country("uk")
    assert ring_count(2.9, uk) == 1  # both bursts of the double ring are one ring
    assert ring_count(3.0, uk) == 1
    assert ring_count(3.1, uk) == 2
    assert ring_count(9.0, uk) == 3


def test_ring_count_us() -> None:
    us = Cadence.for_country("us")
    assert [ring_count(w, us) for w in (6.0, 6.5, 12.0, 18.0, 18.5)] == [1, 2, 2, 3, 4]


@pytest.mark.parametrize("bad", [-0.001, -5, math.nan, math.inf, -math.inf, 1e12, 86_400.5])
def test_ring_count_rejects_impossible_waits(bad: float) -> None:
    with pytest.raises(ValueError):
        ring_count(bad, CN)


@pytest.mark.parametrize("bad", ["5", None, True])
def test_ring_count_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        ring_count(bad, CN)  # type: ignore[arg-type]


def test_custom_cadence() -> None:
    taiwan_ringback = Cadence.custom([1000, 2000], name="tw")
    assert taiwan_ringback.period_s == 3.0
    assert taiwan_ringback.name == "tw"
    assert ring_count(7.0, taiwan_ringback) == 3


@pytest.mark.parametrize(
    "pattern",
    [[], [1000], [1000, 4000, 500], [1000, -1], [0, 0], [1000.5, 4000], [61_000, 1000]],
)
def test_custom_cadence_rejects_bad_patterns(pattern: list[int]) -> None:
    with pytest.raises(ValueError):
        Cadence.custom(pattern)


def test_default_target_is_three_chinese_rings() -> None:
    target = SlaTarget()
    assert (target.rings, target.seconds, target.cadence) == (3, None, CN)
    assert target.max_wait_s == 15.0
    assert target.met(0.0)
    assert target.met(15.0)
    assert not target.met(15.01)


def test_target_in_seconds_only() -> None:
    target = SlaTarget(rings=None, seconds=20)
    assert target.max_wait_s == 20.0
    assert target.met(20.0)
    assert not target.met(20.5)


def test_target_in_rings_and_seconds_needs_both() -> None:
    # 3 US rings = 18 s, but the 12 s limit is stricter.
    target = SlaTarget(rings=3, seconds=12, cadence=Cadence.for_country("us"))
    assert target.max_wait_s == 12.0
    assert target.met(12.0)
    assert not target.met(13.0)
    described = target.describe()
    assert "3 rings at the us cadence (2 s on, 4 s off)" in described and "12 s" in described


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rings": None, "seconds": None},
        {"rings": 0},
        {"rings": -1},
        {"rings": True},
        {"rings": None, "seconds": math.nan},
        {"rings": None, "seconds": -1.0},
    ],
)
def test_target_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SlaTarget(**kwargs)  # type: ignore[arg-type]


def test_target_met_rejects_nonsense_waits() -> None:
    with pytest.raises(ValueError):
        SlaTarget().met(math.nan)


cadences = st.sampled_from(sorted(CADENCES.values(), key=lambda c: c.name)) | st.builds(
    Cadence.custom, st.lists(st.integers(1, 5000), min_size=1, max_size=3).map(lambda x: x * 2)
)
waits = st.floats(0, 86_400, allow_nan=False)


@given(waits, waits, cadences)
def test_ring_count_is_monotone_and_non_negative(a: float, b: float, cadence: Cadence) -> None:
    lo, hi = sorted((a, b))
    assert 0 <= ring_count(lo, cadence) <= ring_count(hi, cadence)


@given(st.integers(0, 200_000), cadences)
def test_ring_count_counts_ring_starts_before_answer(wait_ms: int, cadence: Cadence) -> None:
    # Definition, by enumeration: rings start at k * period for k = 0, 1, 2, ...
    starts_before = sum(1 for k in range(0, 200_001) if k * cadence.period_ms < wait_ms)
    assert ring_count(wait_ms / 1000, cadence) == starts_before


@given(waits, cadences, st.integers(1, 10))
def test_met_agrees_with_max_wait(wait_s: float, cadence: Cadence, rings: int) -> None:
    target = SlaTarget(rings=rings, cadence=cadence)
    assert target.met(wait_s) == (round(wait_s * 1e6) <= round(target.max_wait_s * 1e6))
