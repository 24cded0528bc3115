"""What an admin changes on ``/admin`` besides users and keys: queue SLA targets, the map
tile URL, and checking a QA rules file. Each setter validates everything first and raises
:class:`~earwitness.errors.FieldErrors` naming the fields, so nothing is half-written and
the page can put each message next to its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from earwitness.errors import BadInput, ConfigError
from earwitness.models import Queue, UiSetting
from earwitness.qa.rules import RuleSet, parse_rules
from earwitness.telephony.rings import CADENCES

TILE_URL = "map_tile_url"


class FieldErrors(BadInput):
    """Bad form input, per field (``fields``: name → message)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class QueueTarget:
    name: str
    rings: int | None
    seconds: float | None
    cadence: str


def queue_targets(session: Session) -> list[QueueTarget]:
    rows = session.scalars(select(Queue).order_by(Queue.name))
    return [QueueTarget(q.name, q.sla_rings, q.sla_seconds, q.cadence) for q in rows]


def _number(text: str, name: str, low: float, high: float, errors: dict[str, str]) -> Any:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        errors[name] = "not a number"
        return None
    if not low <= value <= high:
        errors[name] = f"between {low:g} and {high:g}"
        return None
    return value


def set_queue_target(session: Session, name: str, rings: str, seconds: str, cadence: str) -> Queue:
    """A queue's answer target in rings and/or seconds (both: both must hold)."""
    errors: dict[str, str] = {}
    queue = session.scalar(select(Queue).where(Queue.name == name))
    if queue is None:
        errors["name"] = f"no queue named {name!r}"
    ring_value = _number(rings, "rings", 1, 100, errors)
    if ring_value is not None and ring_value != int(ring_value):
        errors["rings"] = "a whole number"
    second_value = _number(seconds, "seconds", 1, 3600, errors)
    if cadence not in CADENCES:
        errors["cadence"] = f"one of {', '.join(sorted(CADENCES))}"
    if not errors and ring_value is None and second_value is None:
        errors["rings"] = "give rings, seconds or both"
    if errors:
        raise FieldErrors(errors)
    assert queue is not None
    queue.sla_rings = int(ring_value) if ring_value is not None else None
    queue.sla_seconds = second_value
    queue.cadence = cadence
    return queue


def tile_url(session: Session) -> str | None:
    row = session.get(UiSetting, TILE_URL)
    return row.value if row is not None and row.value else None


def set_tile_url(session: Session, url: str, actor: str) -> None:
    """``https://tiles.example/{z}/{x}/{y}.png``, or empty to draw tracks offline again."""
    url = url.strip()
    if url and (
        not url.startswith(("https://", "http://")) or not all(p in url for p in "zxy")
        or not all(f"{{{p}}}" in url for p in "zxy")
    ):  # fmt: skip
        raise FieldErrors({"tile_url": "an http(s) URL with {z}, {x} and {y}"})
    row = session.get(UiSetting, TILE_URL)
    if row is None:
        session.add(UiSetting(key=TILE_URL, value=url, updated_by=actor))
    else:
        row.value, row.updated_by = url, actor


def check_rules(text: str) -> RuleSet:
    """QA rules TOML validated exactly as the auditor loads it (names what is wrong, where)."""
    try:
        return parse_rules(text, "the submitted rules")
    except ConfigError as exc:
        raise FieldErrors({"rules": exc.detail}) from None


def save_rules(path: Path | None, text: str) -> bool:
    """Validate, then replace the configured rules file (``EARWITNESS_QA_RULES_FILE``) in one
    rename; without one configured the shipped rules stay and nothing is written (False)."""
    check_rules(text)
    if path is None:
        return False
    partial = path.with_name(path.name + ".saving")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return True
