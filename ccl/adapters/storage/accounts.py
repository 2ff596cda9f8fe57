"""The UI's users and login sessions in PostgreSQL (``users``, ``sessions``).

Sessions are found by the SHA-256 of their token: the table holds no usable token.
"""

from __future__ import annotations

import datetime
import json

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.postgres import Database, port_errors
from ccl.ports import Account, Credentials, IAccountStore, ISessionStore, Session, User

_ACCOUNT_COLUMNS = "id, username, display_name, role, disabled, locked_until, last_login_at, created_at"


def _account(row: tuple) -> Account:
    # row: the _ACCOUNT_COLUMNS, then "locked now"
    (user_id, username, display_name, role, disabled, locked_until, last_login_at, created_at, locked) = row
    return Account(id=user_id, username=username, display_name=display_name, role=role, disabled=disabled,
                   locked_until=locked_until, last_login_at=last_login_at, created_at=created_at, locked=bool(locked))


@port_errors
@implementer(IAccountStore)
class AccountStore:
    def __init__(self, db: Database):
        self._db = db

    async def credentials(self, username: str) -> Credentials | None:
        rows = await self._db.runQuery(
            "SELECT id, username, role, display_name, password_hash, disabled, locked_until > now()"
            " FROM users WHERE username = %s", (username,))
        if not rows:
            return None
        user_id, name, role, display, stored, disabled, locked = rows[0]
        return Credentials(User(user_id, name, role, display), stored, bool(disabled), bool(locked))

    async def count_failed_login(self, user_id: int, lockout_failures: int, lockout: datetime.timedelta) -> bool:
        rows = await self._db.runQuery(
            "UPDATE users SET failed_logins = CASE WHEN failed_logins + 1 >= %s THEN 0 ELSE failed_logins + 1 END,"
            " locked_until = CASE WHEN failed_logins + 1 >= %s THEN now() + %s ELSE locked_until END"
            " WHERE id = %s RETURNING locked_until > now()",
            (lockout_failures, lockout_failures, lockout, user_id))
        return bool(rows and rows[0][0])

    def open_session(self, user_id: int, token_hash: bytes, csrf_token: str, lifetime: datetime.timedelta,
                     client_address: str | None, user_agent: str) -> defer.Deferred:
        @defer.inlineCallbacks
        def create(cursor):  # txpostgres: each execute returns a Deferred
            yield cursor.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now() WHERE id = %s",
                (user_id,))
            yield cursor.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at, client_address, user_agent)"
                " VALUES (%s, %s, %s, now() + %s, %s, %s)",
                (token_hash, user_id, csrf_token, lifetime, client_address, user_agent[:300]))

        return self._db.runInteraction(create)

    async def accounts(self) -> list[Account]:
        rows = await self._db.runQuery(f"SELECT {_ACCOUNT_COLUMNS}, locked_until > now() FROM users ORDER BY username")
        return [_account(row) for row in rows]

    async def account(self, user_id: int) -> Account | None:
        rows = await self._db.runQuery(f"SELECT {_ACCOUNT_COLUMNS}, locked_until > now() FROM users WHERE id = %s",
                                       (user_id,))
        return _account(rows[0]) if rows else None

    async def create(self, username: str, display_name: str, password_hash: str, role: str) -> int | None:
        rows = await self._db.runQuery(
            "INSERT INTO users (username, display_name, password_hash, role) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (username) DO NOTHING RETURNING id", (username, display_name, password_hash, role))
        return rows[0][0] if rows else None

    def update(self, user_id: int, role: str, display_name: str, disabled: bool) -> defer.Deferred:
        @defer.inlineCallbacks
        def change(cursor):
            yield cursor.execute("SELECT id FROM users WHERE role = 'admin' AND NOT disabled FOR UPDATE")
            admins = {admin_id for (admin_id,) in cursor.fetchall()}
            if user_id in admins and admins == {user_id} and (role != "admin" or disabled):
                return False
            yield cursor.execute("UPDATE users SET role = %s, display_name = %s, disabled = %s WHERE id = %s",
                                 (role, display_name, disabled, user_id))
            if disabled:
                yield cursor.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))
            return True

        return self._db.runInteraction(change)

    def set_password(self, user_id: int, password_hash: str) -> defer.Deferred:
        @defer.inlineCallbacks
        def reset(cursor):
            yield cursor.execute(
                "UPDATE users SET password_hash = %s, password_changed_at = now(), failed_logins = 0,"
                " locked_until = NULL WHERE id = %s", (password_hash, user_id))
            yield cursor.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,))

        return self._db.runInteraction(reset)


@port_errors
@implementer(ISessionStore)
class SessionStore:
    def __init__(self, db: Database):
        self._db = db

    async def touch(self, token_hash: bytes, idle: datetime.timedelta) -> Session | None:
        rows = await self._db.runQuery(
            "UPDATE sessions s SET last_seen_at = now() FROM users u"
            " WHERE s.token_hash = %s AND u.id = s.user_id AND NOT u.disabled"
            "   AND s.expires_at > now() AND s.last_seen_at > now() - %s"
            " RETURNING s.token_hash, s.csrf_token, u.id, u.username, u.role, u.display_name",
            (token_hash, idle))
        if not rows:
            return None
        stored_hash, csrf, user_id, username, role, display = rows[0]
        return Session(bytes(stored_hash), csrf, User(user_id, username, role, display))

    async def alive(self, token_hash: bytes, idle: datetime.timedelta) -> bool:
        rows = await self._db.runQuery(
            "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = %s AND NOT u.disabled AND s.expires_at > now() AND s.last_seen_at > now() - %s",
            (token_hash, idle))
        return bool(rows)

    def delete(self, token_hash: bytes) -> defer.Deferred:
        return self._db.runOperation("DELETE FROM sessions WHERE token_hash = %s", (token_hash,))

    def delete_of(self, user_id: int) -> defer.Deferred:
        return self._db.runOperation("DELETE FROM sessions WHERE user_id = %s", (user_id,))

    def purge(self, idle: datetime.timedelta) -> defer.Deferred:
        return self._db.runOperation(
            "DELETE FROM sessions WHERE expires_at <= now() OR last_seen_at <= now() - %s", (idle,))


# ``ccl create-user`` (blocking, on a psycopg2 connection) -----------------------------------


def create_account(connection, username: str, display_name: str, password_hash: str, role: str, *,
                   actor: str) -> bool:
    """Insert a user (False: the name is taken, nothing changed), audited either way, in one transaction."""
    with connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (username, display_name, password_hash, role) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (username) DO NOTHING RETURNING id", (username, display_name, password_hash, role))
        created = cursor.fetchone() is not None
        cursor.execute(
            "INSERT INTO audit_logs (actor, action, target, result, details) VALUES (%s, 'user.create', %s, %s, %s)",
            (actor, username, "ok" if created else "exists", json.dumps({"role": role})))
    return created
