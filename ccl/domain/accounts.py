"""Users, roles and passwords: the rules, independent of where users are stored.

Hashing uses Argon2id (slow on purpose, ~100 ms): callers on the reactor run it in a thread.
"""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("admin", "operator", "viewer")
MIN_PASSWORD_LENGTH = 10
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user name, role or password breaks the rules; the message says which."""


def check_username(name: str) -> str:
    if not _USERNAME.match(name or ""):
        raise AccountError("user id must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise AccountError("password must not start or end with white space")
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
