"""Login sessions of the UI, kept in PostgreSQL (``sessions``), and the password check.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; the table holds
only its SHA-256, so a copy of the table opens no session. A session ends when it has been
idle for ``[ui] session_idle_minutes`` or is older than ``[ui] session_max_hours``, at
logout, and when an admin disables the user or resets the password. Each session has its
own CSRF token. Password checks (Argon2id, ~100 ms) run in a thread; repeated failures lock
the account for a while (``[ui] lockout_failures``, ``[ui] lockout_minutes``).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import timedelta

import attrs
from twisted.internet import defer
from twisted.internet.threads import deferToThread

from ccl.domain.accounts import hash_password, verify_password

COOKIE = "ccl_session"

@functools.cache
def _dummy_hash() -> str:
    # Made on first use, in a thread: hashing at import would add ~0.4 s to every (re)start.
    return hash_password(secrets.token_urlsafe(16))


def _check_unknown_user(password: str) -> bool:
    """Costs as much time as a wrong password, so an unknown user name is not revealed by timing."""
    return verify_password(_dummy_hash(), password)


@attrs.frozen
class User:
    id: int
    username: str
    role: str
    display_name: str = ""


@attrs.frozen
class Session:
    token_hash: bytes
    csrf_token: str
    user: User


@attrs.frozen
class Policy:
    idle: timedelta
    absolute: timedelta
    lockout_failures: int
    lockout: timedelta


@attrs.frozen
class LoginResult:
    """``outcome``: ok, failure (unknown id or wrong password), locked, disabled."""

    outcome: str
    user: User | None = None
    token: str | None = None
    csrf_token: str | None = None


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class SessionStore:
    def __init__(self, db, policy: Policy):
        self._db = db
        self.policy = policy

    async def lookup(self, token: str | None) -> Session | None:
        """The live session of this cookie value (and mark it used), or None."""
        if not token or len(token) > 200:
            return None
        rows = await self._db.runQuery(
            "UPDATE sessions s SET last_seen_at = now() FROM users u"
            " WHERE s.token_hash = %s AND u.id = s.user_id AND NOT u.disabled"
            "   AND s.expires_at > now() AND s.last_seen_at > now() - %s"
            " RETURNING s.token_hash, s.csrf_token, u.id, u.username, u.role, u.display_name",
            (digest(token), self.policy.idle),
        )
        if not rows:
            return None
        token_hash, csrf, user_id, username, role, display = rows[0]
        return Session(bytes(token_hash), csrf, User(user_id, username, role, display))

    async def login(self, username: str, password: str, *, client_address: str | None,
                    user_agent: str | None) -> LoginResult:
        rows = await self._db.runQuery(
            "SELECT id, username, role, display_name, password_hash, disabled, locked_until > now()"
            " FROM users WHERE username = %s",
            (username,),
        )
        if not rows:
            await deferToThread(_check_unknown_user, password)
            return LoginResult("failure")
        user_id, name, role, display, stored, disabled, locked = rows[0]
        user = User(user_id, name, role, display)
        if locked:
            return LoginResult("locked", user)
        good = await deferToThread(verify_password, stored, password)
        if not good:
            # Count the failure; the N-th one in a row locks the account and starts a new count.
            rows = await self._db.runQuery(
                "UPDATE users SET failed_logins = CASE WHEN failed_logins + 1 >= %s THEN 0 ELSE failed_logins + 1 END,"
                " locked_until = CASE WHEN failed_logins + 1 >= %s THEN now() + %s ELSE locked_until END"
                " WHERE id = %s RETURNING locked_until > now()",
                (self.policy.lockout_failures, self.policy.lockout_failures, self.policy.lockout, user_id),
            )
            return LoginResult("locked" if rows and rows[0][0] else "failure", user)
        if disabled:
            return LoginResult("disabled", user)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)

        @defer.inlineCallbacks
        def create(cursor):  # txpostgres: each execute returns a Deferred
            yield cursor.execute("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE id = %s",
                           (user_id,))
            yield cursor.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, client_address, user_agent)"
                " VALUES (%s, %s, %s, now() + %s, %s, %s)",
                (digest(token), user_id, csrf, self.policy.absolute, client_address, (user_agent or "")[:300]),
            )

        await self._db.runInteraction(create)
        return LoginResult("ok", user, token, csrf)

    async def logout(self, session: Session) -> None:
        await self._db.runOperation("DELETE FROM sessions WHERE token_hash = %s", (session.token_hash,))

    async def end_sessions_of(self, user_id: int) -> None:
        await self._db.runOperation("DELETE FROM sessions WHERE user_id = %s", (user_id,))

    async def purge_expired(self) -> None:
        await self._db.runOperation(
            "DELETE FROM sessions WHERE expires_at <= now() OR last_seen_at <= now() - %s", (self.policy.idle,))
