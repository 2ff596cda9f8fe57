"""Coil tracking in a real browser: Chromium against the real ccl-ui, fed by the real ccl-mes,
ccl-images and ccl-defects (with its live tracker), while ``ccl simulate line`` plays a run of
the line to them in real time.

The dashboard shows the current coil's inspected metre advancing; once the run is over, the
coil page draws every defect at its tracked metre, with its band, on its surface's lane, the
weld zones and the cut of the coil cut in two; 코일 이력 shows the completeness badges and
라인 추적 the stop. Screenshots go to test-artifacts/screenshots/tracking-*.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

from twisted.trial.unittest import TestCase

from ccl.domain.accounts import hash_password
from tests.support.database import fresh_database
from tests.support.ui_process import ROOT, start_process
from tests import test_ui_browser
from tests.support.ui import SCREENSHOTS, log_in_at, require_chromium
from tests.test_ui_browser import PASSWORD

#: The line of this test, for the services and the simulator alike (one [tracking] for both).
LINE = {"CCL_TRACKING_WPD_TO_CAMERA_M": "10", "CCL_TRACKING_CAMERA_TO_SHEAR_M": "15",
        "CCL_TRACKING_CAMERA_OFFSETS_M": "top:0, bottom:1.5", "CCL_TRACKING_SWEEP_SECONDS": "5"}


class TrackingBrowserTests(TestCase):
    timeout = 400
    # the driver, screenshots and waiting of the main browser test
    browser = test_ui_browser.BrowserTests.browser
    shot = test_ui_browser.BrowserTests.shot
    wait = test_ui_browser.BrowserTests.wait
    by_css = test_ui_browser.BrowserTests.by_css
    sql = test_ui_browser.BrowserTests.sql

    def setUp(self):
        require_chromium()
        self.dsn = fresh_database(self)
        self.tmp = Path(tempfile.mkdtemp(prefix="ccl-browser-tracking-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        (self.tmp / "var").mkdir()
        images = self.tmp / "images"
        self.sql("INSERT INTO users (username, display_name, password_hash, role) VALUES ('kim', '김반장', %s, 'admin')",
                 (hash_password(PASSWORD),))
        started = {name: start_process(self, name, self.dsn, self.tmp / "var", images, env=LINE)
                   for name in ("ccl-ui", "ccl-defects", "ccl-images", "ccl-mes")}
        self.base = started["ccl-ui"]
        mes = urllib.parse.urlsplit(started["ccl-mes"])
        self.targets = ["--mes", f"{mes.hostname}:{mes.port}", "--images", started["ccl-images"],
                        "--defects", started["ccl-defects"]]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver = self.browser()

    def simulate(self, truth: Path) -> subprocess.Popen:
        """About 35 s of line at 600 m/min, in real time: two coils of about 120 m (the second
        cut in two at the shear), a 4 s stop, the first 3 m of each coil sent by the boxes with
        the previous coil's number."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(LINE, PYTHONPATH=str(ROOT))
        output = open(self.tmp / "simulate.log", "wb")
        self.addCleanup(output.close)
        process = subprocess.Popen(
            [sys.executable, "-m", "ccl", "simulate", "line", *self.targets, "--coils", "2", "--coil-length", "120",
             "--speed", "600", "--ramp", "120", "--stop-seconds", "4", "--defects-per-coil", "8",
             "--heartbeat-every", "2", "--batch-every", "2", "--box-coil-lag", "3", "--truth", str(truth)],
            env=env, stdout=output, stderr=subprocess.STDOUT)

        def stop():
            if process.poll() is None:
                process.kill()
            process.wait()

        self.addCleanup(stop)
        return process

    def test_tracked_line_in_the_browser(self):
        """In Chromium, during and after a simulated run: the inspected metre advances on the
        dashboard; the coil page, 코일 이력 and 라인 추적 show what tracking made of the run."""
        from selenium.webdriver.common.by import By

        driver = self.driver
        log_in_at(driver, self.base + "/login", "kim", PASSWORD)
        self.wait(lambda d: d.find_elements(By.ID, "live-state")
                  and "live" in d.find_element(By.ID, "live-state").get_attribute("class").split(), "SSE not live")

        truth = self.tmp / "truth.jsonl"
        run = self.simulate(truth)

        # The dashboard: a coil with tracking, its inspected metre advancing with the line.
        def inspected(d):
            value = d.find_element(By.ID, "coil-inspected").get_attribute("data-metre")
            return float(value) if value else None

        first = self.wait(lambda d: (inspected(d) or 0) > 5 and inspected(d), "no inspected metre on the dashboard")
        self.wait(lambda d: (inspected(d) or 0) > first + 10 or inspected(d) < first,  # further, or the next coil
                  "the inspected metre did not advance")
        self.assertTrue(self.by_css("#coil-completeness .comp").get_attribute("data-completeness"))
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#coil-bar rect.inspected"), "no inspected length on the bar")
        self.shot("tracking-01-dashboard")

        self.assertEqual(run.wait(120), 0, (self.tmp / "simulate.log").read_text())
        told = [json.loads(line) for line in truth.read_text().splitlines()]
        coils = [t for t in told if t["kind"] == "coil"]
        defects = [t for t in told if t["kind"] == "defect"]
        self.wait(lambda d: self.sql("SELECT count(*) FROM tracking_defects WHERE NOT provisional")[0][0] == len(defects)
                  and self.sql("SELECT count(*) FROM tracking_exit_coils")[0][0] == 3,
                  "tracking did not place the run")

        # The coil cut in two: its map, lanes, bands, weld zone, cut, completeness.
        cut = next(c for c in coils if len(c["pieces_m"]) == 2)
        driver.get(self.base + "/coils/" + cut["coil"])
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#coil-map circle.marker"), "no coil map markers")
        lanes = [g.get_attribute("data-surface") for g in driver.find_elements(By.CSS_SELECTOR, "#coil-map g.lane")]
        self.assertEqual(lanes, ["top", "bottom"])
        self.assertTrue(driver.find_elements(By.CSS_SELECTOR, "#coil-map rect.weld-zone"))
        self.assertTrue(driver.find_elements(By.CSS_SELECTOR, "#coil-map line.cut-line"))
        self.assertTrue(driver.find_elements(By.CSS_SELECTOR, "#coil-map line.band"))
        on_map = {m.get_attribute("data-defect") for m in driver.find_elements(By.CSS_SELECTOR, "#coil-map circle.marker")}
        placed = {str(r[0]) for r in self.sql(
            "SELECT defect_id FROM tracking_defects WHERE tracked_coil = %s", (cut["coil"],))}
        self.assertEqual(on_map, placed)
        self.assertIn(self.by_css("h1 .comp").get_attribute("data-completeness"), ("complete", "partial", "unknown"))
        self.assertEqual(len(driver.find_elements(By.CSS_SELECTOR, "#exit-coils tbody tr")), 2)
        self.shot("tracking-02-coil")

        driver.get(self.base + "/coils")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#coil-table td.completeness .comp"), "no badges")
        badges = {row.get_attribute("data-coil"): row.find_element(By.CSS_SELECTOR, ".comp").get_attribute("data-completeness")
                  for row in driver.find_elements(By.CSS_SELECTOR, "#coil-table tbody tr[data-coil]")}
        for coil in coils:
            self.assertNotEqual(badges[coil["coil"]], "none", coil["coil"])
        self.shot("tracking-03-history")

        driver.get(self.base + "/tracking")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#delays tr[data-kind="stop"]'), "the stop is not in the delay log")
        self.shot("tracking-04-delays")
