"""Deadlines, categories and targets from a TOML policy file, with the seeds' defaults.

Defaults (seeds 000 and 001), the same for every urgency unless the file says
otherwise: first response ≤ 1 h, initial solution ≤ 4 h, contact the customer
≤ 24 h, follow-up visit ≤ 48 h after resolution, close ≤ 3 days; follow-up
satisfaction target 85 %. A centre that answers class A faster writes, e.g.::

    [deadlines.A]
    first_response_h = 0.5

Deadline maths here is pure: a case snapshot and "now" in, states out.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from earwitness.cases.followup_rules import FollowUpPolicy, parse_hours
from earwitness.errors import BadInput, ConfigError

URGENCIES = ("A", "B", "C")
CLOCKS: dict[str, str] = {
    "first_response": "first response",
    "initial_solution": "initial solution",
    "contact_customer": "contact the customer",
    "follow_up": "follow-up after resolution",
    "close": "close the case",
}
DEFAULT_HOURS = {
    "first_response": 1.0,
    "initial_solution": 4.0,
    "contact_customer": 24.0,
    "follow_up": 48.0,
    "close": 72.0,
}
DEFAULT_CATEGORIES = (
    "late_arrival",
    "attitude",
    "technical_failure",
    "dispatch_error",
    "billing",
    "other",
)
DEFAULT_ROOT_CAUSES = ("product_system", "staff_ability", "attitude", "third_party")


@dataclass(frozen=True)
class Policy:
    hours: dict[str, dict[str, float]] = field(
        default_factory=lambda: {u: dict(DEFAULT_HOURS) for u in URGENCIES}
    )
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    root_causes: tuple[str, ...] = DEFAULT_ROOT_CAUSES
    satisfaction_target: float = 0.85
    follow_up: FollowUpPolicy = field(default_factory=FollowUpPolicy)
    source: str = "built-in defaults (seeds 000/001)"

    def deadline(self, urgency: str, clock: str) -> timedelta:
        return timedelta(hours=self.hours[urgency][clock])

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "hours": self.hours,
            "categories": list(self.categories),
            "root_causes": list(self.root_causes),
            "satisfaction_target": self.satisfaction_target,
            "follow_up": self.follow_up.record(),
        }


def load_policy(path: Path | None) -> Policy:
    """Read the policy file (``None``: defaults); unknown keys are errors, not ignored."""
    if path is None:
        return Policy()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read case policy {path}: {exc}") from None
    known = {"deadlines", "categories", "root_causes", "satisfaction_target", "follow_up"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"case policy {path}: unknown keys {', '.join(sorted(unknown))}")
    hours = {u: dict(DEFAULT_HOURS) for u in URGENCIES}
    for urgency, clocks in _table(path, "deadlines", raw.get("deadlines")).items():
        if urgency not in URGENCIES or not isinstance(clocks, dict):
            raise ConfigError(f"case policy {path}: [deadlines.{urgency}] is not A, B or C")
        for key, value in clocks.items():
            clock = key.removesuffix("_h")
            if clock not in CLOCKS or not key.endswith("_h"):
                raise ConfigError(f"case policy {path}: unknown deadline {urgency}.{key}")
            if not _positive(value, _MAX_HOURS):
                raise ConfigError(f"case policy {path}: {urgency}.{key} must be hours > 0")
            hours[urgency][clock] = float(value)
    target = raw.get("satisfaction_target", 0.85)
    if not _positive(target) or not 0 < target <= 1:
        raise ConfigError(f"case policy {path}: satisfaction_target must be in (0, 1]")
    return Policy(
        hours=hours,
        categories=_names(path, "categories", raw.get("categories")) or DEFAULT_CATEGORIES,
        root_causes=_names(path, "root_causes", raw.get("root_causes")) or DEFAULT_ROOT_CAUSES,
        satisfaction_target=float(target),
        follow_up=_follow_up(path, _table(path, "follow_up", raw.get("follow_up"))),
        source=str(path),
    )


_MAX_HOURS = 24 * 366 * 10  # a clock or spacing beyond ten years is a typo, not a policy


def _positive(value: Any, limit: float = _MAX_HOURS * 3600.0) -> bool:
    """A real number in (0, limit]: not a bool (TOML true is no duration), not inf/nan."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= limit
    )


def _table(path: Path, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"case policy {path}: {key} must be a [{key}] table")
    return value


def _names(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"case policy {path}: {key} must be a list of non-empty strings")
    return tuple(value)


def _follow_up(path: Path, raw: dict[str, Any]) -> FollowUpPolicy:
    """``[follow_up]``: auto, attempts, retry_spacing_s, allowed_hours, utc_offset_h, ..."""
    default = FollowUpPolicy()
    keys = {
        "auto", "attempts", "retry_spacing_s", "allowed_hours", "utc_offset_h",
        "satisfied_min_score", "ring_timeout_s", "survey_max_s",
    }  # fmt: skip
    unknown = set(raw) - keys
    if unknown:
        raise ConfigError(
            f"case policy {path}: unknown follow_up keys {', '.join(sorted(unknown))}"
        )
    auto = raw.get("auto", default.auto)
    if auto not in ("survey", "sms", "none"):
        raise ConfigError(f"case policy {path}: follow_up.auto must be survey, sms or none")
    numbers: dict[str, float] = {}
    for key in ("attempts", "retry_spacing_s", "ring_timeout_s", "survey_max_s"):
        value = raw.get(key, getattr(default, key))
        if not _positive(value):
            raise ConfigError(f"case policy {path}: follow_up.{key} must be a number > 0")
        numbers[key] = float(value)
    score = raw.get("satisfied_min_score", default.satisfied_min_score)
    if isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
        raise ConfigError(f"case policy {path}: follow_up.satisfied_min_score must be 1-5")
    offset = raw.get("utc_offset_h", default.utc_offset_h)
    if isinstance(offset, bool) or not isinstance(offset, int | float) or not -14 <= offset <= 14:
        raise ConfigError(f"case policy {path}: follow_up.utc_offset_h must be in -14..14")
    try:
        start, end = parse_hours(str(raw.get("allowed_hours", "09:00-20:00")))
    except BadInput as exc:
        raise ConfigError(f"case policy {path}: follow_up.{exc.detail}") from None
    return FollowUpPolicy(
        auto=auto,
        attempts=int(numbers["attempts"]),
        retry_spacing_s=numbers["retry_spacing_s"],
        allowed_from=start,
        allowed_to=end,
        utc_offset_h=float(offset),
        satisfied_min_score=int(score),
        ring_timeout_s=numbers["ring_timeout_s"],
        survey_max_s=numbers["survey_max_s"],
    )


@dataclass(frozen=True)
class Milestones:
    """When each clock was stopped; derived from the case's actions (see lifecycle)."""

    opened_at: datetime
    responded_at: datetime | None = None
    solved_at: datetime | None = None
    contacted_at: datetime | None = None
    resolved_at: datetime | None = None
    followed_up_at: datetime | None = None
    closed_at: datetime | None = None


def _fmt(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours else []) + [f"{mins} min"]
    return " ".join(parts)


def deadline_states(
    policy: Policy, urgency: str, m: Milestones, now: datetime
) -> list[dict[str, Any]]:
    """Each clock: due time, and met / met late / open (time left) / breached (overdue)."""
    starts = {
        "first_response": (m.opened_at, m.responded_at),
        "initial_solution": (m.opened_at, m.solved_at),
        "contact_customer": (m.opened_at, m.contacted_at),
        "follow_up": (m.resolved_at, m.followed_up_at),
        "close": (m.opened_at, m.closed_at),
    }
    out = []
    for clock, (start, met) in starts.items():
        if start is None:
            continue  # follow-up clock runs only after resolution
        due = start + policy.deadline(urgency, clock)
        if met is not None:
            state = "met" if met <= due else "met_late"
            delta = met - due
        elif now <= due:
            state, delta = "open", now - due
        else:
            state, delta = "breached", now - due
        out.append(
            {
                "clock": clock,
                "label": CLOCKS[clock],
                "limit_h": policy.hours[urgency][clock],
                "due_at": due.isoformat(),
                "met_at": met.isoformat() if met else None,
                "state": state,
                "breach": state in ("breached", "met_late"),
                "seconds_past_due": round(delta.total_seconds()),
                "text": (
                    f"{_fmt(delta)} left"
                    if state == "open"
                    else f"overdue by {_fmt(delta)}"
                    if state == "breached"
                    else f"met {_fmt(delta)} late"
                    if state == "met_late"
                    else f"met with {_fmt(delta)} to spare"
                ),
            }
        )
    return out


def policy_for(path: Path | None) -> Policy:
    """The policy of a process, read once per file (it is small and rarely changes)."""
    key = str(path) if path else ""
    if key not in _CACHE:
        _CACHE[key] = load_policy(path)
    return _CACHE[key]


_CACHE: dict[str, Policy] = {}
