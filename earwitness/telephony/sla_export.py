"""SLA figures as a flat table: the same rows for the CLI table, JSON, CSV and Excel.

A supervisor forwards these files, so each one says what it measured above the rows: the
target in words (``3 rings at the cn cadence (1 s on, 4 s off)``, never readable as a
5-second target) and the period with its zone. Pure: figures in, text or bytes out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Literal

from earwitness.telephony.sla import SlaFigures

ExportFormat = Literal["table", "json", "csv", "xlsx"]
EXPORT_FORMATS: tuple[str, ...] = ("table", "json", "csv", "xlsx")

COLUMNS: tuple[tuple[str, str], ...] = (
    ("group", "key"),
    ("offered", "offered"),
    ("answered", "answered"),
    ("answered within target", "answered_within_target"),
    ("SL %", "service_level_pct"),
    ("ASA s", "asa_s"),
    ("avg wait s", "avg_wait_s"),
    ("longest wait s", "longest_wait_s"),
    ("abandoned", "abandoned"),
    ("abandoned in first ring", "abandoned_first_ring"),
    ("abandon %", "abandon_rate_pct"),
    ("timeouts", "timeouts"),
    ("RONA", "rona_count"),
    ("rings (answered)", "rings_histogram"),
)


def cell(fig: SlaFigures, field: str) -> Any:
    """One cell: numbers stay numbers (rounded to 0.1), the histogram becomes ``1:3 2:1``."""
    value = getattr(fig, field)
    if field == "rings_histogram":
        return " ".join(f"{k}:{v}" for k, v in sorted(value.items()))
    if isinstance(value, float):
        return round(value, 1)
    return value


def heading(target: str, period: dict[str, Any], group_by: str) -> list[str]:
    """The lines above the rows: what, against which target, over which local period."""
    return [
        f"SLA by {group_by}",
        f"target: {target}",
        f"period: from {period.get('from') or 'the beginning'} "
        f"to {period.get('to') or 'now'} ({period.get('tz')})",
    ]


def to_csv(figures: Sequence[SlaFigures], head: Sequence[str]) -> str:
    """CSV with the heading as ``#`` comment lines, then one header row and the rows."""
    out = io.StringIO()
    for line in head:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([title for title, _ in COLUMNS])
    for fig in figures:
        writer.writerow(["" if (v := cell(fig, f)) is None else v for _, f in COLUMNS])
    return out.getvalue()


def to_xlsx(figures: Sequence[SlaFigures], head: Sequence[str]) -> bytes:
    """An Excel workbook (openpyxl): heading lines, a bold header row, numeric cells."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook always has its first sheet
    sheet.title = "SLA"
    for line in head:
        sheet.append([line])
    sheet.append([title for title, _ in COLUMNS])
    for item in sheet[sheet.max_row]:
        item.font = Font(bold=True)
    for fig in figures:
        sheet.append([cell(fig, f) for _, f in COLUMNS])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
