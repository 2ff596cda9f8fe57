"""통신 진단 in a real browser (Debian's Chromium via selenium): an admin opens the rejected
telegrams, one of them with its byte view, then the dead letters, and sends one again with the
button. The UI runs in this process over a fresh database; the browser runs in a thread so the
reactor keeps serving. Screenshots go to test-artifacts/screenshots/diag-*.png."""

from __future__ import annotations

from twisted.internet import defer, threads
from twisted.trial.unittest import TestCase

from tests.support.ui import (browser, chromium_profile, console_errors, log_in_at, require_chromium, screenshot,
                              start_ui)
from tests.test_ui_diagnostics import FEB, bad_speed, kst, outbox, rejected

WAIT = 20


class DiagnosticsBrowserTests(TestCase):
    timeout = 240

    def setUp(self):
        require_chromium()

    def test_rejected_telegrams_and_resending_a_dead_letter(self):

        """In Chromium an admin lists rejected telegrams, opens one's byte view, and re-sends a dead
        letter with the button, without a JavaScript error."""
        return defer.ensureDeferred(self._diagnostics())

    async def _diagnostics(self):
        ui = await start_ui(self)
        admin = ui.add_user("boss", "admin", session=False)
        rejected(ui, kst(3, 9), "10", "9999", 1, b"9999" + bad_speed()[4:], reason="unknown TC code 9999")
        bad = rejected(ui, kst(27, 23, 30), "12", "4003", 5, bad_speed(),
                       reason="TC 4003 field 'line_speed' (bytes 40-44): expected digits")
        dead = outbox(ui, 1, "refused", kst(5, 9))
        outbox(ui, 2, "refused", kst(6, 9))
        profile = chromium_profile(self)

        def drive():
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support import expected_conditions as ec
            from selenium.webdriver.support.ui import WebDriverWait

            driver = browser(profile)
            try:
                wait = WebDriverWait(driver, WAIT)
                log_in_at(driver, ui.base + f"/diagnostics/rejected?{FEB}", admin.username, admin.password)  # -> login, then back here
                wait.until(ec.presence_of_element_located((By.ID, "rejected-table")))
                rows = driver.find_elements(By.CSS_SELECTOR, "#rejected-table tbody tr[data-id]")
                nav = driver.find_element(By.CSS_SELECTOR, "nav.mainnav a.active").text
                screenshot(driver, "diag-01-rejected")
                driver.find_element(By.CSS_SELECTOR, f'#rejected-table tr[data-id="{bad}"] a').click()
                wait.until(ec.presence_of_element_located((By.ID, "hex")))
                bad_fields = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#fields tr.bad td:first-child")]
                hex_text = driver.find_element(By.ID, "hex").text
                screenshot(driver, "diag-02-rejected-detail")
                driver.find_element(By.LINK_TEXT, "고기원 미전달").click()
                wait.until(ec.presence_of_element_located((By.ID, "dead-table")))
                driver.get(ui.base + f"/diagnostics/dead-letters?{FEB}")
                wait.until(ec.presence_of_element_located((By.ID, "dead-table")))
                screenshot(driver, "diag-03-dead-letters")
                driver.find_element(By.CSS_SELECTOR,
                                    f'#dead-table tr[data-id="{dead}"] form.resend button[type=submit]').click()
                notice = wait.until(ec.presence_of_element_located((By.ID, "resent-notice"))).text
                resent_row = driver.find_element(By.CSS_SELECTOR, f'#dead-table tr[data-id="{dead}"]')
                notice += " | " + resent_row.get_attribute("data-state")
                screenshot(driver, "diag-04-resent")
                errors = console_errors(driver)
                return len(rows), nav, bad_fields, hex_text, notice, errors
            finally:
                driver.quit()

        count, nav, bad_fields, hex_text, notice, errors = await threads.deferToThread(drive)
        self.assertEqual(errors, [])
        self.assertEqual(count, 2)
        self.assertEqual(nav, "통신 진단")
        self.assertEqual(bad_fields, ["line_speed"])
        self.assertTrue(hex_text.startswith("000000  34 30 30 33"), hex_text[:40])
        self.assertIn(f"#{dead}", notice)
        self.assertTrue(notice.endswith("| pending"), notice)  # listed in the re-sent view, waiting for the forwarder
        self.assertEqual(ui.sql("SELECT state FROM forward_outbox WHERE id = %s", (dead,)), [("pending",)])
        self.assertEqual(ui.sql("SELECT actor, action, target, result FROM audit_logs WHERE action LIKE 'dead%%'"),
                         [("boss", "dead_letter.resend", str(dead), "ok")])
