"""The coil report as a PDF, drawn with reportlab's canvas (no browser), in Korean with an
embedded TrueType font (Debian's fonts-nanum, ``[report] font``).

Pages: 1 the coil, its schedule, completeness, grade and a summary; 2 the coil map (top and
bottom), the table by type and metre and the periodic series; 3 the worst defects' images;
then the defect list, ``TABLE_ROWS_PER_PAGE`` a page (``CoilReport.pages`` says how many).
Everything here is CPU work: :class:`PdfRenderer` runs it in a thread, never on the reactor.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from ccl.adapters.image_files import inside
from ccl.adapters.peer_images import fetch_from_holders
from ccl.adapters.reports.settings import ReportSettings
from ccl.domain.plant_time import plant_text
from ccl.domain.coil_report import (COMPLETENESS_KO, DISPOSITION_KO, REVIEW_KO, SEVERITY_KO, SEVERITY_RANK,
                                    SURFACE_KO, TABLE_ROWS_PER_PAGE, CoilReport, ReportDefect, grade_reasons,
                                    severity_counts, table_by_type_and_metre, worst_defects)
from ccl.ports import IPeerImages
from ccl.ports.reports import IReportRenderer

log = Logger()

REGULAR, BOLD = "CCL-Korean", "CCL-Korean-Bold"
_fonts_lock = threading.Lock()
_fonts_registered: dict[str, Path] = {}

#: Marker colours by defect type (the UI's coil map uses the same order of hues).
PALETTE = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
MARKER_RADIUS = {"low": 1.6, "medium": 2.3, "high": 3.0, "critical": 3.8}


def register_fonts(settings: ReportSettings) -> None:
    """Register the Korean fonts with reportlab once per process (thread-safe)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    with _fonts_lock:
        for name, path in ((REGULAR, settings.font), (BOLD, settings.font_bold)):
            if _fonts_registered.get(name) != path:
                pdfmetrics.registerFont(TTFont(name, str(path)))
                _fonts_registered[name] = path


def _num(value, digits: int = 0, unit: str = "") -> str:
    if value is None or value == "":
        return "-"
    try:
        return f"{float(value):,.{digits}f}{unit}"
    except (TypeError, ValueError):
        return str(value)


def _yes(value) -> str:
    return "-" if value is None else ("예" if value else "아니오")


class _Document:
    """A reportlab canvas with a cursor, headings, key-value grids and the page footer."""

    MARGIN = 40.0

    def __init__(self, report: CoilReport, out):
        from reportlab.lib.pagesizes import A4
        from reportlab.pdfgen import canvas

        self.report = report
        self.width, self.height = A4
        self.canvas = canvas.Canvas(out, pagesize=A4, pageCompression=1)
        self.canvas.setTitle(f"코일 검사 보고서 {report.coil_number}")
        self.canvas.setAuthor("CCL plant server")
        self.canvas.setSubject(f"Coil inspection report {report.coil_number}")
        self.page = 1
        self.y = self.height - self.MARGIN

    @property
    def inner(self) -> float:
        return self.width - 2 * self.MARGIN

    def font(self, size: float, bold: bool = False) -> None:
        self.canvas.setFont(BOLD if bold else REGULAR, size)

    def colour(self, hex_colour: str) -> None:
        from reportlab.lib import colors

        self.canvas.setFillColor(colors.HexColor(hex_colour))
        self.canvas.setStrokeColor(colors.HexColor(hex_colour))

    def text(self, x: float, y: float, text: str, size: float = 9, bold: bool = False, right: bool = False,
             width: float | None = None) -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        self.font(size, bold)
        name = BOLD if bold else REGULAR
        if width is not None:  # cut to fit, marked with an ellipsis
            while text and stringWidth(text, name, size) > width:
                text = text[:-2] + "…"
        (self.canvas.drawRightString if right else self.canvas.drawString)(x, y, text)

    def heading(self, text: str, size: float = 12) -> None:
        self.y -= size + 8
        self.colour("#1f3b5c")
        self.text(self.MARGIN, self.y, text, size, bold=True)
        self.canvas.setLineWidth(0.6)
        self.canvas.line(self.MARGIN, self.y - 3, self.width - self.MARGIN, self.y - 3)
        self.colour("#000000")
        self.y -= 8

    def line(self, text: str, size: float = 9, indent: float = 0, colour: str = "#000000") -> None:
        self.y -= size + 4
        self.colour(colour)
        self.text(self.MARGIN + indent, self.y, text, size, width=self.inner - indent)
        self.colour("#000000")

    def pairs(self, items: Sequence[tuple[str, str]], columns: int = 2, size: float = 9) -> None:
        """Label: value pairs in ``columns`` columns."""
        column = self.inner / columns
        for start in range(0, len(items), columns):
            self.y -= size + 5
            for i, (label, value) in enumerate(items[start:start + columns]):
                x = self.MARGIN + i * column
                self.colour("#555555")
                self.text(x, self.y, label, size, width=column * 0.38)
                self.colour("#000000")
                self.text(x + column * 0.4, self.y, value or "-", size, width=column * 0.58)

    def footer(self) -> None:
        self.colour("#666666")
        self.text(self.MARGIN, 22, f"작성 {plant_text(self.report.generated_at, '%Y-%m-%d %H:%M')} (KST)", 7)
        self.text(self.width - self.MARGIN, 22,
                  f"CCL 코일 검사 보고서 · {self.report.coil_number} · {self.page} / {self.report.pages} 쪽", 7,
                  right=True)
        self.colour("#000000")

    def next_page(self) -> None:
        self.footer()
        self.canvas.showPage()
        self.page += 1
        self.y = self.height - self.MARGIN

    def finish(self) -> None:
        self.footer()
        self.canvas.showPage()
        self.canvas.save()


def _summary_page(doc: _Document) -> None:
    r = doc.report
    doc.y -= 20
    doc.text(doc.MARGIN, doc.y, "코일 검사 보고서", 20, bold=True)
    doc.colour("#666666")
    doc.text(doc.width - doc.MARGIN, doc.y, "Coil inspection report", 10, right=True)
    doc.colour("#000000")
    doc.y -= 26
    doc.text(doc.MARGIN, doc.y, f"코일 번호  {r.coil_number}", 16, bold=True)

    doc.heading("코일 및 스케줄 (TC 4000)")
    s = r.schedule
    if s is None:
        doc.line("스케줄(TC 4000)을 받지 못한 코일입니다 (no schedule received).", colour="#a33")
    else:
        thickness = _num(s.get("thickness"), 3, " mm")
        doc.pairs([("고객사", s.get("customer_name") or "-"), ("BOM", s.get("ccl_bom") or "-"),
                   ("품명", s.get("product_group") or "-"), ("재질", s.get("material_code") or "-"),
                   ("MO 번호", s.get("mo_number") or "-"), ("두께 × 폭", f"{thickness} × {_num(s.get('width'), 0, ' mm')}"),
                   ("중량", _num(s.get("weight"), 0, " kg")), ("길이 (MES)", _num(s.get("length_value"), 0, " m")),
                   ("통판", s.get("through_plate") or "-"), ("순서", _num(s.get("sequence_order"))),
                   ("라인", s.get("line_code") or "-"), ("스케줄 수신", plant_text(s.get("received_at")))])

    doc.heading("검사 완전성 (코일 추적)")
    t = r.tracking
    if t is None:
        doc.line("추적 정보 없음: 이 코일은 아직 추적되지 않았습니다 (not tracked). 결함 위치는 박스가 보낸 값입니다.",
                 colour="#a33")
    else:
        coverage = t.get("coverage") or {}
        cameras = ", ".join(f"{SURFACE_KO.get(cam, cam)} {'미상' if share is None else _num(share * 100, 1, ' %')}"
                            for cam, share in sorted(coverage.items())) or "-"
        length = _num(t.get("length_m"), 1, " m")
        if t.get("length_uncertainty_m") is not None:
            length += f" ± {_num(t.get('length_uncertainty_m'), 1)} m"
        doc.pairs([("추적 코일", t.get("tracked_coil") or "-"),
                   ("완전성", COMPLETENESS_KO.get(t.get("completeness"), str(t.get("completeness")))),
                   ("길이 (추적)", length), ("길이 (MES)", _num(t.get("mes_length_m"), 0, " m")),
                   ("길이 불일치", _yes(t.get("length_disagrees"))), ("스케줄 수신", _yes(t.get("schedule_present"))),
                   ("WPD 확인", _yes(t.get("wpd_seen"))), ("속도 연속", _yes(t.get("speed_gap_free"))),
                   ("절단 확인", _yes(t.get("cut_seen"))), ("카메라별 검사율", cameras),
                   ("선단 WPD", plant_text(t.get("head_wpd_at"))), ("후단 WPD", plant_text(t.get("tail_wpd_at")))])
        exits = [f"{e.get('coil_number')} ({_num(e.get('start_m'), 1)}-{_num(e.get('end_m'), 1)} m"
                 f"{', 스크랩' if e.get('scrap') else ''})" for e in t.get("exit_coils") or []]
        if exits:
            doc.line("출구 코일: " + ", ".join(exits))

    doc.heading("등급 및 판정")
    g = r.grade
    if g is None:
        doc.line("등급 없음 / not graded: 이 코일은 아직 등급이 매겨지지 않았습니다 (코일 완료 시 판정).", colour="#a33")
    else:
        grade = g.get("final_grade") or g.get("grade")
        disposition = g.get("final_disposition") or g.get("disposition")
        doc.pairs([("등급", f"{grade}"), ("판정", DISPOSITION_KO.get(disposition, str(disposition))),
                   ("규칙 버전", _num(g.get("rule_version"))), ("판정 시각", plant_text(g.get("graded_at")))])
        if g.get("override_grade") or g.get("override_disposition"):
            doc.line(f"수동 변경 ({g.get('overridden_by') or '-'}, {plant_text(g.get('overridden_at'))}): "
                     f"{g.get('override_reason') or ''} (계산된 등급 {g.get('grade')}, "
                     f"{DISPOSITION_KO.get(g.get('disposition'), g.get('disposition'))})")
        reasons = grade_reasons(g)
        doc.line("사유: " + ("없음 (기본 등급)" if not reasons else ""))
        for reason in reasons[:12]:
            doc.line("· " + reason, indent=12)

    doc.heading("결함 요약")
    counts = severity_counts(r.defects)
    tracked = sum(1 for d in r.defects if d.tracked)
    reviews: dict[str, int] = {}
    for d in r.defects:
        reviews[d.review_status] = reviews.get(d.review_status, 0) + 1
    doc.pairs([("결함 수", f"{len(r.defects):,}"), ("추적 위치 / 박스 위치", f"{tracked:,} / {len(r.defects) - tracked:,}"),
               ("심각도별", ", ".join(f"{SEVERITY_KO[k]} {counts[k]:,}" for k in reversed(list(SEVERITY_RANK)))),
               ("검토", ", ".join(f"{REVIEW_KO.get(k, k)} {v:,}" for k, v in sorted(reviews.items())) or "-")])
    doc.next_page()


def _type_colours(defects: Sequence[ReportDefect]) -> dict[str, str]:
    kinds = sorted({d.defect_type for d in defects})
    return {kind: PALETTE[i % len(PALETTE)] for i, kind in enumerate(kinds)}


def _nice_step(length: float) -> float:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if length / step <= 10:
            return float(step)
    return 10_000.0


def _map_panel(doc: _Document, surface: str, defects: Sequence[ReportDefect], length: float | None,
               colours: dict[str, str], series: Sequence[dict] | None) -> None:
    c = doc.canvas
    height, left = 110.0, doc.MARGIN + 28
    width = doc.inner - 28
    doc.y -= 14
    doc.text(doc.MARGIN, doc.y, f"{SURFACE_KO.get(surface, surface)} ({surface})", 10, bold=True)
    top = doc.y - 6
    bottom = top - height
    c.setLineWidth(0.5)
    doc.colour("#f2f4f7")
    c.rect(left, bottom, width, height, stroke=0, fill=1)
    doc.colour("#888888")
    c.rect(left, bottom, width, height, stroke=1, fill=0)
    doc.text(doc.MARGIN, bottom + height / 2, "폭", 7)
    doc.text(left - 4, bottom, "0", 6, right=True)
    doc.text(left - 4, top - 6, "1", 6, right=True)
    placed = [d for d in defects if d.metre is not None]
    if length:
        step = _nice_step(length)
        tick = 0.0
        while tick <= length + 1e-9:
            x = left + width * tick / length
            doc.colour("#888888")
            c.line(x, bottom, x, bottom - 3)
            doc.text(x - 6, bottom - 11, f"{tick:g}", 6)
            tick += step
        doc.text(left + width, bottom - 20, "코일 선단부터 (m)", 7, right=True)
        for d in sorted(placed, key=lambda d: SEVERITY_RANK.get(d.severity, 0)):
            x = left + width * min(max(d.metre / length, 0.0), 1.0)
            radius = MARKER_RADIUS.get(d.severity, 2.0)
            doc.colour(colours[d.defect_type])
            if d.across is None:  # place across unknown: hollow, on the centre line
                c.circle(x, bottom + height / 2, radius, stroke=1, fill=0)
            else:
                c.circle(x, bottom + height * (1.0 - float(d.across)), radius, stroke=0, fill=1)
        for s in series or ():
            if s.get("surface") != surface or not s.get("pitch_m"):
                continue
            doc.colour("#000000")
            metre = float(s["start_m"])
            while metre <= float(s["end_m"]) + 1e-6:
                x = left + width * min(max(metre / length, 0.0), 1.0)
                c.line(x, top, x, top + 4)
                metre += float(s["pitch_m"])
            x = left + width * min(max(float(s["start_m"]) / length, 0.0), 1.0)
            doc.text(x + 2, top - 8, f"{s.get('defect_type')} 주기 {float(s['pitch_m']):.2f} m"
                     + (f" ({s['likely_roll']})" if s.get("likely_roll") else ""), 6)
    else:
        doc.text(left + 8, bottom + height / 2, "코일 길이를 모릅니다: 지도를 그릴 수 없습니다.", 8)
    doc.colour("#000000")
    unplaced = len(defects) - len(placed)
    if unplaced:
        doc.text(left + width, top + 2, f"위치 미상 {unplaced}건", 7, right=True)
    doc.y = bottom - 24


def _map_page(doc: _Document) -> None:
    r = doc.report
    length = r.length_m
    colours = _type_colours(r.defects)
    doc.heading("코일 맵 (결함 위치: 길이 방향 × 폭 방향)")
    doc.line("색 = 결함 유형, 크기 = 심각도, 빈 원 = 폭 방향 위치 미상 (중앙선). 위치: 코일 추적의 미터 (추적 전: 박스의 값).", 7)
    surfaces = ["top", "bottom"] + sorted({d.surface for d in r.defects} - {"top", "bottom"})
    for surface in surfaces:
        _map_panel(doc, surface, [d for d in r.defects if d.surface == surface], length, colours, r.series)
    x = doc.MARGIN
    doc.y -= 2
    for kind, colour in colours.items():
        doc.colour(colour)
        doc.canvas.circle(x + 3, doc.y + 3, 3, stroke=0, fill=1)
        doc.colour("#000000")
        doc.text(x + 9, doc.y, kind, 7)
        x += 80
        if x > doc.width - doc.MARGIN - 80:
            x = doc.MARGIN
            doc.y -= 11
    doc.y -= 6

    edges, rows = table_by_type_and_metre(r.defects, length)
    doc.heading("유형 × 위치별 결함 수")
    widths = [65.0] + [33.0] * len(edges) + [36.0, 30.0, 54.0]
    headers = ["유형"] + [f"{a:.0f}~" for a, _ in edges] + ["위치 미상", "합계", "최고 심각도"]
    _table(doc, headers, [[row.defect_type, *(str(n) if n else "·" for n in row.bands), str(row.unplaced or "·"),
                           str(row.total), SEVERITY_KO.get(row.worst, row.worst)] for row in rows] or [["결함 없음"]],
           widths, size=6.5)
    if edges:
        doc.line(f"구간: 코일 선단부터의 미터 (각 구간 {edges[0][1]:,.0f} m)", 7, colour="#666666")

    doc.heading("주기성 결함 (롤 마크)")
    if not r.series:
        doc.line("이 코일에서 확인된 주기성 결함 계열이 없습니다.")
    else:
        _table(doc, ["유형", "면", "주기 (m)", "구간 (m)", "결함 수 / 예상", "추정 롤", "상태"],
               [[s.get("defect_type", ""), SURFACE_KO.get(s.get("surface"), str(s.get("surface"))),
                 _num(s.get("pitch_m"), 3), f"{_num(s.get('start_m'), 1)}-{_num(s.get('end_m'), 1)}",
                 f"{s.get('members')} / {s.get('expected')}", s.get("likely_roll") or "-",
                 {"final": "확정", "live": "진행 중"}.get(s.get("status"), str(s.get("status")))]
                for s in r.series[:20]], [80.0, 40.0, 60.0, 100.0, 80.0, 95.0, 60.0])
    doc.next_page()


def _table(doc: _Document, headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float],
           size: float = 7.5, row_height: float | None = None) -> None:
    row_height = row_height or size + 6
    doc.y -= row_height
    doc.colour("#e6ebf2")
    doc.canvas.rect(doc.MARGIN, doc.y - 3, sum(widths), row_height, stroke=0, fill=1)
    doc.colour("#000000")
    x = doc.MARGIN
    for header, width in zip(headers, widths):
        doc.text(x + 2, doc.y, header, size, bold=True, width=width - 3)
        x += width
    for row in rows:
        doc.y -= row_height
        x = doc.MARGIN
        for value, width in zip(row, widths):
            doc.text(x + 2, doc.y, str(value), size, width=width - 3)
            x += width


def _thumbnail(defect: ReportDefect, image_root: Path | None, fetched: Mapping[int, bytes]):
    """A reportlab ImageReader of the defect's best image (labeled thumbnail first, from the
    local store, else as fetched from the host holding it), or None."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    sources: list = [inside(image_root, stored) for stored in defect.image_paths] if image_root else []
    if defect.id in fetched:
        sources.append(io.BytesIO(fetched[defect.id]))
    for path in sources:
        if path is None:
            continue
        try:
            with Image.open(path) as image:
                image.draft("RGB", (500, 340))
                image.thumbnail((500, 340))
                return ImageReader(image.convert("RGB"))
        except Exception as error:  # a broken file: the next one, or "no image"
            where = str(path) if isinstance(path, Path) else "fetched from its host"
            log.warn("report: image {path} of defect {id} unreadable: {error}", path=where, id=defect.id, error=error)
    return None


def _images_page(doc: _Document, image_root: Path | None, count: int, fetched: Mapping[int, bytes]) -> None:
    r = doc.report
    worst = worst_defects(r.defects, count)
    doc.heading(f"주요 결함 이미지 (심각도·신뢰도 순 상위 {count})")
    if not worst:
        doc.line("이미지가 있는 결함이 없습니다.")
    cell_w, cell_h = doc.inner / 2, 200.0
    for i, defect in enumerate(worst):
        column, row = i % 2, i // 2
        x = doc.MARGIN + column * cell_w
        top = doc.y - row * cell_h
        image = _thumbnail(defect, image_root, fetched)
        box_w, box_h = cell_w - 12, cell_h - 40
        if image is None:
            doc.colour("#999999")
            doc.canvas.rect(x, top - box_h, box_w, box_h, stroke=1, fill=0)
            doc.text(x + 8, top - box_h / 2, "이미지 없음 (삭제되었거나 읽을 수 없음)", 8)
        else:
            doc.canvas.drawImage(image, x, top - box_h, box_w, box_h, preserveAspectRatio=True, anchor="sw")
        doc.colour("#000000")
        where = "-" if defect.metre is None else f"{defect.metre:,.1f} m" + ("" if defect.tracked else " (박스)")
        doc.text(x, top - box_h - 12, f"#{defect.id} {defect.defect_type} · {SEVERITY_KO.get(defect.severity)}"
                 f" · 신뢰도 {defect.confidence:.2f}", 8, bold=True, width=box_w)
        doc.text(x, top - box_h - 23, f"{SURFACE_KO.get(defect.surface, defect.surface)} · {where}"
                 f" · {plant_text(defect.detected_at)} · {REVIEW_KO.get(defect.review_status, defect.review_status)}",
                 7, width=box_w)
    doc.next_page()


def _defect_pages(doc: _Document) -> None:
    r = doc.report
    headers = ["번호", "ID", "위치 (m)", "± m", "출처", "면", "유형", "심각도", "신뢰도", "폭 방향", "검토", "검출 시각 (KST)"]
    widths = [28.0, 44.0, 46.0, 30.0, 26.0, 28.0, 70.0, 34.0, 34.0, 34.0, 40.0, 81.0]
    pages = r.table_pages
    for page in range(pages):
        chunk = r.defects[page * TABLE_ROWS_PER_PAGE:(page + 1) * TABLE_ROWS_PER_PAGE]
        doc.heading(f"결함 목록 ({page + 1} / {pages})")
        if not chunk:
            doc.line("이 코일에는 결함이 없습니다.")
        _table(doc, headers, [[str(page * TABLE_ROWS_PER_PAGE + i + 1), str(d.id), _num(d.metre, 2),
                               _num(d.uncertainty_m, 1), "추적" if d.tracked else ("박스" if d.metre is not None else "-"),
                               SURFACE_KO.get(d.surface, d.surface), d.defect_type, SEVERITY_KO.get(d.severity, d.severity),
                               f"{d.confidence:.3f}", _num(d.across, 2), REVIEW_KO.get(d.review_status, d.review_status),
                               plant_text(d.detected_at)] for i, d in enumerate(chunk)] if chunk else [],
               widths, size=7, row_height=15.5)
        if page + 1 < pages:
            doc.next_page()


def render_pdf(report: CoilReport, settings: ReportSettings, image_root: Path | None,
               fetched: Mapping[int, bytes] | None = None) -> bytes:
    """The whole PDF (blocking: call it in a thread). ``fetched``: defect id -> the bytes of its
    image from the host holding it, for the worst defects whose image the local store lacks."""
    register_fonts(settings)
    out = io.BytesIO()
    doc = _Document(report, out)
    _summary_page(doc)
    _map_page(doc)
    _images_page(doc, image_root, settings.worst_images, fetched or {})
    _defect_pages(doc)
    doc.finish()
    if doc.page != report.pages:  # the plan and the drawing must agree (a footer says "n / pages")
        raise AssertionError(f"drew {doc.page} pages, planned {report.pages}")
    return out.getvalue()


@implementer(IReportRenderer)
class PdfRenderer:
    """Draws reports in the reactor's thread pool."""

    def __init__(self, settings: ReportSettings, image_root: Path | None, peers: IPeerImages | None = None):
        self._settings = settings
        self._image_root = image_root
        self._peers = peers

    def render(self, report: CoilReport):
        return defer.ensureDeferred(self._render(report))

    async def _render(self, report: CoilReport) -> bytes:
        fetched: dict[int, bytes] = {}
        if self._peers is not None and self._image_root is not None:
            # Two plant servers: the worst defects' images this store lacks, from their holders.
            worst = worst_defects(report.defects, self._settings.worst_images)
            missing = await threads.deferToThread(
                lambda: [d for d in worst if d.held_by and not any(inside(self._image_root, p) for p in d.image_paths)])
            fetched = await fetch_from_holders(self._peers, {d.id: d.held_by for d in missing})
        return await threads.deferToThread(render_pdf, report, self._settings, self._image_root, fetched)
