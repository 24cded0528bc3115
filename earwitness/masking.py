"""The one masking function for phone numbers, and a deep redaction built on it.

Roles that do not need a caller's number see its last four digits (enough to
recognise a repeat caller, not enough to dial). Every place that shows a number to
such a role — call lists, call details and their raw PBX events, search hits, case
views, timelines — goes through :func:`mask_phone`; :func:`redact` applies it to every
occurrence of known numbers inside nested data (labels, event fields) so free text
cannot leak what a field hides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def mask_phone(phone: str | None) -> str | None:
    """``13800138000`` → ``138****8000``: enough to recognise, not to dial."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    keep = 3 if len(digits) >= 10 else 1
    return digits[:keep] + "*" * (len(digits) - keep - 4) + digits[-4:]


def redact(value: T, numbers: Iterable[str | None]) -> T:
    """A copy of ``value`` (dicts, lists, strings) with each number in ``numbers`` masked.

    Longer numbers are replaced first so ``+8613800138000`` is not half-masked through
    ``13800138000``. Numbers shorter than five characters (extensions) are left alone.
    """
    known = sorted({n.strip() for n in numbers if n and len(n.strip()) > 4}, key=len, reverse=True)
    if not known:
        return value
    masks = {n: mask_phone(n) or "" for n in known}

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for number in known:
                if number in item:
                    item = item.replace(number, masks[number])
            return item
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return type(item)(walk(v) for v in item)
        return item

    result: T = walk(value)
    return result
