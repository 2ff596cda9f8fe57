"""Ports of the UI's accounts: users (``users``) and login sessions (``sessions``)."""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface


@attrs.frozen
class User:
    """Who is logged in (what a page may know of the user)."""

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
class Account:
    """One row of ``users`` as the admin page lists it (no password hash)."""

    id: int
    username: str
    display_name: str
    role: str
    disabled: bool
    locked_until: datetime.datetime | None
    last_login_at: datetime.datetime | None
    created_at: datetime.datetime
    locked: bool = False


@attrs.frozen
class Credentials:
    """What a login is checked against: the account, its password hash and whether it is locked now."""

    user: User
    password_hash: str
    disabled: bool
    locked: bool


class IAccountStore(Interface):
    """The ``users`` table. Every method returns a Deferred."""

    def credentials(username: str):
        """Deferred[Credentials | None] of the user with this name."""

    def count_failed_login(user_id: int, lockout_failures: int, lockout: datetime.timedelta):
        """Count a wrong password; the ``lockout_failures``-th in a row locks the account for
        ``lockout`` and starts a new count. Deferred[bool]: the account is locked now."""

    def open_session(user_id: int, token_hash: bytes, csrf_token: str, lifetime: datetime.timedelta,
                     client_address: str | None, user_agent: str):
        """Reset the failure count, note the login and insert the session, in one transaction."""

    def accounts():
        """Deferred[list[Account]] ordered by user name."""

    def account(user_id: int):
        """Deferred[Account | None]."""

    def create(username: str, display_name: str, password_hash: str, role: str):
        """Deferred[int | None]: the new user's id, None when the name is taken."""

    def update(user_id: int, role: str, display_name: str, disabled: bool):
        """Change the user and end its sessions when disabled, unless that would leave no enabled
        admin. Deferred[bool]: False when refused for that reason."""

    def set_password(user_id: int, password_hash: str):
        """New password hash, failure count and lock cleared, every session of the user ended."""


class ISessionStore(Interface):
    """The ``sessions`` table. Every method returns a Deferred."""

    def touch(token_hash: bytes, idle: datetime.timedelta):
        """Deferred[Session | None]: the live session (user enabled, not expired, not idle for
        ``idle``), marked as used now."""

    def alive(token_hash: bytes, idle: datetime.timedelta):
        """Deferred[bool]: the session still lives (as ``touch`` would find it), without marking it used."""

    def delete(token_hash: bytes):
        """End one session."""

    def delete_of(user_id: int):
        """End every session of a user."""

    def purge(idle: datetime.timedelta):
        """Delete expired and idle sessions."""
