"""AI 모델 in a real browser (Debian's Chromium via selenium): an admin registers a model with the
form, sees it listed with its id and the precision from reviews, and the coil page links the
report. The UI runs in this process over a fresh database; the browser in a thread so the
reactor keeps serving. Screenshots: test-artifacts/screenshots/models-*.png."""

from __future__ import annotations

from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from tests.test_coil_report import line
from tests.test_review_accuracy import seed_reviews
from tests.support.ui import browser, chromium_profile, console_errors, log_in_at, require_chromium, screenshot
from tests.support.ui_data import CURRENT

WAIT = 20


class ModelsBrowserTests(TestCase):
    timeout = 240

    def setUp(self):
        require_chromium()

    def test_admin_registers_a_model_and_sees_precision(self):
        """In Chromium an admin registers a model through the form (CSRF from the page), sees it listed
        with its id, the precision table, and the report link on the coil page; no JavaScript error."""
        return defer.ensureDeferred(self._models())

    async def _models(self):
        ui, seeded, _, _ = await line(self)
        seed_reviews(ui.sql, seeded)
        admin = ui.add_user("boss", "admin", session=False)
        profile = chromium_profile(self)

        def drive():
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support import expected_conditions as ec
            from selenium.webdriver.support.ui import WebDriverWait

            driver = browser(profile)
            try:
                wait = WebDriverWait(driver, WAIT)
                log_in_at(driver, ui.base + "/models", admin.username, admin.password)  # -> login, then back here
                form = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-register form")))
                form.find_element(By.NAME, "name").send_keys("yolo-ccl")
                form.find_element(By.NAME, "version").send_keys("v9")
                form.find_element(By.NAME, "description").send_keys("2026-12 재학습")
                form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
                notice = wait.until(ec.presence_of_element_located((By.ID, "model-registered"))).text
                listed = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#models tbody tr")]
                precision = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#accuracy-table tbody tr")]
                screenshot(driver, "models-01-registered")
                driver.get(ui.base + f"/coils/{CURRENT}")
                link = wait.until(ec.presence_of_element_located((By.ID, "coil-report"))).get_attribute("href")
                errors = console_errors(driver)
                return notice, listed, precision, link, errors
            finally:
                driver.quit()

        notice, listed, precision, link, errors = await threads.deferToThread(drive)
        self.assertEqual(errors, [])
        [(model_id, by)] = ui.sql("SELECT id, registered_by FROM ai_models WHERE version = 'v9'")
        self.assertEqual(by, "boss")
        self.assertIn(f"id {model_id}", notice)
        self.assertTrue(any(row.startswith(f"{model_id} yolo-ccl v9 2026-12 재학습") for row in listed), listed)
        self.assertTrue(any("scratch" in row and "90.0 %" in row for row in precision), precision)
        self.assertTrue(link.endswith(f"/coils/{CURRENT}/report.pdf"))
        self.assertEqual(ui.sql("SELECT actor, result FROM audit_logs WHERE action = 'model.register'"), [("boss", "ok")])
