"""Quality decisions in a real browser (Chromium, as tests.test_ui_browser): the rule book editor
(a draft refused with the paths of its faults, the preview of what would change on the recently
graded coils, saving a new version) and the alarm rules form on 관리 > 품질; then a defect alarm
raised by the real ccl-defects (a camera silent while the line runs) reaching the open
dashboard live, through NOTIFY and the UI's event stream, without a reload.

Screenshots go to test-artifacts/screenshots/quality-*.png.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

from ccl.domain.accounts import hash_password
from tests.support.database import fresh_database, query
from tests.support.ui_data import seed_line
from tests.support.ui_process import start_process, start_ui_process
from tests.support.ui import SCREENSHOTS, browser, log_in_at, require_chromium
from tests.test_ui_browser import PASSWORD, WAIT

DRAFT = {"grades": ["A", "B", "C", "X"], "rules": [
    {"name": "치명 결함 1개 이상 폐기", "grade": "X", "disposition": "scrap",
     "conditions": [{"kind": "defect_count", "min_severity": "critical", "threshold": 1}]}]}
ALARMS = [{"name": "카메라 무응답 (시험)", "kind": "camera_silent", "severity": "critical", "silent_s": 1}]


class QualityBrowserTests(TestCase):
    timeout = 300

    def sql(self, statement, params=()):
        return query(self.dsn, statement, params)

    def setUp(self):
        require_chromium()
        self.dsn = fresh_database(self)
        self.tmp = Path(tempfile.mkdtemp(prefix="ccl-browser-quality-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        (self.tmp / "var").mkdir()
        images = self.tmp / "images"
        seed_line(self.sql, images, datetime.datetime.now(datetime.timezone.utc))
        self.sql("INSERT INTO users (username, display_name, password_hash, role) VALUES ('kim', '김반장', %s, 'admin')",
                 (hash_password(PASSWORD),))
        self.seed_graded_coil()
        self.base = start_ui_process(self, self.dsn, self.tmp / "var", images)
        # The real ccl-defects with its quality watch: the line counts as running only while its
        # newest speed is under a second old, so the seeded (older) speeds do not run it.
        start_process(self, "ccl-defects", self.dsn, self.tmp / "var", images,
                      env={"CCL_QUALITY_ALARM_CHECK_S": "0.5", "CCL_QUALITY_LINE_SPEED_FRESH_S": "1"})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver = browser(str(self.tmp / "chromium-profile"), window="1500,1100", korean=True)
        self.addCleanup(self.driver.quit)
        self.driver.set_page_load_timeout(WAIT)

    def seed_graded_coil(self):
        """P1 (three days ago, out of the live tracker's reach): complete, one unreviewed critical
        defect, graded B/hold by rule book v1."""
        self.sql("INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, head_at_camera, tail_at_camera,"
                 " inspected_m, length_m, length_disagrees, schedule_present, wpd_seen, speed_gap_free, cut_seen,"
                 " coverage, completeness, model_version, computed_at) VALUES ('P1', 'P1', now() - interval '3 days',"
                 " '{}', '{}', '{}', 400, false, true, true, true, true, '{}', 'complete', 1, now())")
        (defect,) = self.sql("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                             " detection_time, received_at) VALUES ('P1', 'dent', 0.99, 'critical',"
                             " now() - interval '3 days', now() - interval '3 days') RETURNING id")[0]
        self.sql("INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status,"
                 " tracked_coil, metre, box_coil, model_version, computed_at) VALUES"
                 " (%s, 'top', 'top', now() - interval '3 days', 'box', 'placed', 'P1', 120, 'P1', 1, now())",
                 (defect,))
        self.sql("INSERT INTO coil_grades (tracked_coil, coil_number, grade, disposition, rule_version, reasons, facts,"
                 " graded_by) VALUES ('P1', 'P1', 'B', 'hold', 1, '[]', '{}', 'completion')")
        # ... and a roll-mark series of six scratches every 2.5 m from 200 m
        (series,) = self.sql("INSERT INTO periodic_series (tracked_coil, coil_number, surface, defect_type, pitch_m,"
                             " cross_mm, start_m, end_m, members, expected, likely_roll, status) VALUES ('P1', 'P1',"
                             " 'top', 'scratch', 2.5, 300, 200, 212.5, 6, 6, '브라이들 #2', 'final') RETURNING id")[0]
        for k in range(6):
            (mark,) = self.sql("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                               " detection_time, received_at) VALUES ('P1', 'scratch', 0.8, 'medium',"
                               " now() - interval '3 days', now() - interval '3 days') RETURNING id")[0]
            self.sql("INSERT INTO tracking_defects (defect_id, camera_id, surface, detected_at, time_source, status,"
                     " tracked_coil, metre, box_coil, model_version, computed_at) VALUES"
                     " (%s, 'top', 'top', now() - interval '3 days', 'box', 'placed', 'P1', %s, 'P1', 1, now())",
                     (mark, 200 + 2.5 * k))
            self.sql("INSERT INTO periodic_members (defect_id, series_id) VALUES (%s, %s)", (mark, series))
        self.series = series

    def wait(self, condition, message: str):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(condition, message)
        except TimeoutException:
            self.driver.save_screenshot(str(SCREENSHOTS / "quality-failed.png"))
            for log in (self.tmp / "var").glob("*.log"):
                shutil.copy(log, SCREENSHOTS / f"quality-failed-{log.name}")
            raise

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def alert_texts(self) -> list[str]:
        """The dashboard's open alerts, read in one go (the list is repainted on every alert event)."""
        return self.driver.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll('#alerts li'), function (e) { return e.textContent; });")

    def set_text(self, selector: str, text: str) -> None:
        """A long text into a textarea at once (typing it key by key takes long)."""
        self.driver.execute_script("document.querySelector(arguments[0]).value = arguments[1];", selector, text)

    def test_rule_book_editor_alarm_rules_and_a_live_alarm(self):
        """Edit, preview and save the rule book and the alarm rules in Chromium; the alarm then raised
        by ccl-defects appears on the open dashboard without a reload."""
        from selenium.webdriver.common.by import By

        driver = self.driver
        log_in_at(driver, self.base + "/login", "kim", PASSWORD)
        self.wait(lambda d: d.find_elements(By.ID, "live-state"), "not logged in")

        # 관리 > 품질: the active rule book (v1) in the editor
        driver.get(self.base + "/admin/quality")
        self.wait(lambda d: d.find_elements(By.ID, "book-text"), "no rule book editor")
        self.assertEqual(self.css("#book-version").get_attribute("data-version"), "1")
        self.assertIn("미검토 치명 결함", self.css("#book-text").get_attribute("value"))
        # a faulty draft: refused, each fault named by its path
        broken = dict(DRAFT, rules=[dict(DRAFT["rules"][0], grade="Z")])
        self.set_text("#book-text", json.dumps(broken, ensure_ascii=False))
        self.css("#book-preview").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#book-errors li[data-path="rules[0].grade"]'),
                  "the fault was not shown with its path")
        # the draft fixed: the preview lists P1 going from B/hold to X/scrap; nothing stored yet
        self.set_text("#book-text", json.dumps(DRAFT, ensure_ascii=False, indent=2))
        self.css("#book-preview").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#preview-table tr[data-coil="P1"]'), "no preview")
        self.assertTrue(self.css("#book-errors").get_attribute("hidden"))
        # (the seeded line's coils, graded by ccl-defects as they completed, may change too)
        rows = driver.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")
        self.assertEqual(self.css("#preview-summary").get_attribute("data-changes"), str(len(rows)))
        # by v1 now: its roll-mark series makes it C/downgrade (the stored B/hold was graded before)
        self.assertEqual(self.css('#preview-table tr[data-coil="P1"] .before').text, "C / downgrade")
        self.assertEqual(self.css('#preview-table tr[data-coil="P1"] .after').text, "X / scrap")
        self.assertEqual(self.sql("SELECT count(*) FROM grading_rule_books"), [(1,)])
        driver.save_screenshot(str(SCREENSHOTS / "quality-01-rule-book-preview.png"))
        # saved: version 2, active; v1 kept as it was
        self.css("#book-comment").send_keys("시험 저장")
        self.css("#book-save").click()
        self.wait(lambda d: d.find_elements(By.ID, "saved-version"), "not saved")
        self.assertEqual(self.css("#book-version").get_attribute("data-version"), "2")
        self.assertEqual(self.sql("SELECT version, active, created_by, comment FROM grading_rule_books ORDER BY version"),
                         [(1, False, "migration", "default rule book (schema 100)"), (2, True, "kim", "시험 저장")])
        self.assertEqual(self.sql("SELECT document FROM grading_rule_books WHERE version = 2")[0][0], DRAFT)

        # the coil page: the series on the coil map with its pitch and roll; the grade overridden
        driver.get(self.base + "/coils/P1")
        label = self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#coil-map g.periodic[data-series="{self.series}"] text.pitch'),
                          "the series is not drawn on the coil map")[0]
        self.assertEqual(label.text, "주기 2.500 m · 브라이들 #2")
        self.assertEqual(len(driver.find_elements(By.CSS_SELECTOR, f'#coil-map g.periodic[data-series="{self.series}"] circle')), 6)
        self.assertEqual(self.css("#quality .grade-badge").get_attribute("data-disposition"), "hold")
        form = self.css('form.grade-override[data-tracked-coil="P1"]')
        from selenium.webdriver.support.ui import Select
        Select(form.find_element(By.NAME, "grade")).select_by_visible_text("A")
        Select(form.find_element(By.NAME, "disposition")).select_by_value("ship")
        form.find_element(By.NAME, "reason").send_keys("고객 승인")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#quality .grade-badge[data-disposition="ship"]'),
                  "the override was not shown")
        self.assertEqual(self.sql("SELECT override_grade, override_disposition, override_reason, overridden_by"
                                  " FROM coil_grades WHERE tracked_coil = 'P1'"), [("A", "ship", "고객 승인", "kim")])
        driver.save_screenshot(str(SCREENSHOTS / "quality-03-coil.png"))

        # the alarm rules form
        driver.get(self.base + "/admin/quality")
        self.wait(lambda d: d.find_elements(By.ID, "alarms"), "no alarm rules form")
        self.set_text("#alarms textarea[name=rules]", json.dumps(ALARMS, ensure_ascii=False))
        self.css("#alarms button[type=submit]").click()
        self.wait(lambda d: "saved=alarms" in d.current_url, "alarm rules not saved")
        self.assertEqual(self.sql("SELECT value FROM system_settings WHERE key = 'alarm_rules'"), [(ALARMS,)])
        self.assertEqual([a for (a,) in self.sql("SELECT action FROM audit_logs WHERE action LIKE 'grading.%%'"
                                                 " OR action LIKE 'quality.%%' ORDER BY id")],
                         ["grading.rule_book", "quality.alarm_rules"])
        self.assertEqual(self.sql("SELECT count(*) FROM audit_logs WHERE action = 'grade.override'"), [(1,)])

        # the dashboard, live; then the line runs (a fresh speed sample) while camera "bottom" has
        # never been heard from: ccl-defects raises the alarm and the page shows it as it comes
        driver.get(self.base + "/")
        self.wait(lambda d: "live" in d.find_element(By.ID, "live-state").get_attribute("class").split(), "SSE not live")
        self.assertFalse([text for text in self.alert_texts() if "bottom" in text])
        driver.execute_script("window.__same_page = true;")
        self.sql("INSERT INTO tc_4003_speed (line_code, sequence_no, sent_at, received_at, line_speed, raw)"
                 " VALUES ('CCL1', 424242, now(), now() + interval '60 seconds', 120, '\\x00')")
        self.wait(lambda d: [text for text in self.alert_texts() if "bottom" in text],
                  "the camera alarm did not reach the dashboard")
        self.assertTrue(driver.execute_script("return window.__same_page === true;"))
        (rule, subject, severity), = self.sql("SELECT rule, subject, severity FROM alerts WHERE rule LIKE 'quality.%%'"
                                              " AND subject LIKE '%%bottom'")
        self.assertEqual((rule, subject, severity), ("quality.camera_silent", "카메라 무응답 (시험):camera:bottom",
                                                     "critical"))
        driver.save_screenshot(str(SCREENSHOTS / "quality-02-dashboard-alarm.png"))
