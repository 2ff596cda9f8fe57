"""The real browser test: Debian's Chromium driven by selenium against a real ccl-ui process.

Log in, watch the dashboard receive live what the real services store and announce: a defect
sent to ccl-defects, an image pair sent to ccl-images, a line speed telegram (TC 4003) sent to
ccl-mes; open a coil, open an image in the viewer, look at every page, log out. Screenshots of each page go to
test-artifacts/screenshots/ at the project root (see README, "Web UI").

scripts/install-system-packages.sh installs chromium, chromium-driver and a Korean font;
selenium comes from setup.cfg's [test] extra and is given both paths (SE_OFFLINE: it
downloads nothing).
"""

from __future__ import annotations

import datetime
import http.client
import json
import shutil
import socket
import tempfile
import urllib.parse
from pathlib import Path

from twisted.trial.unittest import TestCase

from ccl.domain.accounts import hash_password
from ccl.adapters.web.ui.app import declared_routes
from tests.support.database import fresh_database, query
from tests.support.ingest import image_bytes, multipart, pair_parts
from tests.support.mes import speed as speed_telegram
from tests.support.ui import SCREENSHOTS, browser, require_chromium
from tests.support.ui_data import CURRENT, seed_line
from tests.support.ui_process import start_process, start_ui_process

WAIT = 30
PASSWORD = "Browser-test-pw-7"
ROUTES = declared_routes()


def send_telegram(url: str, telegram: bytes) -> bytes:
    """Send one telegram as the MES does and return the reply (an ACK telegram)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(telegram)
        reply = b""
        while len(reply) < 4:
            chunk = connection.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", parts.path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class BrowserTests(TestCase):
    timeout = 300

    def sql(self, statement, params=()):
        return query(self.dsn, statement, params)

    def setUp(self):
        require_chromium()
        self.dsn = fresh_database(self)
        self.tmp = Path(tempfile.mkdtemp(prefix="ccl-browser-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        (self.tmp / "var").mkdir()
        self.images = self.tmp / "images"
        # the UI process below runs on the real clock (it is another process): the line is seeded
        # up to the present, and what the test looks for holds at any hour of the day
        self.seeded = seed_line(self.sql, self.images, datetime.datetime.now(datetime.timezone.utc))
        self.sql("INSERT INTO users (username, display_name, password_hash, role) VALUES ('kim', '김반장', %s, 'admin')",
                 (hash_password(PASSWORD),))
        self.base = start_ui_process(self, self.dsn, self.tmp / "var", self.images)
        # the real services that feed the UI: Jetson ingestion and the MES receiver
        self.defects = start_process(self, "ccl-defects", self.dsn, self.tmp / "var", self.images)
        self.uploads = start_process(self, "ccl-images", self.dsn, self.tmp / "var", self.images)
        self.mes = start_process(self, "ccl-mes", self.dsn, self.tmp / "var", self.images)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for stale in SCREENSHOTS.glob("failed*"):  # from an earlier failed run
            stale.unlink()
        self.driver = self.browser()

    def browser(self):
        driver = browser(str(self.tmp / "chromium-profile"), window="1500,1100", korean=True)
        self.addCleanup(driver.quit)
        driver.set_page_load_timeout(WAIT)
        return driver

    def shot(self, name: str, whole: bool = True) -> None:
        """The whole page, not only the window (Chromium's DevTools protocol); ``whole=False``
        for what the window shows (a fixed overlay such as the viewer)."""
        import base64

        if not whole:
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
            return
        try:
            image = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(image["data"]))
        except Exception:
            self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def wait(self, condition, message: str):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(condition, message)
        except TimeoutException:
            # leave what the browser showed and what the UI logged next to the screenshots
            self.shot("failed")
            for log in (self.tmp / "var").glob("*.log"):
                shutil.copy(log, SCREENSHOTS / f"failed-{log.name}")
            logs = "\n".join(str(entry) for entry in self.driver.get_log("browser"))
            (SCREENSHOTS / "failed-console.log").write_text(logs)
            raise

    def by_css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def test_login_live_dashboard_coil_viewer_logout(self):
        """In Chromium: log in, the dashboard goes live, coil and image viewers open, every page paints, log out."""
        from selenium.webdriver.common.by import By

        driver = self.driver
        driver.get(self.base + "/")
        self.wait(lambda d: "/login" in d.current_url, "not sent to the login page")
        self.shot("01-login")
        self.by_css("input[name=username]").send_keys("kim")
        self.by_css("input[name=password]").send_keys(PASSWORD)
        self.by_css("form[action='/login'] button[type=submit]").click()

        # 실시간 모니터링: painted from the database, then live
        self.wait(lambda d: d.find_elements(By.ID, "live-state")
                  and "live" in d.find_element(By.ID, "live-state").get_attribute("class").split(), "SSE not live")
        self.assertEqual(self.by_css("#coil-number").text, CURRENT)
        self.assertIn("삼성전자", self.by_css("#coil-customer").text)
        self.wait(lambda d: d.execute_script(
            "var i = document.getElementById('latest-original'); return i.complete && i.naturalWidth > 0;"),
            "latest original image not shown")
        feed_before = len(driver.find_elements(By.CSS_SELECTOR, "#feed tbody tr"))
        self.shot("02-dashboard")

        # a new defect on the current coil, sent to the real defect service (as a Jetson does) ...
        status, body = post(self.defects + "/defect/single", json.dumps({
            "coil_number": CURRENT, "defect_type": "roll_mark", "confidence_score": 0.96, "severity": "critical",
            "defect_position_meter": 1750.0}).encode(), "application/json")
        self.assertIn(status, (200, 201), body)
        (defect,) = self.sql("SELECT max(id) FROM defect_detections WHERE defect_type = 'roll_mark'")[0]
        # ... a new image pair to the real image service ...
        status, body = post(self.uploads + "/upload/pair", *multipart(pair_parts(
            CURRENT, original=image_bytes("JPEG", (640, 480), (120, 120, 120)),
            labeled=image_bytes("JPEG", (640, 480), (160, 60, 60)))))
        self.assertIn(status, (200, 201), body)
        (new_original,) = self.sql("SELECT max(id) FROM images WHERE kind = 'original'")[0]
        # ... and a line speed telegram (TC 4003) to the real MES receiver, which ACKs it
        self.assertEqual(send_telegram(self.mes, speed_telegram(9999, 137))[0:4], b"4900")
        self.wait(lambda d: self.sql("SELECT id FROM tc_4003_speed WHERE sequence_no = 9999"), "speed not stored")
        (speed,) = self.sql("SELECT id FROM tc_4003_speed WHERE sequence_no = 9999")[0]

        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#feed tr[data-defect="{defect}"]'),
                  "the new defect did not reach the live feed")
        self.wait(lambda d: "137" in d.find_element(By.ID, "speed-now").text, "the new speed point was not shown")
        self.assertEqual(int(self.by_css("#speed-chart").get_attribute("data-last")), speed)
        self.assertEqual(len(driver.find_elements(By.CSS_SELECTOR, "#feed tbody tr")), feed_before + 1)
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, f'#coil-bar [data-defect="{defect}"]'),
                  "the coil bar did not mark the new defect")
        self.assertIn("roll_mark", self.by_css("#today").text)
        self.wait(lambda d: d.find_element(By.ID, "latest-original").get_attribute("data-image") == str(new_original),
                  "the new image pair did not reach the dashboard")
        self.shot("03-dashboard-live")

        # open the coil from the live feed
        self.by_css(f'#feed tr[data-defect="{defect}"] a').click()
        self.wait(lambda d: d.current_url.endswith(f"/coils/{CURRENT}"), "coil detail not opened")
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#coil-map circle.marker"), "no coil map markers")
        self.assertIn("삼성전자", self.by_css("#schedule").text)
        self.assertTrue(driver.find_elements(By.CSS_SELECTOR, f'#defects tr[data-defect="{defect}"]'))
        self.shot("04-coil-detail")

        # open an image in the viewer: original shown, defect boxes drawn, labeled toggle
        self.by_css(f'#gallery a.open-image[data-image="{self.seeded["images"]["original"]}"]').click()
        self.wait(lambda d: d.execute_script(
            "var i = document.getElementById('viewer-image'); return i && i.complete && i.naturalWidth > 0"
            " && !document.querySelector('.viewer').hidden;"), "viewer did not show the image")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".viewer rect.defect-box")) >= 2, "no defect boxes")
        self.by_css("#viewer-labeled").click()
        self.wait(lambda d: d.find_element(By.ID, "viewer-image").get_attribute("src").endswith(
            f"/images/{self.seeded['images']['labeled']}"), "labeled image not shown")
        self.by_css(".viewer button[data-action=zoomin]").click()
        self.shot("05-image-viewer", whole=False)
        self.by_css("#viewer-close").click()

        registered = {r.name for r in ROUTES}
        for name, route, path, check in (("06-coil-history", "coils", "/coils", "#coil-table tbody tr[data-coil]"),
                                         ("07-statistics", "statistics", "/statistics", "#pareto canvas"),
                                         ("08-ai-models", "models", "/models", "#history canvas"),
                                         ("09-system", "system", "/system", "main h1"),
                                         ("10-admin-users", "admin_users", "/admin/users", "main h1"),
                                         ("11-admin-audit", "admin_audit", "/admin/audit", "main h1"),
                                         ("12-admin-settings", "admin_settings", "/admin/settings", "main h1")):
            if route not in registered:  # pages of the other half of the UI, when present
                continue
            driver.get(self.base + path)
            self.wait(lambda d, check=check: d.find_elements(By.CSS_SELECTOR, check), f"{path}: {check} missing")
            self.shot(name)

        self.by_css("form[action='/logout'] button").click()
        self.wait(lambda d: "/login" in d.current_url and "logged_out" in d.current_url, "not logged out")
        self.shot("13-logged-out")
        driver.get(self.base + "/coils")
        self.wait(lambda d: "/login" in d.current_url, "a logged-out browser still sees the pages")
        self.assertEqual(self.sql("SELECT action, result FROM audit_logs WHERE actor = 'kim' ORDER BY id"),
                         [("ui.login", "ok"), ("ui.logout", "ok")])
