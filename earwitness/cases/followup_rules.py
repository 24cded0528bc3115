"""Follow-up maths, pure: allowed calling hours, the retry schedule, answers, satisfaction.

The seeds (000) ask for a tracking follow-up within 48 h of resolution and count the
customers' satisfaction against 85 %. Everything here is a function of its arguments
(a policy, a time, what the PBX or the customer said) so the PBX and SMS adapters in
:mod:`earwitness.cases.followup_jobs` stay thin and the rules are tested without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from earwitness.errors import BadInput

CHANNELS = ("survey", "agent", "sms")
# A follow-up's life: waiting for its first try, calling now, between tries, done.
# An agent's call-back is ``placed`` until the agent records how it went.
STATES = ("scheduled", "calling", "retry_wait", "placed", "answered", "unreachable", "failed")
OPEN_STATES = ("scheduled", "calling", "retry_wait", "placed")
# What one try ended with. ``rejected``/``no_phone``/``invalid_number`` will not get
# better by retrying; busy, no answer and "answered but pressed nothing" will.
RETRYABLE = ("busy", "no_answer", "unavailable", "no_digit", "invalid_digit", "timeout")
FINAL_FAILURES = ("rejected", "no_phone", "invalid_number", "pbx_unconfigured")


@dataclass(frozen=True)
class FollowUpPolicy:
    """How follow-ups are made: ``[follow_up]`` in the case policy TOML.

    ``retry_spacing_s`` is in seconds so a test can space tries by a second and a
    centre by two hours with the same code; hours are local to ``utc_offset_h``
    (the seeds' centres are in China: +8).
    """

    auto: str = "survey"  # what a resolution schedules: survey | sms | none
    attempts: int = 3
    retry_spacing_s: float = 7200.0
    allowed_from: time = time(9, 0)
    allowed_to: time = time(20, 0)
    utc_offset_h: float = 8.0
    satisfied_min_score: int = 4
    ring_timeout_s: float = 30.0
    survey_max_s: float = 60.0

    def record(self) -> dict[str, Any]:
        return {
            "auto": self.auto,
            "attempts": self.attempts,
            "retry_spacing_s": self.retry_spacing_s,
            "allowed_hours": f"{self.allowed_from:%H:%M}-{self.allowed_to:%H:%M}",
            "utc_offset_h": self.utc_offset_h,
            "satisfied_min_score": self.satisfied_min_score,
        }


def parse_hours(text: str) -> tuple[time, time]:
    """``"09:00-20:00"`` → (09:00, 20:00); ``"00:00-24:00"`` means all day."""
    try:
        start, end = (part.strip() for part in text.split("-"))
        t0 = time.fromisoformat(start)
        t1 = time.max if end == "24:00" else time.fromisoformat(end)
    except ValueError:
        raise BadInput(f"allowed hours {text!r}: write HH:MM-HH:MM, e.g. 09:00-20:00") from None
    if t1 <= t0:
        raise BadInput(f"allowed hours {text!r}: the end must be after the start")
    return t0, t1


def _local(policy: FollowUpPolicy, at: datetime) -> datetime:
    return at.astimezone(timezone(timedelta(hours=policy.utc_offset_h)))


def within_allowed_hours(policy: FollowUpPolicy, at: datetime) -> bool:
    local = _local(policy, at).time()
    return policy.allowed_from <= local < policy.allowed_to


def next_allowed(policy: FollowUpPolicy, at: datetime) -> datetime:
    """``at`` itself when customers may be called then, else the next window's start."""
    if within_allowed_hours(policy, at):
        return at
    local = _local(policy, at)
    start = local.replace(
        hour=policy.allowed_from.hour, minute=policy.allowed_from.minute, second=0, microsecond=0
    )
    if local.time() >= policy.allowed_to:
        start += timedelta(days=1)
    return start.astimezone(at.tzinfo)


def next_try_at(policy: FollowUpPolicy, tries_made: int, last_try_at: datetime) -> datetime | None:
    """When to try again after ``tries_made`` unanswered tries; None: give up (unreachable)."""
    if tries_made >= policy.attempts:
        return None
    return next_allowed(policy, last_try_at + timedelta(seconds=policy.retry_spacing_s))


def check_phone(number: str | None) -> str:
    """The number to dial: digits with an optional leading +; else a clear error."""
    if number is None or not number.strip():
        raise BadInput("the case has no complainant phone number to follow up")
    cleaned = number.strip().replace(" ", "").replace("-", "")
    body = cleaned[1:] if cleaned.startswith("+") else cleaned
    if not body.isdigit() or not 3 <= len(body) <= 20:
        raise BadInput(f"phone number {number!r} is not dialable (digits, optional +)")
    return cleaned


def parse_score(value: object) -> int:
    """A satisfaction answer 1-5 (a DTMF digit, an SMS text, an agent's entry)."""
    text = str(value).strip() if value is not None else ""
    if len(text) == 1 and text in "12345":
        return int(text)
    raise BadInput(f"satisfaction answer {text[:40]!r}: expected one digit 1-5")


def is_satisfied(policy: FollowUpPolicy, score: int) -> bool:
    return score >= policy.satisfied_min_score


@dataclass(frozen=True)
class SurveyResult:
    """What one automated survey call ended with, from the AMI events of its linkedid."""

    outcome: str  # answered | one of RETRYABLE | rejected
    digit: str | None = None
    dial_status: str | None = None
    detail: str = ""


def survey_result(events: Iterable[Mapping[str, str]]) -> SurveyResult:
    """Classify a survey call from its events (``Event`` plus headers), in order.

    The answer is a ``UserEvent`` ``FollowUpAnswer`` with ``Digit``; the customer's
    leg's ``DialEnd`` says busy/no answer; an ``OriginateResponse`` failure with no
    dial at all means the PBX would not place the call (no route for the number).
    """
    digit: str | None = None
    dial_status: str | None = None
    originate_failed: str | None = None
    for ev in events:
        name = ev.get("Event", "")
        if name == "UserEvent" and ev.get("UserEvent") == "FollowUpAnswer":
            digit = (ev.get("Digit") or "").strip()
        elif name == "DialEnd" and ev.get("Channel"):
            dial_status = (ev.get("DialStatus") or "").upper() or dial_status
        elif name == "OriginateResponse" and ev.get("Response") == "Failure":
            originate_failed = ev.get("Reason") or "?"
    if digit:
        try:
            parse_score(digit)
        except BadInput as exc:
            return SurveyResult("invalid_digit", digit, dial_status, exc.detail)
        return SurveyResult("answered", digit, dial_status)
    if dial_status == "ANSWER":
        return SurveyResult("no_digit", None, dial_status, "answered but no digit pressed")
    if dial_status in ("BUSY",):
        return SurveyResult("busy", None, dial_status)
    if dial_status in ("NOANSWER", "CANCEL"):
        return SurveyResult("no_answer", None, dial_status)
    if dial_status in ("CHANUNAVAIL", "CONGESTION"):
        return SurveyResult("unavailable", None, dial_status)
    if originate_failed is not None:
        return SurveyResult(
            "rejected", None, None, f"the PBX did not place the call (reason {originate_failed})"
        )
    return SurveyResult("timeout", None, dial_status, "no answer or result within the limit")


def satisfaction(satisfied_flags: Iterable[bool], target: float) -> dict[str, Any]:
    """Satisfied share of the answers; with no answers it is *no data*, not a failure."""
    flags = list(satisfied_flags)
    satisfied = sum(1 for f in flags if f)
    rate = satisfied / len(flags) if flags else None
    return {
        "count": len(flags),
        "satisfied": satisfied,
        "rate": round(rate, 3) if rate is not None else None,
        "target": target,
        "met": None if rate is None else rate >= target,
        "state": "no data" if rate is None else ("met" if rate >= target else "NOT met"),
    }
