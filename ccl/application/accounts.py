"""Use cases of the UI's accounts: log in and out, find a session, manage users.

Passwords are hashed and checked in a thread (``in_thread``, Argon2id takes ~100 ms). New
and reset passwords are generated here, never typed by an admin, and handed back once.
Disabling a user or resetting the password ends its sessions; the last enabled admin cannot
be demoted or disabled. Every login, logout and change lands in the audit trail.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import secrets
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from ccl.domain.accounts import check_role, check_username, generate_password, hash_password, verify_password
from ccl.ports import Account, Actor, IAccountStore, IAuditLog, InThread, ISessionStore, Session, User



class UnknownUser(LookupError):
    pass


class UserExists(ValueError):
    pass


class LastAdmin(ValueError):
    """The change would leave no enabled admin."""


@attrs.frozen
class SessionPolicy:
    idle: datetime.timedelta
    absolute: datetime.timedelta
    lockout_failures: int
    lockout: datetime.timedelta


@attrs.frozen
class LoginResult:
    """``outcome``: ok, failure (unknown id or wrong password), locked, disabled."""

    outcome: str
    user: User | None = None
    token: str | None = None
    csrf_token: str | None = None


@attrs.frozen
class NewPassword:
    """A generated password, shown once."""

    username: str
    password: str


def digest(token: str) -> bytes:
    """What the sessions table keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@functools.cache
def _dummy_hash() -> str:
    # Made on first use, in a thread: hashing at import would add ~0.4 s to every (re)start.
    return hash_password(secrets.token_urlsafe(16))


def _check_unknown_user(password: str) -> bool:
    """Costs as much time as a wrong password, so an unknown user name is not revealed by timing."""
    return verify_password(_dummy_hash(), password)


class Accounts:
    def __init__(self, accounts: IAccountStore, sessions: ISessionStore, audit: IAuditLog, policy: SessionPolicy,
                 in_thread: InThread):
        self._accounts = accounts
        self._sessions = sessions
        self._audit = audit
        self.policy = policy
        self._in_thread = in_thread

    # Sessions ------------------------------------------------------------------------------

    async def lookup(self, token: str | None) -> Session | None:
        """The live session of this cookie value (and mark it used), or None."""
        if not token or len(token) > 200:
            return None
        return await self._sessions.touch(digest(token), self.policy.idle)

    async def still_valid(self, session: Session) -> bool:
        """Does ``session`` still live? A check that is not activity: an open event stream asks
        it now and then, and must not keep an idle session alive."""
        return await self._sessions.alive(session.token_hash, self.policy.idle)

    async def login(self, username: str, password: str, *, client_address: str | None,
                    user_agent: str | None) -> LoginResult:
        result = await self._check(username, password, client_address, user_agent or "")
        await self._audit.append(Actor(username or "(empty)", client_address), "ui.login", username or None,
                                 result.outcome)
        return result

    async def _check(self, username: str, password: str, client_address: str | None, user_agent: str) -> LoginResult:
        found = await self._accounts.credentials(username)
        if found is None:
            await self._in_thread(_check_unknown_user, password)
            return LoginResult("failure")
        if found.locked:
            return LoginResult("locked", found.user)
        if not await self._in_thread(verify_password, found.password_hash, password):
            locked = await self._accounts.count_failed_login(found.user.id, self.policy.lockout_failures,
                                                             self.policy.lockout)
            return LoginResult("locked" if locked else "failure", found.user)
        if found.disabled:
            return LoginResult("disabled", found.user)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await self._accounts.open_session(found.user.id, digest(token), csrf, self.policy.absolute, client_address,
                                          user_agent)
        return LoginResult("ok", found.user, token, csrf)

    async def logout(self, session: Session, actor: Actor) -> None:
        await self._sessions.delete(session.token_hash)
        await self._audit.append(actor, "ui.logout", session.user.username, "ok")

    async def purge_expired(self) -> None:
        await self._sessions.purge(self.policy.idle)

    # Users (admin) ------------------------------------------------------------------------------

    def accounts(self) -> Deferred:
        """Deferred[list[Account]]."""
        return self._accounts.accounts()

    async def create_user(self, username: str, display_name: str, role: str, actor: Actor) -> NewPassword:
        """Raises AccountError for a bad name or role, UserExists when the name is taken."""
        check_username(username)
        check_role(role)
        password = generate_password()
        hashed = await self._in_thread(hash_password, password)
        if await self._accounts.create(username, display_name, hashed, role) is None:
            await self._audit.append(actor, "user.create", username, "exists", {"role": role})
            raise UserExists(f"user {username!r} already exists")
        await self._audit.append(actor, "user.create", username, "ok", {"role": role})
        return NewPassword(username, password)

    async def account(self, user_id: int) -> Account:
        found = await self._accounts.account(user_id)
        if found is None:
            raise UnknownUser(user_id)
        return found

    async def update_user(self, user_id: int, *, role: str | None, display_name: str | None, disabled: bool,
                          actor: Actor) -> None:
        """Raises UnknownUser, AccountError (bad role), LastAdmin."""
        before = await self.account(user_id)
        role = role or before.role
        display_name = (before.display_name if display_name is None else display_name).strip()[:100]
        check_role(role)
        if not await self._accounts.update(user_id, role, display_name, disabled):
            await self._audit.append(actor, "user.update", before.username, "refused: last admin",
                                     {"role": role, "disabled": disabled})
            raise LastAdmin("the last enabled admin cannot be demoted or disabled")
        after: dict[str, Any] = {"role": role, "display_name": display_name, "disabled": disabled}
        changes = {key: [getattr(before, key), new] for key, new in after.items() if getattr(before, key) != new}
        await self._audit.append(actor, "user.update", before.username, "ok", changes)

    async def reset_password(self, user_id: int, actor: Actor) -> NewPassword:
        """A new generated password; every session of the user ends. Raises UnknownUser."""
        target = await self.account(user_id)
        password = generate_password()
        hashed = await self._in_thread(hash_password, password)
        await self._accounts.set_password(user_id, hashed)
        await self._audit.append(actor, "user.reset_password", target.username, "ok")
        return NewPassword(target.username, password)
