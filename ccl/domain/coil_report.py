"""What a coil's report says (the PDF of ``/coils/{coil}/report.pdf`` and ``ccl report``) and
its defects as CSV: the facts gathered, the worst defects picked, the defect table by type and
metre, the page plan. Pure: the storage reads the rows, an adapter draws the pages.

A defect's metre is where coil tracking placed it on the coil (``tracking_defects.metre``,
docs/tracking.md); a defect tracking has not placed keeps the box's own metre, marked as such.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
SEVERITY_KO = {"low": "낮음", "medium": "보통", "high": "높음", "critical": "치명"}
REVIEW_KO = {"new": "미검토", "confirmed": "확인", "false_positive": "오검출", "reclassified": "재분류"}
COMPLETENESS_KO = {"complete": "완전", "partial": "부분", "unknown": "미상 (하트비트 없음)", "running": "진행 중"}
DISPOSITION_KO = {"ship": "출하", "hold": "보류 (검토)", "downgrade": "등급 하향", "scrap": "폐기"}
SURFACE_KO = {"top": "상면", "bottom": "하면"}

#: Rows of the defect list on one page, and the pages before it (summary; coil map, table by
#: type and metre, periodic series; worst defects' images).
TABLE_ROWS_PER_PAGE = 40
PAGES_BEFORE_TABLE = 3
#: Metre bands of the table by type and metre.
METRE_BANDS = 10


@attrs.frozen
class ReportDefect:
    id: int
    defect_type: str
    severity: str
    confidence: float
    detected_at: str  # ISO 8601, as stored
    camera_id: str
    surface: str  # top | bottom (or the camera id when tracking does not know the surface)
    metre: float | None  # tracked metre from the coil's head, or the box's metre (tracked False)
    tracked: bool
    uncertainty_m: float | None = None
    across: float | None = None  # 0..1 of the strip width, from the defect's place in its image
    width_px: int | None = None
    height_px: int | None = None
    review_status: str = "new"
    original_type: str | None = None
    model: str | None = None
    image_paths: tuple[str, ...] = ()  # stored paths to try for a thumbnail, best first
    #: (host, kind, file name) of the images as their holders serve them (images.stored_on), best
    #: first: for an image the local store lacks (two plant servers).
    held_by: tuple[tuple[str, str, str], ...] = ()
    periodic_series: int | None = None

    @property
    def rank(self) -> tuple:
        """Worst first: severity, then confidence, then the older id."""
        return (-SEVERITY_RANK.get(self.severity, 0), -self.confidence, self.id)


@attrs.frozen
class CoilReport:
    coil_number: str
    generated_at: datetime.datetime
    schedule: dict[str, Any] | None  # newest TC 4000 row
    tracking: dict[str, Any] | None  # tracking_coils row (None: not tracked)
    defects: tuple[ReportDefect, ...]
    #: The coil's stored grade (coil_grades, docs/quality.md; None: not graded yet).
    grade: dict[str, Any] | None = None
    #: Periodic (roll-mark) series found on the coil (periodic_series).
    series: tuple[dict[str, Any], ...] = ()

    @property
    def length_m(self) -> float | None:
        """The coil's length for the map: tracked, else the MES length, else the furthest defect."""
        for value in ((self.tracking or {}).get("length_m"), (self.schedule or {}).get("length_value")):
            if value:
                return float(value)
        metres = [d.metre for d in self.defects if d.metre is not None]
        return max(metres) if metres else None

    @property
    def table_pages(self) -> int:
        return max(1, math.ceil(len(self.defects) / TABLE_ROWS_PER_PAGE))

    @property
    def pages(self) -> int:
        return PAGES_BEFORE_TABLE + self.table_pages


def worst_defects(defects: Iterable[ReportDefect], count: int) -> list[ReportDefect]:
    """The ``count`` worst defects that have an image to show."""
    return sorted((d for d in defects if d.image_paths), key=lambda d: d.rank)[:count]


def severity_counts(defects: Iterable[ReportDefect]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITY_RANK, 0)
    for d in defects:
        counts[d.severity] = counts.get(d.severity, 0) + 1
    return counts


@attrs.frozen
class TypeRow:
    defect_type: str
    bands: tuple[int, ...]
    unplaced: int  # no metre known
    total: int
    worst: str


def table_by_type_and_metre(defects: Sequence[ReportDefect], length_m: float | None,
                            bands: int = METRE_BANDS) -> tuple[list[tuple[float, float]], list[TypeRow]]:
    """Counts per defect type (most frequent first) in ``bands`` equal metre bands of the coil."""
    edges = []
    if length_m and length_m > 0:
        step = length_m / bands
        edges = [(i * step, (i + 1) * step) for i in range(bands)]
    rows: dict[str, list] = {}
    for d in defects:
        row = rows.setdefault(d.defect_type, [[0] * len(edges), 0, 0, "low"])
        if d.metre is None or not edges:
            row[1] += 1
        else:
            index = min(len(edges) - 1, max(0, int(d.metre / (length_m / bands))))
            row[0][index] += 1
        row[2] += 1
        if SEVERITY_RANK.get(d.severity, 0) > SEVERITY_RANK.get(row[3], 0):
            row[3] = d.severity
    ordered = sorted(rows.items(), key=lambda item: (-item[1][2], item[0]))
    return edges, [TypeRow(t, tuple(r[0]), r[1], r[2], r[3]) for t, r in ordered]


CSV_HEADERS = ("결함 ID", "검출 시각", "유형", "원래 유형", "심각도", "신뢰도", "면", "카메라", "위치 (m)",
               "위치 출처", "위치 불확도 (m)", "폭 방향 (0-1)", "크기 폭 (px)", "크기 높이 (px)", "검토 상태",
               "모델", "주기성 계열")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell starting like a formula would run as one in a spreadsheet: quote it."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def csv_rows(defects: Iterable[ReportDefect]) -> Iterable[list[Any]]:
    for d in defects:
        yield [d.id, d.detected_at, d.defect_type, d.original_type or "", SEVERITY_KO.get(d.severity, d.severity),
               f"{d.confidence:.3f}", SURFACE_KO.get(d.surface, d.surface), d.camera_id, _number(d.metre, 2),
               "추적" if d.tracked else ("박스" if d.metre is not None else ""), _number(d.uncertainty_m, 2),
               _number(d.across, 3), "" if d.width_px is None else d.width_px,
               "" if d.height_px is None else d.height_px, REVIEW_KO.get(d.review_status, d.review_status),
               d.model or "", "" if d.periodic_series is None else d.periodic_series]


def defects_csv(defects: Iterable[ReportDefect]) -> bytes:
    """The defects as CSV for Excel: UTF-8 with a BOM, Korean headers, CRLF, formula-safe cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    writer.writerows([spreadsheet_safe(v) for v in row] for row in csv_rows(defects))
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


def grade_reasons(grade: dict[str, Any] | None) -> list[str]:
    """The stored reasons of a grade as lines of text (strings, or rules with their reasons)."""
    if not grade:
        return []
    lines = []
    for reason in grade.get("reasons") or []:
        if isinstance(reason, str):
            lines.append(reason)
        elif isinstance(reason, dict):
            head = reason.get("rule") or reason.get("name") or ""
            if reason.get("grade") or reason.get("disposition"):
                decided = DISPOSITION_KO.get(reason.get("disposition"), reason.get("disposition") or "")
                head += f" (→ {reason.get('grade') or '-'}, {decided})"
            said = reason.get("reasons") or reason.get("reason") or []
            said = [said] if isinstance(said, str) else list(said)
            lines.append(f"{head}: {', '.join(map(str, said))}" if head else ", ".join(map(str, said)))
        else:
            lines.append(str(reason))
    return lines
