"""Issue 18, CLI: one red line and exit 2 for every usage error of every command; SLA
export; ``watch`` without a PBX; ``case show``; ``qa`` of a missing recording.

The usage-error tests walk the Click command tree Typer builds from the real app, so a
command added later is covered without editing this file.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from openpyxl import load_workbook
from sqlalchemy import insert

from earwitness import cli
from earwitness.cases import lifecycle as lc
from earwitness.cases.policy import Policy
from earwitness.config import load_settings
from earwitness.evidence.intake import IntakeRequest, intake
from earwitness.models import Recording, case_calls
from earwitness.runtime import Runtime
from tests.qa_calls import EN_MODEL
from tests.test_qa_store import add_call

CALL_AT = datetime(2026, 11, 30, 7, 6, tzinfo=ZoneInfo("Asia/Shanghai"))


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(cli.app)))
# A group that routes free words to a default command (``search <words>``) has no
# "unknown command": those words are its query.
GROUPS = [
    (p, c)
    for p, c in COMMANDS
    if getattr(c, "commands", None)
    and not (type(c).__module__.startswith("earwitness") and "parse_args" in type(c).__dict__)
]
LEAVES = [(p, c) for p, c in COMMANDS if not getattr(c, "commands", None)]
NEEDS_ARGS = [(p, c) for p, c in LEAVES if any(x.required for x in c.params)]


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> tuple[int, str, str]:
    """``earwitness ARGV`` in this process through the console-script entry point."""
    monkeypatch.setattr(sys, "argv", ["earwitness", *argv])
    code: int | str | None = 0
    try:
        cli.main()
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return int(code or 0), out.out, out.err


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("EARWITNESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("EARWITNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EARWITNESS_DEMO", "never")
    monkeypatch.chdir(tmp_path)


def _one_error_line(code: int, out: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert out == ""
    return lines[0]


def test_the_tree_walk_finds_every_registered_command() -> None:
    names = {" ".join(p) for p, _ in LEAVES}
    assert {"sla", "watch", "qa", "case show", "review", "db upgrade"} <= names
    assert len(LEAVES) >= 30 and ("case",) in [p for p, _ in GROUPS]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "earwitness"
                                                             for p, _ in COMMANDS])  # fmt: skip
def test_every_command_bad_option_is_one_line_exit_2(
    path: tuple[str, ...], command: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    line = _one_error_line(*run([*path, "--no-such-option-x"], monkeypatch, capsys))
    assert "No such option: --no-such-option-x" in line
    assert f"(see '{' '.join(('earwitness', *path))}" in line and "--help')" in line


@pytest.mark.parametrize(("path", "command"), GROUPS, ids=[" ".join(p) or "earwitness"
                                                           for p, _ in GROUPS])  # fmt: skip
def test_every_group_unknown_command_is_one_line_exit_2(
    path: tuple[str, ...], command: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    line = _one_error_line(*run([*path, "frobnicate"], monkeypatch, capsys))
    assert "No such command 'frobnicate'" in line


@pytest.mark.parametrize(("path", "command"), NEEDS_ARGS, ids=[" ".join(p)
                                                               for p, _ in NEEDS_ARGS])  # fmt: skip
def test_every_missing_argument_is_one_line_exit_2(
    path: tuple[str, ...], command: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    line = _one_error_line(*run(list(path), monkeypatch, capsys))
    assert "Missing" in line


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["sla", "--bogus"], "No such option: --bogus"),
        (["sla", "--days", "abc"], "Invalid value for '--days'"),
        (["qa", "--json"], "No such option: --json"),
        (["case", "show"], "Missing argument"),
        (["case", "show", "x"], "Invalid value"),
        (["nonsense"], "No such command 'nonsense'"),
        (["sla", "--days", "0"], "--days must be 1 or more"),
        (["sla", "--days", "-1"], "--days must be 1 or more"),
        (["sla", "--format", "pdf"], "--format must be table, json, csv or xlsx"),
        (["sla", "--format", "xlsx"], "needs --output"),
        (["sla", "--from", "whenever"], "not a date or time"),
        (["sla", "--days", "3", "--from", "today"], "not both"),
        (["sla", "--tz", "Mars/Olympus"], "unknown IANA time zone"),
    ],
)
def test_the_reported_usage_errors(
    argv: list[str], needle: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert needle in _one_error_line(*run(argv, monkeypatch, capsys))


@pytest.fixture
def one_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """One answered call at 07:06 Beijing with a transcript, filed on a case with a GPX."""
    monkeypatch.setenv("EARWITNESS_TIMEZONE", "Asia/Shanghai")
    runtime = Runtime.open(load_settings())
    try:
        recording_id = add_call(runtime, "Lucy", CALL_AT.astimezone(UTC), EN_MODEL, "en")
        with runtime.db.session() as session:
            case = lc.create_case(
                session,
                Policy(),
                actor="li",
                owner="Lucy Zhao",
                complainant_phone="13800138000",
                summary="Tow truck 80 minutes late on the airport expressway",
                opened_at=CALL_AT.astimezone(UTC),
                zone=ZoneInfo("Asia/Shanghai"),
            )
            recording = session.get(Recording, recording_id)
            assert recording is not None
            session.execute(insert(case_calls).values(case_id=case.id, call_id=recording.call_id))
            case.facts = {"items": [{"kind": "plate", "value": "京A12345", "status": "confirmed"}]}
            intake(
                session,
                runtime.blobs,
                IntakeRequest(case.id, "note.txt", "li", "upload", "document"),
                io.BytesIO(b"driver statement"),
            )
            case_id = case.id
        yield case_id, recording_id
    finally:
        runtime.close()


def test_sla_exports_csv_json_xlsx_for_a_local_period(
    one_call: tuple[int, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    period = ["--group-by", "day", "--from", "2026-11-30", "--to", "2026-11-30"]
    code, out, err = run(["sla", *period, "--format", "csv"], monkeypatch, capsys)
    assert code == 0, err
    comments = [x for x in out.splitlines() if x.startswith("#")]
    assert "# target: 3 rings at the cn cadence (1 s on, 4 s off)" in comments
    assert any("2026-11-30T00:00:00+08:00" in x and "Asia/Shanghai" in x for x in comments)
    rows = list(csv.DictReader(x for x in out.splitlines() if x and not x.startswith("#")))
    assert [(r["group"], r["offered"], r["answered"]) for r in rows] == [("2026-11-30", "1", "1")]

    code, out, err = run(["sla", *period, "--format", "json"], monkeypatch, capsys)
    data = json.loads(out)
    assert data["period"]["tz"] == "Asia/Shanghai" and data["groups"][0]["key"] == "2026-11-30"

    book_path = tmp_path / "sla.xlsx"
    code, out, err = run(["sla", *period, "--format", "xlsx", "-o", str(book_path)], monkeypatch,
                         capsys)  # fmt: skip
    assert code == 0, err
    sheet = load_workbook(book_path).active
    assert sheet is not None
    values = [row for row in sheet.iter_rows(values_only=True)]
    assert values[1][0] == "target: 3 rings at the cn cadence (1 s on, 4 s off)"
    header = list(values[3])
    day_row = dict(zip(header, values[4], strict=True))
    assert day_row["group"] == "2026-11-30" and day_row["offered"] == 1

    code, out, err = run(["sla", "--group-by", "hour", "--days", "3650", "--format", "json"],
                         monkeypatch, capsys)  # fmt: skip
    assert code == 0 and [g["key"] for g in json.loads(out)["groups"]] == ["2026-11-30T07:00+08:00"]


def test_watch_without_a_pbx_says_why(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, out, err = run(["watch", "--count", "1", "--interval", "0.01"], monkeypatch, capsys)
    assert code == 0, err
    assert "no PBX configured" in err and "EARWITNESS_AMI_HOST" in err


def test_case_show_prints_summary_facts_calls_evidence_owner(
    one_call: tuple[int, int], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    case_id, _ = one_call
    code, out, err = run(["case", "show", str(case_id)], monkeypatch, capsys)
    assert code == 0, err
    assert "summary: Tow truck 80 minutes late on the airport expressway" in out
    assert "owner: Lucy Zhao" in out
    assert "plate: 京A12345 (confirmed)" in out
    assert "2026-11-30 07:06 +08:00" in out  # the call, on the local clock
    assert "note.txt" in out and "document" in out  # the evidence
    code, out, err = run(["case", "show", str(case_id), "--json"], monkeypatch, capsys)
    data = json.loads(out)
    assert len(data["calls"]) == 1 and len(data["evidence"]) == 1 and data["facts"]


def test_qa_of_a_missing_recording_says_it_does_not_exist(
    one_call: tuple[int, int], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    line = _one_error_line(*run(["qa", "987654"], monkeypatch, capsys))
    assert "recording 987654 does not exist" in line


def test_qa_cli_shows_an_overridden_rule_as_overridden(
    one_call: tuple[int, int], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from earwitness.qa.store import audit_recording, set_override

    _, recording_id = one_call
    runtime = Runtime.open(load_settings())
    try:
        with runtime.db.session() as session:
            audit_recording(session, recording_id)
            set_override(session, recording_id, "greeting", "failed", "greeting was rushed", "qa")
    finally:
        runtime.close()
    from earwitness.qa import cli as qa_cli

    monkeypatch.setattr(qa_cli.console, "_width", 250)  # one table row per line
    code, out, err = run(["qa", str(recording_id)], monkeypatch, capsys)
    assert code == 0, err
    greeting = next(x for x in out.splitlines() if "greeting" in x and "overridden" in x)
    assert "machine: passed" in greeting and "greeting was rushed" in greeting
