"""The control token: from ``[orchestrator] token``, or created once in ``[paths] var`` (mode 600)."""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

TOKEN_FILE = "orchestrator.token"
_ACTOR = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def token_path(var: Path) -> Path:
    return Path(var) / TOKEN_FILE


def load_or_create_token(configured: str, var: Path) -> str:
    if configured:
        return configured
    path = token_path(var)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
        raise RuntimeError(f"{path} is empty: delete it to have a new token created") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token


def bearer_matches(header: bytes | None, token: str) -> bool:
    if not header or not header.startswith(b"Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip(), token.encode("ascii"))


def actor_name(header: bytes | None) -> str:
    """``ui:<user>`` when the UI says who clicked (X-CCL-Actor), else ``token``."""
    if header:
        user = header.decode("utf-8", "replace").strip()
        if _ACTOR.match(user):
            return f"ui:{user}"
    return "token"
