"""Audit one call: rules over the diarized transcript, checks over its timing metrics.

Why every finding carries citations: a QA score nobody can explain gets ignored. Each
finding names its rule, its status and the transcript line(s) — segment id, role, time and
text — that made it pass or fail (for a missed required phrase: the line that opened the
window, e.g. the complaint or the customer's cry for help).

Pure: lines and a :class:`RuleSet` in, a :class:`Scorecard` out. Storage is in
:mod:`earwitness.qa.store`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from earwitness.qa.agitation import agitation
from earwitness.qa.matching import normalize
from earwitness.qa.rules import Check, Rule, RuleSet
from earwitness.qa.timing import Interval, answer_wait, conversation_metrics

_CJK = re.compile(r"[\u3400-\u9fff]")
_QUESTION = re.compile(r"(\?|吗|呢|么)[\s.!]*$")


@dataclass(frozen=True)
class Line:
    """One transcript segment as the audit sees it."""

    segment_id: int | None
    role: str
    start_s: float
    end_s: float
    text: str
    loudness_db: float | None = None


@dataclass(frozen=True)
class Cite:
    segment_id: int | None
    role: str
    start_s: float
    end_s: float
    text: str
    match: str | None = None


@dataclass(frozen=True)
class Finding:
    """``status``: passed | failed | not_applicable; ``override`` when a QA person changed it."""

    rule_id: str
    title: str
    kind: str
    status: str
    weight: float
    reason: str
    cites: tuple[Cite, ...] = ()
    value: float | None = None
    override: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cites": [asdict(c) for c in self.cites]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        cites = tuple(Cite(**c) for c in data.get("cites", []))
        return cls(**{**data, "cites": cites})


@dataclass
class Scorecard:
    score: float | None
    findings: list[Finding]
    metrics: dict[str, Any]
    agitation: dict[str, Any]
    ruleset: dict[str, Any]
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> list[str]:
        return [f.rule_id for f in self.findings if f.status == "passed"]

    @property
    def failed(self) -> list[str]:
        return [f.rule_id for f in self.findings if f.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "passed": self.passed,
            "failed": self.failed,
            "findings": [f.as_dict() for f in self.findings],
            "metrics": self.metrics,
            "agitation": self.agitation,
            "ruleset": self.ruleset,
        }


def score_of(findings: Sequence[Finding]) -> float | None:
    """100 × weight of passed / weight of applicable findings (None: nothing applicable)."""
    applicable = [f for f in findings if f.status in ("passed", "failed")]
    total = sum(f.weight for f in applicable)
    if total <= 0:
        return None
    return round(100.0 * sum(f.weight for f in applicable if f.status == "passed") / total, 1)


def apply_overrides(
    findings: Sequence[Finding], overrides: dict[str, dict[str, Any]]
) -> list[Finding]:
    """Findings with a QA person's decision in place of the machine's, the original kept."""
    out = []
    for f in findings:
        o = overrides.get(f.rule_id)
        if o is None:
            out.append(f)
        else:
            out.append(replace(f, status=o["status"], override={**o, "machine_status": f.status}))
    return out


def tokens(text: str) -> int:
    """Speaking-rate units: each Chinese character, plus each other whitespace word."""
    return len(_CJK.findall(text)) + len(_CJK.sub(" ", text).split())


class _Base:
    """Builds a rule's finding without ``dataclasses.replace`` (hot path: every rule, every
    call)."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def __call__(
        self, status: str = "failed", reason: str = "", cites: tuple[Cite, ...] = ()
    ) -> Finding:
        r = self.rule
        return Finding(r.id, r.title, r.kind, status, r.weight, reason, cites)


def _cite(line: Line, match: str | None = None) -> Cite:
    return Cite(line.segment_id, line.role, line.start_s, line.end_s, line.text, match)


class _Call:
    """The lines of one call, normalised once, with the anchors rules refer to."""

    def __init__(self, lines: Sequence[Line], duration_s: float | None) -> None:
        self.lines = sorted(lines, key=lambda x: (x.start_s, x.end_s))
        self.norm = [normalize(x.text) for x in self.lines]
        end = max((x.end_s for x in self.lines), default=0.0)
        self.duration = max(duration_s or 0.0, end)
        self.complaint = next((x for x in self.lines if x.role == "customer"), None)
        self._by_role: dict[str, list[tuple[Line, str]]] = {}
        for x, n in zip(self.lines, self.norm, strict=True):
            self._by_role.setdefault(x.role, []).append((x, n))

    def of(self, role: str) -> list[tuple[Line, str]]:
        return self._by_role.get(role, [])


def _window(rule: Rule, call: _Call, trigger: Line | None) -> tuple[float, float, Line | None]:
    within = rule.within_s if rule.within_s is not None else float("inf")
    if rule.anchor == "start":
        return 0.0, within, None
    if rule.anchor == "end":
        return call.duration - within, float("inf"), None
    if rule.anchor == "complaint" and call.complaint is not None:
        return call.complaint.start_s, call.complaint.end_s + within, call.complaint
    if rule.anchor == "trigger" and trigger is not None:
        return trigger.start_s, trigger.end_s + within, trigger
    return 0.0, float("inf"), None


def _where(rule: Rule) -> str:
    if rule.anchor == "any" or rule.within_s is None:
        return "in the call"
    return {
        "start": f"in the first {rule.within_s:g} s",
        "end": f"in the last {rule.within_s:g} s",
        "complaint": f"within {rule.within_s:g} s of the complaint",
        "trigger": f"within {rule.within_s:g} s of the trigger",
    }[rule.anchor]


def _trigger(rule: Rule, call: _Call) -> tuple[Line, str] | None:
    if rule.when is None or rule.when_role is None:
        return None
    for line, norm in call.of(rule.when_role):
        hit = rule.when.search(norm)
        if hit:
            return line, hit
    return None


def _compact(text: str) -> str:
    return re.sub(r"[\s\-_.,:]", "", text)


def _echo(rule: Rule, call: _Call) -> Finding:
    base = _Base(rule)
    facts: list[tuple[Line, str]] = []
    for line, norm in call.of("customer"):
        facts += [(line, m) for m in rule.matcher.findall(norm) if len(_compact(m)) >= 4]
    agent = call.of(rule.role)
    for source, fact in facts:
        for line, norm in agent:
            if line.start_s >= source.start_s and _compact(fact) in _compact(norm):
                reason = f"repeated {fact!r} that the customer gave at {source.start_s:.1f} s"
                return base(status="passed", reason=reason,
                               cites=(_cite(line, fact), _cite(source, fact)))  # fmt: skip
    for line, norm in agent:
        hit = rule.confirm.search(norm) if rule.confirm else None
        if hit:
            return base(status="passed", reason="confirmed the facts back",
                           cites=(_cite(line, hit),))  # fmt: skip
    if not facts:
        return base(status="not_applicable", reason="customer gave no fact to confirm")
    shown = ", ".join(repr(f) for _, f in facts[:3])
    return base(reason=f"customer gave {shown}; {rule.role} never repeated them",
                   cites=tuple(_cite(src, f) for src, f in facts[:3]))  # fmt: skip


def evaluate_rule(rule: Rule, call: _Call) -> Finding:
    """One rule over one call, with the lines that decided it."""
    if rule.kind == "echo":
        return _echo(rule, call)
    base = _Base(rule)
    trig = _trigger(rule, call)
    if rule.when is not None and trig is None:
        return base(status="not_applicable", reason="trigger not heard in the call")
    trigger_line = trig[0] if trig else None
    start, end, anchor = _window(rule, call, trigger_line)
    hits: list[Cite] = []
    for line, norm in call.of(rule.role):
        if line.start_s < start or line.start_s > end:
            continue
        hit = rule.matcher.search(norm)
        if hit and rule.also is not None:
            second = rule.also.search(norm)
            hit = f"{hit} + {second}" if second else None
        if hit:
            hits.append(_cite(line, hit))
            if rule.kind == "required":
                break
    context = (_cite(trigger_line, trig[1]),) if trig and trigger_line else ()
    where = _where(rule)
    if rule.kind == "required":
        if hits:
            reason = f"{rule.role} said {hits[0].match!r} at {hits[0].start_s:.1f} s"
            return base(status="passed", reason=reason, cites=(hits[0], *context))
        if anchor is None and not context and rule.anchor in ("start", "end"):
            # cite the edge of the window that was searched (where it should have been said)
            own = [x for x, _ in call.of(rule.role) if start <= x.start_s <= end]
            anchor = (own[-1] if rule.anchor == "end" else own[0]) if own else None
        elif anchor is None and not context:
            # anywhere in the call: the customer's complaint is what went unanswered, not
            # the agent's greeting (the first agent line has nothing to do with it)
            anchor = call.complaint
        opened = (_cite(anchor),) if anchor is not None and not context else context
        return base(reason=f"{rule.role} never said it {where}", cites=opened)
    if hits:
        said = ", ".join(f"{h.match!r} at {h.start_s:.1f} s" for h in hits[:3])
        return base(reason=f"{rule.role} said {said}", cites=(*hits, *context))
    return base(status="passed", reason=f"{rule.role} did not say it {where}")


def _nearest(lines: Sequence[Line], role: str, at: float) -> Line | None:
    own = [x for x in lines if x.role == role]
    return min(own, key=lambda x: abs(x.start_s - at), default=None)


def evaluate_check(check: Check, metrics: dict[str, Any], call: _Call) -> Finding:
    """A metric bound, citing the lines where the metric's events happened."""
    value = metrics.get(check.metric)

    def base(status: str, reason: str, cites: tuple[Cite, ...] = ()) -> Finding:
        # built directly: dataclasses.replace was ~4 % of the audit (every check, every call)
        return Finding(check.id, check.title, "check", status, check.weight, reason, cites, value)

    if value is None:
        return base("not_applicable", f"{check.metric} not measurable")
    bound = []
    if check.max is not None:
        bound.append(f"≤ {check.max:g}")
    if check.min is not None:
        bound.append(f"≥ {check.min:g}")
    ok = (check.max is None or value <= check.max) and (check.min is None or value >= check.min)
    cites: list[Cite] = []
    rose = (
        check.metric == "agitation_end"
        and metrics.get("agitation_calmed") is False
        and (metrics.get("agitation_start") or 0) < value
    )
    if rose:
        # One verdict per call: a customer whose agitation rose did not calm down, even
        # when the end level is under the bound (the card's agitation says calmed: false).
        start_level = metrics.get("agitation_start") or 0
        last = next((x for x in reversed(call.lines) if x.role == "customer"), None)
        reason = (
            f"customer agitation rose from {start_level:g} to {value:g} cues per line (not calmed)"
        )
        return base(
            "failed", reason, (_cite(last, "agitation at the end"),) if last is not None else ()
        )
    if check.metric.startswith("agent_interruption"):
        for cut in metrics["interruptions"]:
            if cut["by"] == "agent":
                line = _nearest(call.lines, "agent", cut["at_s"])
                if line is not None:
                    cites.append(_cite(line, f"cut in at {cut['at_s']:.2f} s, "
                                             f"{cut['overlap_s']:.2f} s overlap"))  # fmt: skip
    elif check.metric == "longest_silence_s" and metrics.get("longest_silence"):
        gap = metrics["longest_silence"]
        after = next((x for x in call.lines if x.start_s >= gap["end_s"] - 1e-6), None)
        if after is not None:
            cites.append(_cite(after, f"after {gap['end_s'] - gap['start_s']:.1f} s of silence"))
    elif check.metric == "max_question_wait_s":
        for q in metrics.get("question_waits", []):
            if q["wait_s"] == value:
                line = next(x for x in call.lines if x.segment_id == q["segment_id"]
                            and abs(x.start_s - q["start_s"]) < 1e-6)  # fmt: skip
                cites.append(_cite(line, f"answered after {q['wait_s']:.1f} s"))
    reason = f"{check.metric} = {value:g} (must be {' and '.join(bound)})"
    return base("passed" if ok else "failed", reason, tuple(cites))


def audit(
    lines: Sequence[Line],
    ruleset: RuleSet,
    *,
    duration_s: float | None = None,
    speech: dict[str, list[Interval]] | None = None,
) -> Scorecard:
    """Score one call: timing metrics, agitation, every rule and check, with citations.

    ``speech`` — voice-activity intervals per role — times the call when given (stereo
    audio, see :mod:`earwitness.qa.speech`); otherwise the lines' own times do.
    """
    call = _Call(lines, duration_s)
    agent = call.of("agent")
    customer = call.of("customer")
    agent_iv = speech["agent"] if speech else [(x.start_s, x.end_s) for x, _ in agent]
    customer_iv = speech["customer"] if speech else [(x.start_s, x.end_s) for x, _ in customer]
    timing = conversation_metrics(
        agent_iv,
        customer_iv,
        duration_s=call.duration,
        tokens={
            "agent": sum(tokens(x.text) for x, _ in agent),
            "customer": sum(tokens(x.text) for x, _ in customer),
        },
        params=ruleset.timing,
    )
    metrics = timing.as_dict()
    metrics["timing_source"] = "voice activity per channel" if speech else "transcript segments"
    ordered = sorted(customer, key=lambda p: (p[0].start_s, p[0].end_s))
    waits: list[dict[str, Any]] = []
    for i, (line, norm) in enumerate(ordered):
        if _QUESTION.search(norm):
            until = ordered[i + 1][0].start_s if i + 1 < len(ordered) else call.duration
            wait = answer_wait(line.end_s, agent_iv, until)
            if wait is not None:
                waits.append({"segment_id": line.segment_id, "start_s": line.start_s,
                              "wait_s": round(wait, 3)})  # fmt: skip
    metrics["question_waits"] = waits
    metrics["max_question_wait_s"] = max((float(w["wait_s"]) for w in waits), default=None)
    agit = agitation(
        [n for _, n in ordered], [x.loudness_db for x, _ in ordered], ruleset.agitation
    )
    agit_dict = agit.as_dict()
    for item in agit_dict["lines"]:
        line = ordered[item["index"]][0]
        item.update(segment_id=line.segment_id, start_s=line.start_s, text=line.text)
    metrics["agitation_start"], metrics["agitation_end"] = agit.start, agit.end
    metrics["agitation_calmed"] = agit.calmed
    findings = [evaluate_rule(rule, call) for rule in ruleset.rules]
    findings += [evaluate_check(check, metrics, call) for check in ruleset.checks]
    return Scorecard(
        score=score_of(findings),
        findings=findings,
        metrics=metrics,
        agitation=agit_dict,
        ruleset=ruleset.record(),
        rules=[r.record() for r in ruleset.rules],
    )
