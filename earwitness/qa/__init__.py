"""QA audit of complaint calls: conversation timing metrics, phrase rules, scorecards.

Public surface: :func:`audit` (pure: transcript lines + rules → scorecard),
:func:`conversation_metrics` (pure timing metrics), :func:`load_rules` /
:func:`default_rules` (TOML rule files, Chinese and English defaults shipped).
Storage, jobs, the CLI and reports are in their own modules.
"""

from earwitness.qa.audit import Cite, Finding, Line, Scorecard, apply_overrides, audit, score_of
from earwitness.qa.rules import RuleSet, default_rules, load_rules, parse_rules, rules_for
from earwitness.qa.timing import TimingMetrics, TimingParams, conversation_metrics

__all__ = [
    "Cite",
    "Finding",
    "Line",
    "RuleSet",
    "Scorecard",
    "TimingMetrics",
    "TimingParams",
    "apply_overrides",
    "audit",
    "conversation_metrics",
    "default_rules",
    "load_rules",
    "parse_rules",
    "rules_for",
    "score_of",
]
