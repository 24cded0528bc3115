"""Rules over transcripts with known truth (English and Mandarin), and bad rule files."""

from __future__ import annotations

from pathlib import Path

import pytest

from earwitness.errors import ConfigError
from earwitness.qa import Line, apply_overrides, audit, default_rules, load_rules, parse_rules
from earwitness.qa.audit import score_of
from tests.qa_calls import EN_BROKEN, EN_MODEL, ZH_BROKEN, ZH_MODEL


@pytest.mark.parametrize(("language", "call"), [("en", EN_MODEL), ("zh", ZH_MODEL)])
def test_model_call_passes_every_rule_and_check(language: str, call: list[Line]) -> None:
    card = audit(call, default_rules(language))
    assert card.failed == [], [f.reason for f in card.findings if f.status == "failed"]
    assert card.score == 100.0
    assert all(f.status == "passed" for f in card.findings)
    # every passed phrase rule cites the agent line that satisfied it
    for f in card.findings:
        if f.kind in ("required", "echo"):
            assert f.cites and f.cites[0].role == "agent" and f.cites[0].segment_id is not None


@pytest.mark.parametrize(
    ("language", "name", "call", "rule"),
    [("en", *case) for case in EN_BROKEN] + [("zh", *case) for case in ZH_BROKEN],
    ids=[f"en-{c[0]}" for c in EN_BROKEN] + [f"zh-{c[0]}" for c in ZH_BROKEN],
)
def test_each_broken_call_fails_exactly_its_rule(
    language: str, name: str, call: list[Line], rule: str
) -> None:
    card = audit(call, default_rules(language))
    assert card.failed == [rule], name
    assert card.score is not None and card.score < 100.0
    finding = next(f for f in card.findings if f.rule_id == rule)
    assert finding.cites, f"{rule} must cite the line that triggered it"


def test_citations_point_at_the_offending_line_and_time() -> None:
    _, call, _ = EN_BROKEN[0]  # agent line 3 starts at 9.0 s inside the customer's 4.6–10.0 s
    cut = next(
        f for f in audit(call, default_rules("en")).findings if f.rule_id == "no_interruptions"
    )
    assert cut.value == 1
    assert (cut.cites[0].segment_id, cut.cites[0].start_s) == (3, 9.0)
    assert "1.00 s overlap" in (cut.cites[0].match or "")

    _, call, _ = ZH_BROKEN[3]  # 这不归我们管 in line 7
    blame = next(f for f in audit(call, default_rules("zh")).findings if f.rule_id == "no_blame")
    assert [(c.segment_id, c.match) for c in blame.cites] == [(7, "不归我们管")]

    _, call, _ = EN_BROKEN[5]  # urgent request (stuck, child) not escalated: cite the cry for help
    miss = next(
        f for f in audit(call, default_rules("en")).findings if f.rule_id == "urgent_escalated"
    )
    assert miss.cites[0].segment_id == 2 and miss.cites[0].role == "customer"

    _, call, _ = EN_BROKEN[1]  # 15 s of silence before line 6
    gap = next(f for f in audit(call, default_rules("en")).findings if f.rule_id == "no_dead_air")
    assert gap.value == pytest.approx(15.5) and gap.cites[0].segment_id == 6


def test_apology_outside_the_window_does_not_count() -> None:
    late = [Line(1, "customer", 0.0, 5.0, "The truck is late again!"),
            Line(2, "agent", 70.0, 72.0, "I am sorry about that.")]  # fmt: skip
    apology = next(f for f in audit(late, default_rules("en")).findings if f.rule_id == "apology")
    assert apology.status == "failed" and apology.cites[0].segment_id == 1
    assert "within 60 s of the complaint" in apology.reason


def test_fuzzy_phrases_survive_recognition_errors() -> None:
    rules = parse_rules(
        '[[rule]]\nid = "apology"\nfuzzy = ["非常抱歉"]\nfuzzy_min = 70\nweight = 1\n'
    )
    # robotic speech: 抱歉 heard as 报欠
    call = [Line(1, "agent", 0.0, 2.0, "非常报歉让您久等了")]
    assert audit(call, rules).findings[0].status == "passed"


def test_overrides_replace_the_status_and_keep_the_machine_result() -> None:
    card = audit(EN_BROKEN[0][1], default_rules("en"))
    over = {"no_interruptions": {"status": "passed", "by": "qa1", "at": "t", "reason": "echo"}}
    findings = apply_overrides(card.findings, over)
    changed = next(f for f in findings if f.rule_id == "no_interruptions")
    assert changed.status == "passed" and changed.override is not None
    assert changed.override["machine_status"] == "failed"
    assert score_of(findings) == 100.0


def test_shipped_rules_are_package_data_and_record_their_parameters() -> None:
    for language in ("en", "zh"):
        rules = default_rules(language)
        assert rules.language == language and len(rules.rules) >= 12 and rules.checks
        record = rules.record()
        assert record["timing"]["interruption_min_overlap_ms"] == 300
        assert len(record["sha256"]) == 64
    card = audit(EN_MODEL, default_rules("en"))
    assert card.metrics["params"]["non_talk_min_ms"] == 3000
    assert card.ruleset["source"] == "builtin:en"


GOOD = '[[rule]]\nid = "hello"\nphrases = ["hello"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rule]]\nid = "a"\nphrases = ["x"\n', "not valid TOML"),
        (GOOD + 'colour = "red"\n', "rule 'hello'.colour (line 4): unknown key"),
        (GOOD + 'regex = ["(unclosed"]\n', "rule 'hello'.regex (line 4): bad regular expression"),
        (GOOD + 'anchor = "complaint"\n',
         "rule 'hello'.within_s (line 2): anchor 'complaint' needs within_s"),
        (GOOD + 'kind = "maybe"\n', "rule 'hello'.kind (line 4): must be one of"),
        (GOOD + "weight = -1\n", "rule 'hello'.weight (line 4): must be a number"),
        (GOOD + '[[rule]]\nid = "hello"\nphrases = ["x"]\n', "rule 'hello'.id"),
        ('[[rule]]\nid = "empty"\n', "rule 'empty' (line 2): needs at least one of"),
        (GOOD + '[[check]]\nid = "c"\nmetric = "happiness"\nmax = 1\n',
         "check 'c'.metric (line 6): must be one of"),
        (GOOD + '[timing]\nnon_talk_ms = 3\n', "[timing].non_talk_ms (line 5): unknown key"),
        ('title = "x"\n', "top level.title (line 1): unknown key"),
        (GOOD + '[rule.when]\nrole = "customer"\n', "[when]: needs phrases"),
    ],
)  # fmt: skip
def test_bad_rule_files_name_the_key_and_line(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert expected in info.value.detail and str(path) in info.value.detail


def test_toml_syntax_error_carries_the_line_number() -> None:
    with pytest.raises(ConfigError, match=r"line 3"):
        parse_rules('[[rule]]\nid = "a"\nphrases = ["x",, "y"]\n')
