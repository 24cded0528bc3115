"""QA audit of 10,000 stored transcripts: earwitness vs a naive per-rule re-scan.

Input: 10,000 transcripts (about 9 segments each, English and Mandarin, the test calls of
``tests/qa_calls.py`` with every variant and shifted times) stored in a SQLite database
through the real schema. Both sides read the same rows with one streamed query, then:

- ours: :func:`earwitness.qa.audit` with the shipped rules — one compiled alternation per
  rule, text normalised once per line, linear-sweep timing metrics, agitation cues, checks
  and citations;
- baseline: what a script would do — for every rule, walk every line again, lower-case it
  and test each phrase (``in``) and regex (``re.search``) one by one; interruptions and
  silences by comparing every agent line with every customer line.

Best of two rounds each. ``ratio`` = baseline time / our time (>1: ours faster).
Run: ``python -m benchmarks qa``.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from earwitness.db import Database  # noqa: E402
from earwitness.migrations import upgrade  # noqa: E402
from earwitness.models import Recording, Segment, Transcript  # noqa: E402
from earwitness.qa import Line, audit, default_rules  # noqa: E402
from tests.qa_calls import EN_BROKEN, EN_MODEL, ZH_BROKEN, ZH_MODEL  # noqa: E402

CALLS = 10_000
ROUNDS = 2


def _store(db: Database) -> None:
    """CALLS transcripts via bulk inserts (fast set-up, not what is measured)."""
    variants = [("en", EN_MODEL), ("zh", ZH_MODEL)]
    variants += [("en", c) for _, c, _ in EN_BROKEN] + [("zh", c) for _, c, _ in ZH_BROKEN]
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(Recording), [{"id": i + 1, "state": "missing"} for i in range(CALLS)]
        )
        conn.execute(
            sa.insert(Transcript),
            [{"id": i + 1, "recording_id": i + 1, "model": "bench",
              "language": variants[i % len(variants)][0], "params": {}} for i in range(CALLS)],
        )  # fmt: skip
        rows = []
        for i in range(CALLS):
            shift = (i % 17) * 0.1
            for x in variants[i % len(variants)][1]:
                rows.append({"transcript_id": i + 1, "channel": 0 if x.role == "customer" else 1,
                             "role": x.role, "start_s": x.start_s + shift,
                             "end_s": x.end_s + shift, "text": x.text})  # fmt: skip
        conn.execute(sa.insert(Segment), rows)


def _calls(db: Database) -> Iterator[tuple[str, list[Line]]]:
    """Every stored transcript as (language, lines), one streamed query."""
    query = (
        sa.select(Segment.transcript_id, Transcript.language, Segment.id, Segment.role,
                  Segment.start_s, Segment.end_s, Segment.text)
        .join(Transcript, Transcript.id == Segment.transcript_id)
        .order_by(Segment.transcript_id, Segment.start_s)
    )  # fmt: skip
    with db.engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(query)
        for _, rows in groupby(result, key=lambda r: r[0]):
            batch = list(rows)
            yield batch[0][1] or "en", [Line(r[2], r[3], r[4], r[5], r[6]) for r in batch]


def ours(db: Database) -> dict[str, Any]:
    rules = {lang: default_rules(lang) for lang in ("en", "zh")}
    failed = 0
    n = 0
    for language, lines in _calls(db):
        failed += len(audit(lines, rules[language]).failed)
        n += 1
    return {"calls": n, "failed": failed}


def _naive_rule(raw: dict[str, Any], lines: list[Line]) -> bool:
    """True when some line of the role says a phrase (re-scanning all lines per rule)."""
    for line in lines:
        if line.role != raw.get("role", "agent"):
            continue
        text = line.text.lower()
        if any(p.lower() in text for p in raw.get("phrases", [])):
            return True
        if any(re.search(r, text) for r in raw.get("regex", [])):
            return True
    return False


def baseline_factory() -> Callable[[Database], dict[str, Any]]:
    import tomllib
    from importlib import resources

    raw = {
        lang: tomllib.loads(
            resources.files("earwitness.qa").joinpath(f"rules/{lang}.toml").read_text("utf-8")
        )["rule"]
        for lang in ("en", "zh")
    }

    def baseline(db: Database) -> dict[str, Any]:
        failed = 0
        n = 0
        for language, lines in _calls(db):
            for rule in raw[language]:
                hit = _naive_rule(rule, lines)
                failed += int(hit if rule.get("kind") == "forbidden" else not hit)
            agent = [x for x in lines if x.role == "agent"]
            customer = [x for x in lines if x.role == "customer"]
            cuts = sum(1 for a in agent for c in customer
                       if c.start_s < a.start_s < c.end_s - 0.3)  # fmt: skip
            ends = sorted(lines, key=lambda x: x.start_s)
            gaps = [b.start_s - a.end_s for a, b in zip(ends, ends[1:], strict=False)]
            failed += int(cuts > 0) + int(max(gaps, default=0) > 10)
            n += 1
        return {"calls": n, "failed": failed}

    return baseline


def _best(func: Callable[[Database], dict[str, Any]], db: Database) -> tuple[float, dict[str, Any]]:
    best, result = float("inf"), {}
    for _ in range(ROUNDS):
        start = time.perf_counter()
        result = func(db)
        best = min(best, time.perf_counter() - start)
    return best, result


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ew-bench-qa-") as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        upgrade(db.engine)
        _store(db)
        read_s, _ = _best(lambda d: {"n": sum(1 for _ in _calls(d))}, db)
        ours_s, ours_result = _best(ours, db)
        base_s, base_result = _best(baseline_factory(), db)
        db.dispose()
    assert ours_result["calls"] == base_result["calls"] == CALLS
    return [
        f"qa_metrics: ours {CALLS / ours_s:.0f} calls/s, baseline {CALLS / base_s:.0f} calls/s, "
        f"ratio {base_s / ours_s:.2f} ({CALLS} stored transcripts, SQLite; reading alone "
        f"{CALLS / read_s:.0f} calls/s)",
        f"  ours: {ours_result['failed']} failed rules/checks with citations, timing metrics, "
        f"agitation; baseline: {base_result['failed']} failed (no windows, triggers, fuzzy, "
        "echo, citations)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
