"""QA rules: what an agent must say, must not say and when — read from a TOML file.

Why a file: every centre words its script differently and QA teams change the list
weekly; they edit TOML, not code. Chinese and English defaults ship in the package
(``earwitness/qa/rules/zh.toml``, ``en.toml``) and are the starting point for a custom file
(``EARWITNESS_QA_RULES_FILE``). A wrong file is refused when loaded with a message naming
the rule, the key and the line, never at audit time.

A rule is matched line by line against the diarized transcript:

- ``kind``: ``required`` (the role must say it), ``forbidden`` (must not), ``echo`` (the
  agent repeats a fact the customer gave: plate, order number...; ``regex`` finds the facts);
- ``phrases`` (substring), ``regex``, ``fuzzy`` (rapidfuzz partial ratio ≥ ``fuzzy_min``,
  for recognition errors); ``with_phrases`` / ``with_regex`` must match *too*, in the
  same line (a precise commitment = a time *and* a way of contact);
- ``role``, and a window: ``anchor`` (start | complaint | trigger | end | any) and
  ``within_s`` (complaint = the customer's first line; end = the last seconds of the call);
- ``[rule.when]``: a trigger (e.g. the customer says they are stuck on a highway); the
  rule applies only once it fires;
- ``weight`` of the rule in the score.

``[[check]]`` entries bound a timing or agitation metric (``max``/``min``), and
``[timing]``/``[agitation]`` hold the metric thresholds, so one file is the whole audit.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from earwitness.errors import ConfigError
from earwitness.qa.matching import Matcher, compile_matcher
from earwitness.qa.timing import TimingParams

KINDS = ("required", "forbidden", "echo")
ANCHORS = ("start", "complaint", "trigger", "end", "any")
ROLES = ("agent", "customer")
METRICS = (
    "agent_interruptions",
    "agent_interruption_s",
    "overtalk_s",
    "non_talk_s",
    "longest_silence_s",
    "max_response_latency_s",
    "mean_response_latency_s",
    "max_question_wait_s",
    "talk_ratio_agent",
    "agitation_end",
)
_RULE_KEYS = {
    "id", "title", "kind", "role", "phrases", "regex", "fuzzy", "fuzzy_min", "with_phrases",
    "with_regex", "anchor", "within_s", "weight", "when", "seed",
}  # fmt: skip
_WHEN_KEYS = {"role", "phrases", "regex", "fuzzy", "fuzzy_min"}
_CHECK_KEYS = {"id", "title", "metric", "max", "min", "weight", "seed"}
_TOP_KEYS = {"name", "language", "rule", "check", "timing", "agitation"}
_AGITATION_KEYS = {"anger_words", "loudness_rise_db", "repeat_similarity"}


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    kind: str
    role: str
    matcher: Matcher
    also: Matcher | None = None
    anchor: str = "any"
    within_s: float | None = None
    weight: float = 1.0
    when_role: str | None = None
    when: Matcher | None = None
    #: ``echo`` rules: phrases that confirm facts back when the customer gave none.
    confirm: Matcher | None = None
    seed: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "role": self.role,
            "anchor": self.anchor,
            "within_s": self.within_s,
            "weight": self.weight,
            "trigger": self.when is not None,
        }


@dataclass(frozen=True)
class Check:
    """A bound on a metric: ``min`` ≤ value ≤ ``max`` passes."""

    id: str
    title: str
    metric: str
    max: float | None
    min: float | None
    weight: float = 1.0
    seed: str = ""


@dataclass(frozen=True)
class AgitationParams:
    """Cues that a customer is upset: anger words, a louder voice, saying the same again."""

    anger_words: Matcher = field(default_factory=Matcher)
    loudness_rise_db: float = 6.0
    repeat_similarity: int = 80

    def record(self) -> dict[str, Any]:
        return {
            "loudness_rise_db": self.loudness_rise_db,
            "repeat_similarity": self.repeat_similarity,
        }


@dataclass(frozen=True)
class RuleSet:
    name: str
    language: str
    source: str
    digest: str
    rules: tuple[Rule, ...]
    checks: tuple[Check, ...]
    timing: TimingParams = field(default_factory=TimingParams)
    agitation: AgitationParams = field(default_factory=AgitationParams)

    def record(self) -> dict[str, Any]:
        """What a result stores so it can say which rules and thresholds produced it."""
        return {
            "name": self.name,
            "language": self.language,
            "source": self.source,
            "sha256": self.digest,
            "timing": self.timing.record(),
            "agitation": self.agitation.record(),
        }


class _Reader:
    """Validates one table of the file; errors name the file, the entry, the key and the line."""

    def __init__(self, source: str, text: str, where: str, table: dict[str, Any]) -> None:
        self.source, self.text, self.where, self.table = source, text, where, table

    def fail(self, key: str | None, problem: str) -> ConfigError:
        line = self._line(key)
        at = f" (line {line})" if line else ""
        field_ = f".{key}" if key else ""
        return ConfigError(f"QA rules {self.source}: {self.where}{field_}{at}: {problem}")

    def _line(self, key: str | None) -> int | None:
        ident = self.table.get("id")
        lines = self.text.splitlines()
        start = 0
        if isinstance(ident, str):
            for n, line in enumerate(lines):
                if re.match(rf"\s*id\s*=\s*[\"']{re.escape(ident)}[\"']", line):
                    start = n
                    break
        if key:
            for n in range(start, len(lines)):
                if re.match(rf"\s*{re.escape(key)}\s*=", lines[n]):
                    return n + 1
        return start + 1 if isinstance(ident, str) else None

    def keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(key, f"unknown key; allowed: {', '.join(sorted(allowed))}")

    def strings(self, key: str) -> list[str]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return value

    def regexes(self, key: str) -> list[str]:
        values = self.strings(key)
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise self.fail(key, f"bad regular expression {value!r}: {exc}") from None
        return values

    def number(self, key: str, default: float | None, low: float = 0.0) -> float | None:
        value = self.table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise self.fail(key, f"must be a number ≥ {low:g}")
        return float(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str:
        value = self.table.get(key, default)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)} (got {value!r})")
        return str(value)

    def text_value(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def matcher(self, prefix: str = "") -> Matcher:
        fuzzy_min = self.number("fuzzy_min", 85.0)
        assert fuzzy_min is not None
        if fuzzy_min > 100:
            raise self.fail("fuzzy_min", "must be between 0 and 100")
        return compile_matcher(
            self.strings(f"{prefix}phrases"),
            self.regexes(f"{prefix}regex"),
            self.strings("fuzzy") if not prefix else [],
            int(fuzzy_min),
        )


def _open_entry(
    source: str,
    text: str,
    index: int,
    raw: Any,
    seen: set[str],
    *,
    table: str,
    allowed: set[str],
    duplicate: str,
) -> tuple[_Reader, str]:
    """Start reading one ``[[rule]]``/``[[check]]`` table: shape, id, known keys, unique id."""
    if not isinstance(raw, dict):
        raise ConfigError(f"QA rules {source}: [[{table}]] #{index} is not a table")
    r = _Reader(source, text, f"[[{table}]] #{index}", raw)
    entry_id = r.text_value("id")
    r.where = f"{table} {entry_id!r}"
    r.keys(allowed)
    if entry_id in seen:
        raise r.fail("id", duplicate)
    seen.add(entry_id)
    return r, entry_id


def _rule(source: str, text: str, index: int, raw: Any, seen: set[str]) -> Rule:
    r, rule_id = _open_entry(
        source, text, index, raw, seen,
        table="rule", allowed=_RULE_KEYS, duplicate="duplicate rule id",
    )  # fmt: skip
    kind = r.choice("kind", KINDS, "required")
    matcher = r.matcher()
    confirm = None
    if kind == "echo":  # regex finds the facts; phrases are a spoken confirmation
        fuzzy_min = int(r.number("fuzzy_min", 85.0) or 0)
        matcher = compile_matcher([], r.regexes("regex"), [], fuzzy_min)
        confirm = compile_matcher(r.strings("phrases"), [], r.strings("fuzzy"), fuzzy_min)
        if matcher.empty:
            raise r.fail("regex", "an echo rule needs regex patterns that find the facts")
    if matcher.empty:
        raise r.fail(None, "needs at least one of phrases, regex or fuzzy")
    also = r.matcher("with_")
    when_raw = raw.get("when")
    when_role, when = None, None
    if when_raw is not None:
        if not isinstance(when_raw, dict):
            raise r.fail("when", "must be a table ([rule.when])")
        w = _Reader(source, text, f"rule {rule_id!r} [when]", when_raw)
        w.keys(_WHEN_KEYS)
        when_role = w.choice("role", ROLES, "customer")
        when = w.matcher()
        if when.empty:
            raise w.fail(None, "needs phrases, regex or fuzzy")
    anchor = r.choice("anchor", ANCHORS, "trigger" if when else "any")
    if anchor == "trigger" and when is None:
        raise r.fail("anchor", "'trigger' needs a [rule.when] table")
    within = r.number("within_s", None)
    if anchor in ("start", "complaint", "end") and within is None:
        raise r.fail("within_s", f"anchor {anchor!r} needs within_s (seconds)")
    return Rule(
        id=rule_id,
        title=r.text_value("title", rule_id),
        kind=kind,
        role=r.choice("role", ROLES, "agent"),
        matcher=matcher,
        also=None if also.empty else also,
        anchor=anchor,
        within_s=within,
        weight=r.number("weight", 1.0) or 0.0,
        when_role=when_role,
        when=when,
        confirm=confirm,
        seed=str(raw.get("seed", "")),
    )


def _check(source: str, text: str, index: int, raw: Any, seen: set[str]) -> Check:
    r, check_id = _open_entry(
        source, text, index, raw, seen,
        table="check", allowed=_CHECK_KEYS, duplicate="duplicate rule/check id",
    )  # fmt: skip
    high, low = r.number("max", None), r.number("min", None)
    if high is None and low is None:
        raise r.fail(None, "needs max or min")
    return Check(
        id=check_id,
        title=r.text_value("title", check_id),
        metric=r.choice("metric", METRICS, None),
        max=high,
        min=low,
        weight=r.number("weight", 1.0) or 0.0,
        seed=str(raw.get("seed", "")),
    )


def parse_rules(text: str, source: str = "<text>") -> RuleSet:
    """Parse and validate a rules file's text; ConfigError names what is wrong and where."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"QA rules {source}: not valid TOML: {exc}") from None
    top = _Reader(source, text, "top level", raw)
    top.keys(_TOP_KEYS)
    seen: set[str] = set()
    rules_raw = raw.get("rule", [])
    if not isinstance(rules_raw, list) or not rules_raw:
        raise top.fail("rule", "needs at least one [[rule]] table")
    rules = tuple(_rule(source, text, i + 1, item, seen) for i, item in enumerate(rules_raw))
    checks_raw = raw.get("check", [])
    if not isinstance(checks_raw, list):
        raise top.fail("check", "must be [[check]] tables")
    checks = tuple(_check(source, text, i + 1, item, seen) for i, item in enumerate(checks_raw))
    timing_raw = raw.get("timing", {})
    t = _Reader(source, text, "[timing]", timing_raw if isinstance(timing_raw, dict) else {})
    t.keys(set(TimingParams.__dataclass_fields__))
    timing = TimingParams(
        interruption_min_overlap_ms=int(t.number("interruption_min_overlap_ms", 300.0) or 0),
        non_talk_min_ms=int(t.number("non_talk_min_ms", 3000.0) or 0),
    )
    agit_raw = raw.get("agitation", {})
    a = _Reader(source, text, "[agitation]", agit_raw if isinstance(agit_raw, dict) else {})
    a.keys(_AGITATION_KEYS)
    agitation = AgitationParams(
        anger_words=compile_matcher(a.strings("anger_words"), [], [], 100),
        loudness_rise_db=a.number("loudness_rise_db", 6.0) or 0.0,
        repeat_similarity=int(a.number("repeat_similarity", 80.0) or 0),
    )
    return RuleSet(
        name=str(raw.get("name", source)),
        language=str(raw.get("language", "")),
        source=source,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        rules=rules,
        checks=checks,
        timing=timing,
        agitation=agitation,
    )


def load_rules(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read QA rules {path}: {exc}") from None
    return parse_rules(text, str(path))


_CACHE: dict[tuple[str, str], RuleSet] = {}


def default_rules(language: str | None) -> RuleSet:
    """The shipped rules for a transcript language: Chinese for zh*, English otherwise."""
    name = "zh" if (language or "").lower().startswith("zh") else "en"
    key = ("builtin", name)
    if key not in _CACHE:
        text = resources.files("earwitness.qa").joinpath(f"rules/{name}.toml").read_text("utf-8")
        _CACHE[key] = parse_rules(text, f"builtin:{name}")
    return _CACHE[key]


def rules_for(path: Path | None, language: str | None) -> RuleSet:
    """A configured file (read once per process and path) or the built-in default."""
    if path is None:
        return default_rules(language)
    key = ("file", str(path))
    if key not in _CACHE:
        _CACHE[key] = load_rules(path)
    return _CACHE[key]
