"""The coil report: ``GET /coils/{coil}/report.pdf`` and ``/coils/{coil}/defects.csv`` over real
HTTP against a real PostgreSQL (seeded line, tests/support/ui_data.py), and ``ccl report`` as a
real subprocess. The PDFs are read back with poppler (pdfinfo, pdftotext, pdffonts, pdftoppm:
poppler-utils, installed by scripts/install-system-packages.sh); the first page is kept as
test-artifacts/screenshots/report-page-1.png to look at."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from ccl.domain.coil_report import PAGES_BEFORE_TABLE, TABLE_ROWS_PER_PAGE
from tests.support.ui import json_of, start_ui
from tests.support.ui_data import CURRENT, PREVIOUS, seed_line
from tests.test_cli_create_user import run_cli
from tests.test_ui_data_pages import NOW

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
MANY = "C26B0100"


def run(coroutine_function):
    def test(self):
        return defer.ensureDeferred(coroutine_function(self))

    test.__name__, test.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return test


def poppler(tool: str, *args: str) -> str:
    return subprocess.run([tool, *args], capture_output=True, text=True, check=True).stdout


def track_current(sql) -> None:
    """Coil tracking's results for CURRENT (derived rows, as ccl-defects writes them): the coil and
    its two defects with an image placed at tracked metres; the bottom camera without heartbeats."""
    sql("""INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, head_at_camera, tail_at_camera,
               length_m, length_uncertainty_m, inspected_m, mes_length_m, length_disagrees, schedule_present,
               wpd_seen, speed_gap_free, cut_seen, coverage, completeness, model_version, computed_at)
           VALUES (%s, %s, %s, '{}', '{}', 2398.5, 3.2, '{}', 2400, false, true, true, true, false,
                   '{"top": 1.0, "bottom": null}', 'unknown', 1, now())""", (CURRENT, CURRENT, NOW))
    sql("""INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status, tracked_coil,
               metre, uncertainty_m, box_coil, model_version, computed_at)
           SELECT id, camera_id, 'top', detection_time, 'box', 'placed', coil_number,
                  defect_position_meter + 2.5, 1.8, coil_number, 1, now()
           FROM defect_detections WHERE coil_number = %s AND original_image_id IS NOT NULL""", (CURRENT,))


def many_defects(sql, count: int) -> None:
    sql("""INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number, customer_name,
               ccl_bom, thickness, width, length_value, raw)
           VALUES ('CCL1', 700, %s, %s, %s, '포스코', 'PCM-A01', 0.6, 1000, 3000, '\\x00')""", (NOW, NOW, MANY))
    sql("""INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity, detection_time,
               defect_position_meter, camera_id)
           SELECT %s, (ARRAY['scratch', 'dent', 'stain'])[1 + g %% 3], 0.5 + (g %% 50) / 100.0,
                  (ARRAY['low', 'medium', 'high', 'critical'])[1 + g %% 4], %s - make_interval(secs => g),
                  g * 3000.0 / %s, (ARRAY['top', 'bottom'])[1 + g %% 2]
           FROM generate_series(1, %s) g""", (MANY, NOW, count, count))


def grade_and_series(sql, seeded) -> int:
    """CURRENT graded by rule book 1 (C, downgrade; overridden to B, hold) with a roll-mark series of
    its first defect, as ccl-defects' quality watch stores them (schema 100); the series' id."""
    reasons = [{"rule": "주기성 결함", "grade": "C", "disposition": "downgrade",
                "reasons": ["주기성 결함(periodic) roll_mark"]}]
    sql("""INSERT INTO coil_grades (tracked_coil, coil_number, grade, disposition, rule_version, reasons, facts,
               graded_by, override_grade, override_disposition, override_reason, overridden_by, overridden_at)
           VALUES (%s, %s, 'C', 'downgrade', 1, %s, '{}', 'completion', 'B', 'hold', '고객 승인 대기',
                   'op.lee', now())""", (CURRENT, CURRENT, json.dumps(reasons, ensure_ascii=False)))
    (series,) = sql("""INSERT INTO periodic_series (tracked_coil, coil_number, surface, defect_type, pitch_m, cross_mm,
                           start_m, end_m, members, expected, likely_roll, status)
                       VALUES (%s, %s, 'top', 'scratch', 3.142, 410, 300, 330, 9, 10, 'BR-2', 'final')
                       RETURNING id""", (CURRENT, CURRENT))[0]
    sql("INSERT INTO periodic_members (defect_id, series_id) VALUES (%s, %s)", (seeded["defects"][0], series))
    return series


async def line(testcase):
    images = Path(tempfile.mkdtemp(prefix="ccl-images-"))
    testcase.addCleanup(shutil.rmtree, images, True)
    ui = await start_ui(testcase, env={"CCL_IMAGES_ROOT": str(images)}, now=NOW)
    seeded = seed_line(ui.sql, images, NOW)
    return ui, seeded, images, ui.add_user("viewer.kim", "viewer")


def saved(testcase, data: bytes, name: str = "report.pdf") -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ccl-report-"))
    testcase.addCleanup(shutil.rmtree, folder, True)
    path = folder / name
    path.write_bytes(data)
    return path


def pages_of(path: Path) -> int:
    return int(re.search(r"^Pages:\s+(\d+)", poppler("pdfinfo", str(path)), re.M).group(1))


class ReportPdfTests(TestCase):
    @run
    async def test_report_opens_with_the_coil_its_schedule_completeness_and_no_grade_yet(self):
        """The PDF opens; its text names the coil, customer, tracked completeness, the defects and says 'not graded'."""
        ui, seeded, _, viewer = await line(self)
        track_current(ui.sql)
        response, body = await ui.get(f"/coils/{CURRENT}/report.pdf", viewer)
        self.assertEqual(response.code, 200, body[:300])
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/pdf"])
        self.assertTrue(body.startswith(b"%PDF-"))
        path = saved(self, body)
        self.assertEqual(pages_of(path), PAGES_BEFORE_TABLE + 1)
        text = poppler("pdftotext", "-layout", str(path), "-")
        for expected in (CURRENT, "코일 검사 보고서", "삼성전자", "GI-D04", "미상 (하트비트 없음)", "2,398.5 m ± 3.2 m",
                         "등급 없음 / not graded", "결함 목록 (1 / 1)", "scratch", "치명"):
            self.assertIn(expected, text)
        # the tracked metre (box metre + 2.5) is listed, marked as tracked
        self.assertRegex(text, r"313\.00\s+1\.8\s+추적")

    @run
    async def test_stored_grade_reasons_and_periodic_series_are_reported(self):
        """With a stored grade (overridden, with the fired rules) and a periodic series, the PDF names the grade,
        the disposition, the rule version, the reasons, the override, and the series with its pitch and roll;
        the CSV marks the series' member."""
        ui, seeded, _, viewer = await line(self)
        track_current(ui.sql)
        series = grade_and_series(ui.sql, seeded)
        _, body = await ui.get(f"/coils/{CURRENT}/report.pdf", viewer)
        text = poppler("pdftotext", "-layout", str(saved(self, body)), "-")
        self.assertNotIn("등급 없음", text)
        self.assertRegex(text, r"등급\s+B\s+판정\s+보류 \(검토\)")
        for expected in ("규칙 버전", "수동 변경 (op.lee", "고객 승인 대기", "계산된 등급 C",
                         "주기성 결함 (→ C, 등급 하향): 주기성 결함(periodic) roll_mark", "3.142", "BR-2", "9 / 10", "확정",
                         "scratch 주기 3.14 m (BR-2)"):
            self.assertIn(expected, text)
        _, body = await ui.get(f"/coils/{CURRENT}/defects.csv", viewer)
        rows = list(csv.DictReader(io.StringIO(body[3:].decode("utf-8"))))
        self.assertEqual({r["결함 ID"]: r["주기성 계열"] for r in rows}[str(seeded["defects"][0])], str(series))

    @run
    async def test_a_tracked_coil_not_graded_yet_says_so(self):
        """A coil with no stored grade says 'not graded' (the server stores grades) and 'no periodic series'."""
        ui, _, _, viewer = await line(self)
        track_current(ui.sql)
        _, body = await ui.get(f"/coils/{CURRENT}/report.pdf", viewer)
        text = poppler("pdftotext", "-layout", str(saved(self, body)), "-")
        self.assertIn("등급 없음 / not graded: 이 코일은 아직 등급이 매겨지지 않았습니다", text)
        self.assertIn("이 코일에서 확인된 주기성 결함 계열이 없습니다", text)

    @run
    async def test_many_defects_make_one_table_page_per_forty(self):
        """A coil with 130 defects has 3 + ceil(130/40) pages, numbered in every footer."""
        ui, _, _, viewer = await line(self)
        many_defects(ui.sql, 130)
        response, body = await ui.get(f"/coils/{MANY}/report.pdf", viewer)
        self.assertEqual(response.code, 200)
        path = saved(self, body)
        expected = PAGES_BEFORE_TABLE + math.ceil(130 / TABLE_ROWS_PER_PAGE)
        self.assertEqual(pages_of(path), expected)
        text = poppler("pdftotext", "-layout", str(path), "-")
        self.assertIn(f"{MANY} · {expected} / {expected} 쪽", text)
        self.assertIn(f"결함 목록 ({expected - PAGES_BEFORE_TABLE} / {expected - PAGES_BEFORE_TABLE})", text)
        self.assertEqual(len(re.findall(r"^\s*\d+\s+\d+\s+[\d,]+\.\d\d\s", text, re.M)), 130)  # every defect's row

    @run
    async def test_korean_is_drawn_with_the_embedded_font_not_boxes(self):
        """The Korean font is embedded (pdffonts), Hangul comes back as text, and pages 1-3 render to PNGs."""
        ui, seeded, _, viewer = await line(self)
        track_current(ui.sql)
        grade_and_series(ui.sql, seeded)
        _, body = await ui.get(f"/coils/{CURRENT}/report.pdf", viewer)
        path = saved(self, body)
        fonts = poppler("pdffonts", str(path))
        korean = [row for row in fonts.splitlines() if "+NanumGothic" in row]
        self.assertTrue(korean, fonts)
        self.assertEqual(len(korean), 2, fonts)
        self.assertTrue(all(row.split()[-5:-2] == ["yes", "yes", "yes"] for row in korean), fonts)  # embedded subset, unicode map
        self.assertTrue(re.search("[\uac00-\ud7a3]{4,}", poppler("pdftotext", str(path), "-")))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for page in (1, 2, 3):
            poppler("pdftoppm", "-r", "80", "-png", "-f", str(page), "-l", str(page), "-singlefile", str(path),
                    str(SCREENSHOTS / f"report-page-{page}"))
            self.assertGreater((SCREENSHOTS / f"report-page-{page}.png").stat().st_size, 10_000)

    @run
    async def test_worst_defects_images_are_drawn(self):
        """Page 3 holds the worst defect's image (the labeled one from the image store)."""
        ui, seeded, _, viewer = await line(self)
        _, body = await ui.get(f"/coils/{CURRENT}/report.pdf", viewer)
        path = saved(self, body)
        images = poppler("pdfimages", "-list", "-f", "3", "-l", "3", str(path))
        self.assertEqual(len(images.strip().splitlines()) - 2, 2)  # both defects with an image
        text = poppler("pdftotext", "-f", "3", "-l", "3", "-layout", str(path), "-")
        worst = seeded["defects"][0]  # the critical scratch
        self.assertIn(f"#{worst} scratch · 치명", text)

    @run
    async def test_unknown_or_bad_coil_is_404_with_a_json_reason(self):
        """An unknown coil and a malformed coil number answer 404 with a JSON reason."""
        ui, _, _, viewer = await line(self)
        for path in ("/coils/NOSUCH1/report.pdf", "/coils/NOSUCH1/defects.csv", "/coils/bad_coil!/report.pdf"):
            response, body = await ui.get(path, viewer)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(json_of(body)["error"], "no such coil")
            self.assertTrue(json_of(body)["details"])

    @run
    async def test_without_a_session_refused(self):
        """Without a session the report and the CSV are refused with 401 JSON."""
        ui, _, _, _ = await line(self)
        for path in (f"/coils/{CURRENT}/report.pdf", f"/coils/{CURRENT}/defects.csv"):
            response, body = await ui.get(path)
            self.assertEqual(response.code, 401)
            self.assertEqual(json_of(body)["error"], "login required")


class DefectsCsvTests(TestCase):
    @run
    async def test_csv_is_excel_ready_with_korean_headers_and_every_defect(self):
        """The CSV has a BOM, Korean headers, one row per defect with tracked metres, and formula-safe cells."""
        ui, seeded, _, viewer = await line(self)
        track_current(ui.sql)
        ui.sql("UPDATE ai_models SET name = '=cmd()' WHERE deployed")
        response, body = await ui.get(f"/coils/{CURRENT}/defects.csv", viewer)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/csv; charset=utf-8"])
        self.assertTrue(body.startswith(b"\xef\xbb\xbf"))
        rows = list(csv.reader(io.StringIO(body[3:].decode("utf-8"))))
        self.assertEqual(rows[0][:4], ["결함 ID", "검출 시각", "유형", "원래 유형"])
        by_id = {int(r[0]): dict(zip(rows[0], r)) for r in rows[1:]}
        self.assertEqual(sorted(by_id), sorted(seeded["defects"][:3]))
        first = by_id[seeded["defects"][0]]
        self.assertEqual((first["위치 (m)"], first["위치 출처"], first["심각도"], first["면"]), ("313.00", "추적", "치명", "상면"))
        third = by_id[seeded["defects"][2]]  # no image, not tracked: the box's metre
        self.assertEqual((third["위치 (m)"], third["위치 출처"]), ("2050.00", "박스"))
        self.assertEqual(first["모델"], "'=cmd() v7")  # a cell that would run as a formula is quoted

    @run
    async def test_a_defect_tracked_onto_another_coil_leaves_this_report(self):
        """A defect the box sent for PREVIOUS but tracking placed on CURRENT is in CURRENT's CSV, not in PREVIOUS's."""
        ui, seeded, _, viewer = await line(self)
        track_current(ui.sql)
        moved = seeded["defects"][3]  # PREVIOUS's pinhole
        ui.sql("""INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status,
                      tracked_coil, metre, uncertainty_m, box_coil, coil_disagrees, model_version, computed_at)
                  VALUES (%s, 'top', 'top', now(), 'box', 'placed', %s, 5.0, 1.0, %s, true, 1, now())""",
               (moved, CURRENT, PREVIOUS))
        _, body = await ui.get(f"/coils/{CURRENT}/defects.csv", viewer)
        self.assertIn(f"\r\n{moved},".encode(), body)
        _, body = await ui.get(f"/coils/{PREVIOUS}/defects.csv", viewer)
        self.assertNotIn(f"\r\n{moved},".encode(), body)


class ReportCommandTests(TestCase):
    @run
    async def test_cli_writes_the_pdf_and_the_csv(self):
        """ccl report writes a PDF that opens with the coil's pages, and --csv the defects."""
        ui, _, images, _ = await line(self)
        folder = Path(tempfile.mkdtemp(prefix="ccl-report-cli-"))
        self.addCleanup(shutil.rmtree, folder, True)
        env = {"CCL_IMAGES_ROOT": str(images)}
        result = await defer_to_process(["report", CURRENT, "--dsn", ui.dsn, "--out", str(folder / "r.pdf")], env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("wrote", result.stdout)
        self.assertEqual(pages_of(folder / "r.pdf"), PAGES_BEFORE_TABLE + 1)
        self.assertIn(CURRENT, poppler("pdftotext", str(folder / "r.pdf"), "-"))
        result = await defer_to_process(["report", CURRENT, "--csv", "--dsn", ui.dsn, "--out", str(folder / "d.csv")], env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue((folder / "d.csv").read_bytes().startswith("\ufeff결함 ID".encode()))

    @run
    async def test_cli_refuses_a_bad_or_unknown_coil_with_a_message_and_writes_nothing(self):
        """A malformed coil exits 2, an unknown one 1, each with a message, no traceback and no file."""
        ui, _, _, _ = await line(self)
        folder = Path(tempfile.mkdtemp(prefix="ccl-report-cli-"))
        self.addCleanup(shutil.rmtree, folder, True)
        bad = await defer_to_process(["report", "../etc", "--dsn", ui.dsn, "--out", str(folder / "x.pdf")])
        self.assertEqual(bad.returncode, 2)
        self.assertIn("coil_number may only contain", bad.stderr)
        unknown = await defer_to_process(["report", "NOSUCH1", "--dsn", ui.dsn, "--out", str(folder / "x.pdf")])
        self.assertEqual(unknown.returncode, 1)
        self.assertIn("coil NOSUCH1 is not known", unknown.stderr)
        for result in (bad, unknown):
            self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(os.listdir(folder), [])


def defer_to_process(args, env=None):
    """Run the CLI in a thread: the UI under test shares this reactor, the CLI only the database."""
    from twisted.internet import threads

    return threads.deferToThread(run_cli, args, "", env)
