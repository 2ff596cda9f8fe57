"""Port of the alerts the orchestrator raises (``alerts``), as the UI reads and acknowledges them."""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from zope.interface import Interface

ALERT_STATES = ("open", "past", "all")


@attrs.frozen
class Alert:
    id: int
    rule: str
    subject: str
    severity: str
    message: str
    details: Any
    raised_at: datetime.datetime
    cleared_at: datetime.datetime | None
    acknowledged_at: datetime.datetime | None
    acknowledged_by: str | None


@attrs.frozen
class Acknowledged:
    """The outcome of an acknowledgement: ``alert`` now acknowledged by us, or ``earlier_by``
    (somebody acknowledged it before); both None: no such alert."""

    alert: Alert | None = None
    earlier_by: str | None = None


class IAlertStore(Interface):
    def alerts(state: str, limit: int):
        """Deferred[list[Alert]] in ``state`` (one of ALERT_STATES), newest first."""

    def acknowledge(alert_id: int, by: str):
        """Mark acknowledged and announce it on the events channel, in one transaction: Deferred[Acknowledged]."""
