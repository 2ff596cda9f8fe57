"""The 시스템 and 관리 pages' JavaScript in a real browser (Debian's Chromium via selenium).

The UI runs in this process over a fresh database, the orchestrator is the HTTP stand-in of
tests/support/fake_orchestrator.py; the browser runs in a thread so the reactor keeps
serving. Checks: the host figures and their refresh, the log tail and its live mode, acknowledging an alert, a restart button
(with its confirmation), creating a user, and no JavaScript error in the console.
"""

from __future__ import annotations

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from ccl.adapters.web.ui.host_figures import host_view
from tests.support.ui import browser, chromium_profile, console_errors, log_in_at, require_chromium
from tests.test_ui_system import with_orchestrator

WAIT = 20


class SystemPageBrowserTests(TestCase):
    timeout = 240

    def setUp(self):
        require_chromium()

    def test_system_and_admin_pages(self):
        """In Chromium, an admin logs in, acknowledges an alert on 시스템 and creates a user, without page errors."""
        return defer.ensureDeferred(self._system_and_admin())

    async def _system_and_admin(self):
        ui, fake = await with_orchestrator(self)
        admin = ui.add_user("boss", "admin", session=False)
        ui.sql("INSERT INTO alerts (rule, subject, severity, message) VALUES ('service_down', 'image-receiver',"
               " 'critical', '서비스 중단')")
        profile = chromium_profile(self)

        def drive():
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support import expected_conditions as ec
            from selenium.webdriver.support.ui import WebDriverWait

            driver = browser(profile)
            try:
                wait = WebDriverWait(driver, WAIT)
                log_in_at(driver, ui.base + "/system", admin.username, admin.password)  # -> login, then back here
                wait.until(ec.presence_of_element_located((By.ID, "services")))
                # The host card shows the orchestrator's figures and follows them (5 s refresh).
                memory = driver.find_element(By.CSS_SELECTOR, '#host [data-host="memory"]')
                self.assertTrue(memory.is_displayed())
                self.assertEqual(memory.text, host_view(fake.host)["memory"])
                later = dict(fake.host, memory=dict(fake.host["memory"], used=2**30, percent=12.5))
                reactor.callFromThread(setattr, fake, "host", later)
                wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#host [data-host="memory"]').text
                           == host_view(later)["memory"])
                # Log tail, then live mode: a line pushed by the orchestrator shows up.
                driver.find_element(By.CSS_SELECTOR, 'button[data-log="ui-service"]').click()
                wait.until(lambda d: "line 300" in d.find_element(By.ID, "log-lines").text)
                driver.find_element(By.ID, "log-follow").click()
                wait.until(lambda d: fake.followers)
                reactor.callFromThread(fake.push, "실시간 줄 301")
                wait.until(lambda d: "실시간 줄 301" in d.find_element(By.ID, "log-lines").text)
                # Acknowledge the open alert.
                driver.find_element(By.CSS_SELECTOR, "button[data-ack]").click()
                wait.until(lambda d: "boss ·" in d.find_element(By.ID, "open-alerts").text)
                # Restart asks first; accepting sends it.
                driver.find_element(By.CSS_SELECTOR, 'button[data-action="restart"][data-service="ui-service"]').click()
                wait.until(ec.alert_is_present()).accept()
                wait.until(lambda d: any(c["path"] == "/restart/ui-service" for c in fake.calls))
                wait.until(ec.presence_of_element_located((By.ID, "services")))
                # 관리: create a user, the password is shown once.
                driver.get(ui.base + "/admin/users")
                driver.find_element(By.CSS_SELECTOR, 'form[action="/admin/users"] input[name="username"]').send_keys("lee.qc")
                driver.find_element(By.CSS_SELECTOR, 'form[action="/admin/users"] button[type=submit]').click()
                password = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#new-password .secret"))).text
                errors = console_errors(driver)
                return password, errors
            finally:
                driver.quit()

        password, errors = await threads.deferToThread(drive)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(password), 16)
        self.assertEqual(ui.sql("SELECT acknowledged_by FROM alerts"), [("boss",)])
        self.assertEqual(ui.sql("SELECT role FROM users WHERE username = 'lee.qc'"), [("viewer",)])
        self.assertIn(("boss", "service.restart", "ui-service", "ok"),
                      ui.sql("SELECT actor, action, target, result FROM audit_logs"))
