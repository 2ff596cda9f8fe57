"""The UI's login session cookie.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; the sessions table
holds only its SHA-256 (``digest``), so a copy of the table opens no session. Logging in,
the session rules and the lockout are use cases (ccl/application/accounts.py).
"""

from __future__ import annotations

from ccl.application.accounts import LoginResult, SessionPolicy as Policy, digest  # noqa: F401 (re-exported)
from ccl.ports import Session, User  # noqa: F401 (re-exported)

COOKIE = "ccl_session"
