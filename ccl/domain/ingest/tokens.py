"""Bearer tokens of the Jetson boxes. A token is random; only its SHA-256 digest is stored.

A slow password hash is not needed: the token has 256 random bits, so its digest cannot be
guessed backwards, and the fast digest lets every request be checked cheaply.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
PREFIX = "ccl_"


def check_token_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise ValueError("token name must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return name


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
