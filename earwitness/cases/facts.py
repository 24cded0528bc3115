"""Facts pre-filled from transcript lines, each pointing back at the line it came from.

Seed 000 asks agents to capture time, place, plate, work-order number, delay and
demand in one go; seed 003 shows what happens when urgency is missed. This module
suggests those facts from what was said (Chinese and English); a person confirms,
edits or rejects each one. Pure functions, no I/O: lines in, facts out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_CHARS = "A-HJ-NP-Z0-9"  # no I or O on mainland plates
PLATE = re.compile(
    rf"(?<![A-Za-z0-9])([{PROVINCES}])\s?([A-Z])[\s·.-]?"
    rf"([DF][{_PLATE_CHARS}][0-9]{{4}}|[0-9]{{5}}[DF]|[{_PLATE_CHARS}]{{4}}[{_PLATE_CHARS}挂学警港澳])"
    r"(?![A-Za-z0-9])"
)
WORK_ORDER = re.compile(
    r"(?:工单号?|单号|订单号?|救援单号?|work[\s-]?order(?:\s+(?:no\.?|number))?|ticket(?:\s+no\.?)?"
    r"|order\s+(?:no\.?|number))\s*(?:是|为|:|：|#|no\.?)?\s*([A-Z]{0,4}-?[0-9][0-9A-Z-]{3,})",
    re.IGNORECASE,
)
CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUM = r"[0-9]+|[零〇一二两三四五六七八九十]+"
CLOCK_CN = re.compile(
    rf"(凌晨|早上|上午|中午|下午|傍晚|晚上)?\s*({_NUM})\s*[点點]\s*(半|一刻|三刻|({_NUM})\s*分?)?"
)
CLOCK_EN = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)(?![a-z])", re.IGNORECASE)
CLOCK_24 = re.compile(r"(?<![0-9:])([01]?[0-9]|2[0-3]):([0-5][0-9])(?![0-9:])")
DURATION_CN = re.compile(
    rf"(?:({_NUM})\s*(?:个)?\s*(?:小时|钟头)\s*(?:({_NUM})\s*分(?:钟)?)?|(半)\s*(?:个)?\s*(?:小时|钟头)|({_NUM})\s*分钟)"
)
DURATION_EN = re.compile(
    r"\b(an?|one|two|three|four|five|six|half an?|\d+(?:\.\d+)?)\s*(hours?|hrs?|minutes?|mins?)\b"
    r"(?:\s+and\s+(\d+)\s*(?:minutes?|mins?))?",
    re.IGNORECASE,
)
LATE_CUE = re.compile(r"迟到|晚了|晚到|等了|还没到|没来|late|waited|waiting|delay", re.IGNORECASE)
MONEY = re.compile(
    rf"(?:[¥￥]\s?([0-9][0-9,]*(?:\.[0-9]+)?)|([0-9][0-9,]*(?:\.[0-9]+)?|{_NUM})\s*(?:元|块钱?|rmb|yuan)"
    r"|(?:rmb|cny)\s?([0-9][0-9,]*(?:\.[0-9]+)?)|\$\s?([0-9][0-9,]*(?:\.[0-9]+)?))",
    re.IGNORECASE,
)
PLACE_CN = re.compile(
    r"([\u4e00-\u9fff]{1,10}(高速公路|高速|机场|大道|路|街|收费站|服务区|加油站|出口|大桥|隧道|小区|大厦|广场|医院|车站))"
)
PLACE_EN = re.compile(
    r"\b(?:on|at|near|in)\s+(?:the\s+)?((?:[A-Z][\w'-]*\s+){0,4}"
    r"(?:[Ee]xpressway|[Hh]ighway|[Mm]otorway|[Rr]oad|[Ss]treet|[Aa]irport|[Ss]tation|[Ee]xit|[Bb]ridge))\b"
)
DEMANDS = {
    "refund": re.compile(r"退款|退钱|退费|refund|money back", re.IGNORECASE),
    "apology": re.compile(r"道歉|赔礼|apologi[sz]e|apology|say sorry", re.IGNORECASE),
    "compensation": re.compile(r"赔偿|补偿|赔钱|compensat", re.IGNORECASE),
}
URGENCY_CUES = {
    "highway": re.compile(
        r"高速|快速路|应急车道|\b(?:highway|expressway|motorway|freeway)\b", re.IGNORECASE
    ),
    "danger": re.compile(
        r"危险|事故|着火|冒烟|受伤|撞|\b(?:danger\w*|unsafe|accident|fire|smoke|injur\w*)\b",
        re.IGNORECASE,
    ),
    "child": re.compile(
        r"孩子|小孩|婴儿|宝宝|孕妇|老人|\b(?:child|children|kids?|bab(?:y|ies)|infant|pregnant)\b",
        re.IGNORECASE,
    ),
    "media": re.compile(
        r"315|媒体|记者|曝光|微博|抖音|热搜|\b(?:media|journalists?|press|newspapers?)\b",
        re.IGNORECASE,
    ),
}


@dataclass(frozen=True)
class Line:
    """One transcript line (or any text line) and where it came from."""

    text: str
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fact:
    kind: str
    value: str
    normalized: Any
    source: dict[str, Any]
    status: str = "suggested"  # suggested | confirmed | edited | rejected

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cn_number(text: str) -> int | None:
    """Arabic or Chinese numerals up to 99 (enough for clock times and minutes)."""
    if text.isdigit():
        return int(text)
    if not text or any(ch not in CN_DIGITS and ch != "十" for ch in text):
        return None
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (
            CN_DIGITS.get(ones, 0) if ones else 0
        )
    return CN_DIGITS.get(text) if len(text) == 1 else int("".join(str(CN_DIGITS[c]) for c in text))


def _clock_cn(m: re.Match[str]) -> str | None:
    period, hour_text, minute_part, minute_num = m.group(1), m.group(2), m.group(3), m.group(4)
    hour = cn_number(hour_text)
    if hour is None or hour > 24:
        return None
    minute = {"半": 30, "一刻": 15, "三刻": 45}.get(minute_part or "")
    if minute is None:
        minute = cn_number(minute_num) if minute_num else 0
    if minute is None or minute > 59:
        return None
    if period in ("下午", "傍晚", "晚上") and hour < 12:
        hour += 12
    if period == "中午" and hour < 6:
        hour += 12
    return f"{hour % 24:02d}:{minute:02d}"


_EN_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def _durations(text: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for m in DURATION_CN.finditer(text):
        if m.group(3):
            out.append((m.group(0), 30.0))
        elif m.group(4):
            minutes = cn_number(m.group(4))
            if minutes is not None:
                out.append((m.group(0), float(minutes)))
        else:
            hours = cn_number(m.group(1))
            extra = cn_number(m.group(2)) if m.group(2) else 0
            if hours is not None and extra is not None:
                out.append((m.group(0), hours * 60.0 + float(extra)))
    for m in DURATION_EN.finditer(text):
        amount_text = m.group(1).lower()
        amount = (
            0.5
            if amount_text.startswith("half")
            else float(_EN_WORDS.get(amount_text, 0) or amount_text)
        )
        total = amount * 60 if m.group(2).lower().startswith("h") else amount
        if m.group(3):
            total += float(m.group(3))
        out.append((m.group(0), total))
    return out


_PLACE_BOUNDARY = set("在到从于往去是的了就还也和与跟停我你他她它们")


def _trim_place(match: str, suffix: str) -> str:
    """Cut the words before a place name: 车停在南山区深南大道 → 南山区深南大道."""
    prefix = match[: len(match) - len(suffix)]
    cut = max((i for i, ch in enumerate(prefix) if ch in _PLACE_BOUNDARY), default=-1)
    return prefix[cut + 1 :] + suffix


def extract_line(line: Line) -> list[Fact]:
    text, src = line.text, {**line.source, "line": line.text}
    facts: list[Fact] = []

    def add(kind: str, value: str, normalized: Any) -> None:
        facts.append(Fact(kind, value.strip(), normalized, src))

    upper = text.upper()
    for m in PLATE.finditer(upper):
        add("plate", m.group(0), "".join(m.groups()))
    for m in WORK_ORDER.finditer(text):
        add("work_order", m.group(0), m.group(1).upper())
    for m in CLOCK_CN.finditer(text):
        clock = _clock_cn(m)
        if clock and (m.group(1) or m.group(3) or "点" in m.group(0)):
            add("time", m.group(0), clock)
    taken: list[tuple[int, int]] = []
    for m in CLOCK_EN.finditer(text):
        taken.append(m.span())
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if 1 <= hour <= 12 and minute < 60:
            pm = m.group(3).lower().startswith("p")
            add("time", m.group(0), f"{(hour % 12) + (12 if pm else 0):02d}:{minute:02d}")
    for m in CLOCK_24.finditer(text):
        if not any(a <= m.start() < b for a, b in taken):
            add("time", m.group(0), f"{int(m.group(1)):02d}:{m.group(2)}")
    late = bool(LATE_CUE.search(text))
    for raw, minutes in _durations(text):
        add("delay" if late else "duration", raw, {"minutes": minutes})
    for m in MONEY.finditer(text):
        number_text = next(g for g in m.groups() if g)
        number = cn_number(number_text) if not number_text[0].isdigit() else None
        amount = float(number_text.replace(",", "")) if number is None else float(number)
        currency = "USD" if m.group(0).lstrip().startswith("$") else "CNY"
        add("money", m.group(0), {"amount": amount, "currency": currency})
    for m in PLACE_CN.finditer(text):
        place = _trim_place(m.group(1), m.group(2))
        if len(place) >= 3:
            add("place", place, place)
    for m in PLACE_EN.finditer(text):
        add("place", m.group(1), m.group(1))
    for demand, pattern in DEMANDS.items():
        if hit := pattern.search(text):
            add("demand", hit.group(0), demand)
    for cue, pattern in URGENCY_CUES.items():
        if hit := pattern.search(text):
            add("urgency_cue", hit.group(0), cue)
    return facts


def extract(lines: Iterable[Line]) -> list[Fact]:
    """All facts from all lines, de-duplicated by (kind, normalized value), first line wins."""
    seen: set[tuple[str, str]] = set()
    out: list[Fact] = []
    for line in lines:
        for fact in extract_line(line):
            key = (fact.kind, repr(fact.normalized))
            if key not in seen:
                seen.add(key)
                out.append(fact)
    return out


def suggested_urgency(facts: list[Fact]) -> dict[str, Any]:
    """Class A when danger, a child, or the highway comes up (seed 003: recognise it in-call)."""
    cues = sorted({f.normalized for f in facts if f.kind == "urgency_cue"})
    if {"danger", "child"} & set(cues) or "highway" in cues:
        level = "A"
    elif "media" in cues or any(f.kind == "demand" for f in facts):
        level = "B"
    else:
        level = "C" if not cues else "B"
    return {"urgency": level, "cues": cues}
