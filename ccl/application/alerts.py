"""Use cases of the alerts the UI shows: read them, acknowledge one (audited)."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from ccl.ports import ALERT_STATES, Actor, Alert, IAlertStore, IAuditLog


class UnknownAlert(LookupError):
    pass


class AlreadyAcknowledged(ValueError):
    def __init__(self, alert_id: int, by: str | None):
        super().__init__(f"alert {alert_id} was acknowledged by {by}")
        self.by = by


class Alerts:
    def __init__(self, store: IAlertStore, audit: IAuditLog):
        self._store = store
        self._audit = audit

    def alerts(self, state: str, limit: int) -> Deferred:
        """Deferred[list[Alert]]; ``state`` is one of ALERT_STATES."""
        if state not in ALERT_STATES:
            raise ValueError(f"state is one of {', '.join(ALERT_STATES)}")
        return self._store.alerts(state, limit)

    async def acknowledge(self, alert_id: int, actor: Actor) -> Alert:
        """Raises UnknownAlert, AlreadyAcknowledged (audited as such)."""
        outcome = await self._store.acknowledge(alert_id, actor.username)
        if outcome.alert is None and outcome.earlier_by is None:
            raise UnknownAlert(alert_id)
        if outcome.alert is None:
            await self._audit.append(actor, "alert.acknowledge", str(alert_id), "already acknowledged",
                                     {"by": outcome.earlier_by})
            raise AlreadyAcknowledged(alert_id, outcome.earlier_by)
        await self._audit.append(actor, "alert.acknowledge", str(alert_id), "ok")
        return outcome.alert
