"""Port of the audit trail (``audit_logs``): every control and admin action lands there."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from zope.interface import Interface


@attrs.frozen
class Actor:
    """Who acts: a user name (or "anonymous") and the client's address."""

    username: str
    client_address: str | None = None


@attrs.frozen
class AuditEntry:
    id: int
    at: datetime.datetime
    actor: str
    client_address: str | None
    action: str
    target: str | None
    result: str
    details: dict[str, Any] | None


@attrs.frozen
class AuditQuery:
    """Entries by actor (exact), action (prefix), and time (``since`` <= at < ``before``)."""

    actor: str = ""
    action: str = ""
    since: datetime.datetime | None = None
    before: datetime.datetime | None = None
    limit: int = 50
    offset: int = 0


class IAuditLog(Interface):
    def append(actor: Actor, action: str, target: str | None, result: str,
               details: dict[str, Any] | None = None):
        """Deferred: one row appended."""

    def search(query: AuditQuery):
        """Deferred[list[AuditEntry]], newest first."""
