"""A real UI on a free loopback port over a fresh database, and an HTTP client for it.

Usage in a trial test::

    ui = await start_ui(self)                       # or start_ui(self, orchestrator_url=...)
    admin = ui.add_user("boss", "admin")            # user row + a live session (no login round trip)
    response, body = await ui.get("/system", admin)
    response, body = await ui.post("/api/alerts/1/ack", admin, json={})   # CSRF header added

and, for the browser tests, Chromium against it (``require_chromium``, ``browser``, ``log_in_at``,
``screenshot``, ``console_errors``).
"""

from __future__ import annotations

import base64
import datetime
import functools
import json as jsonlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from http.cookiejar import CookieJar, DefaultCookiePolicy

import attrs
import treq
from twisted.internet import reactor, task
from twisted.trial.unittest import SkipTest
from twisted.web.client import Agent, HTTPConnectionPool

from ccl.adapters.storage.postgres import Database
from ccl.adapters.web.ui.app import UI
from ccl.adapters.web.ui.settings import UISettings
from ccl.adapters.web.ui.site import site
from ccl.adapters.web.ui.sessions import COOKIE, digest
from ccl.services.ui import compose_ui
from ccl.config import load_config
from ccl.domain.accounts import hash_password
from tests.support.database import fresh_database, query


@functools.lru_cache(maxsize=8)
def password_hash(password: str) -> str:
    """Argon2 is slow on purpose: hash each test password once per run."""
    return hash_password(password)


@attrs.define
class Login:
    username: str
    role: str
    user_id: int
    token: str | None = None
    csrf: str | None = None
    password: str = "correct horse battery"


@attrs.define
class Harness:
    dsn: str
    base: str
    ui: UI
    db: Database
    var: Path
    http: treq.client.HTTPClient

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        return query(self.dsn, statement, params)

    def add_user(self, username: str, role: str, *, session: bool = True, password: str = "correct horse battery",
                 disabled: bool = False) -> Login:
        (user_id,) = self.sql(
            "INSERT INTO users (username, display_name, password_hash, role, disabled) VALUES (%s, %s, %s, %s, %s)"
            " RETURNING id", (username, username.title(), password_hash(password), role, disabled))[0]
        login = Login(username, role, user_id, password=password)
        if session:
            login.token = secrets.token_urlsafe(32)
            login.csrf = secrets.token_urlsafe(32)
            self.sql("INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)"
                     " VALUES (%s, %s, %s, now() + interval '1 hour')", (digest(login.token), user_id, login.csrf))
        return login

    async def request(self, method: str, path: str, login: Login | None = None, *, csrf: bool = True,
                      json=None, data: dict | None = None, headers: dict | None = None, cookies: dict | None = None):
        """Send one request; returns (response, body bytes). CSRF header sent for a login unless csrf=False."""
        sent = {"accept": ["application/json" if path.startswith("/api/") else "text/html"]}
        jar = dict(cookies or {})
        if login is not None and login.token:
            jar[COOKIE] = login.token
            if csrf and method not in ("GET", "HEAD"):
                sent["x-csrf-token"] = [login.csrf]
        if jar:
            sent["cookie"] = ["; ".join(f"{k}={v}" for k, v in jar.items())]
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            sent["content-type"] = ["application/json"]
        for key, value in (headers or {}).items():
            sent[key.lower()] = [value]
        response = await self.http.request(method, self.base + path, headers=sent, data=data if body is None else body,
                                           allow_redirects=False)
        content = await response.content()
        return response, content

    async def get(self, path: str, login: Login | None = None, **kwargs):
        return await self.request("GET", path, login, **kwargs)

    async def post(self, path: str, login: Login | None = None, **kwargs):
        return await self.request("POST", path, login, **kwargs)


def set_cookies(response) -> dict[str, dict]:
    """Set-Cookie headers as {name: {"value": ..., "httponly": bool, "samesite": ..., ...}}."""
    cookies = {}
    for header in response.headers.getRawHeaders(b"set-cookie", []):
        text = header.decode("latin-1")
        name, _, rest = text.partition("=")
        value, _, attributes = rest.partition(";")
        flags = {"value": value}
        for attribute in attributes.split(";"):
            key, _, attr_value = attribute.strip().partition("=")
            if key:
                flags[key.lower()] = attr_value or True
        cookies[name] = flags
    return cookies


def fixed_clock(now: datetime.datetime) -> task.Clock:
    """A clock standing still at ``now`` (time is an input: the pages read it, never the wall clock)."""
    clock = task.Clock()
    clock.advance(now.timestamp())
    return clock


def json_of(body: bytes):
    return jsonlib.loads(body.decode("utf-8"))


async def start_ui(testcase, *, orchestrator_url: str = "http://127.0.0.1:9", env: dict | None = None,
                   dsn: str | None = None, now: datetime.datetime | None = None) -> Harness:
    """Start a UI (real Klein app, real HTTP on 127.0.0.1:0) over a fresh migrated database (or ``dsn``).
    With ``now``, the pages' present (today's counts, default date ranges) is that fixed instant."""
    dsn = dsn or fresh_database(testcase)
    var = Path(tempfile.mkdtemp(prefix="ccl-ui-var-"))
    testcase.addCleanup(shutil.rmtree, var, True)
    environ = {"CCL_DATABASE_DSN": dsn, "CCL_PATHS_VAR": str(var), "CCL_UI_ORCHESTRATOR_URL": orchestrator_url}
    environ.update(env or {})
    config = load_config(environ)
    db = Database(reactor, dsn, size=2)
    testcase.addCleanup(db.close)
    await db.start()
    ui = compose_ui(reactor, UISettings.from_config(config), db, clock=None if now is None else fixed_clock(now))
    testcase.addCleanup(ui.orchestrator.close)
    port = reactor.listenTCP(0, site(ui), interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    pool = HTTPConnectionPool(reactor, persistent=False)
    # No cookie jar: each test says exactly which cookies it sends.
    http = treq.client.HTTPClient(Agent(reactor, pool=pool), cookiejar=CookieJar(DefaultCookiePolicy(allowed_domains=[])))
    return Harness(dsn, f"http://127.0.0.1:{port.getHost().port}", ui, db, var, http)


# -- Chromium for the in-process browser tests (selenium is imported only when a browser starts) --

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def require_chromium() -> None:
    """Skip the calling test when Debian's Chromium or its driver is not installed."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        raise SkipTest("chromium/chromium-driver missing: scripts/install-system-packages.sh installs them")


def chromium_profile(testcase) -> str:
    """A throw-away Chromium profile directory, removed at clean-up; screenshots' folder made."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="ccl-chromium-")
    testcase.addCleanup(shutil.rmtree, profile, True)
    return profile


def browser(profile: str, *, window: str = "1400,1000", korean: bool = False):
    """Headless Chromium with its console log kept (SE_OFFLINE: selenium downloads nothing);
    ``korean``: the browser's language is ko-KR."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={window}",
                 *(("--lang=ko-KR",) if korean else ()), f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def log_in_at(driver, url: str, username: str, password: str) -> None:
    """Open ``url`` (the UI sends the browser to its login page, or it is the login page) and submit
    the credentials there; the UI then sends the browser back to ``url``."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def screenshot(driver, name: str) -> None:
    """The whole page, not only the window (Chromium's DevTools protocol), to SCREENSHOTS/``name``.png."""
    image = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(image["data"]))


def console_errors(driver) -> list[dict]:
    """What the page's JavaScript logged as SEVERE."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
