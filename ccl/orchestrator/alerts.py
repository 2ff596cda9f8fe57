"""Alert rules and the ``alerts`` table.

Every ``alert_interval`` the rules are evaluated into the set of conditions that hold now;
the table is brought in line in one transaction: a new condition is inserted (the partial
unique index keeps one open alert per rule and subject), a condition that no longer holds
is cleared. Both go out as ``NOTIFY ccl_events`` so the UI shows them at once.

Rules (thresholds in ``[orchestrator]``):
- service.fatal: a child gave up after crashing in a loop (critical);
- service.down: a wanted child not healthy for ``down_alert_after`` s (critical);
- service.restart_loop: ``restart_loop_count`` restarts within ``restart_loop_window`` s;
- disk.watermark: image root or database volume above ``disk_watermark`` % used;
- mes.silent: no MES telegram for ``mes_silent_after`` s while the last line speed > 0;
- gokiwon.backlog: more than ``backlog_max`` forwards pending for 고기원;
- mes.nak_rate: more than ``nak_rate_max`` % of the MES telegrams of the last
  ``nak_rate_window`` s refused (``rejected_telegrams``), once at least
  ``nak_rate_min_telegrams`` arrived in that window;
- postgres.write_failures: a service counted more than ``pg_failures_max`` failed PostgreSQL
  writes (its scraped ``*_pg_writes_total{result="failed"}``) in ``pg_failures_window`` s,
  or its /health has said its database is not ok for ``pg_unavailable_after`` s (critical);
- backup.stale: the last good database backup (``pgbackrest info``, read in a thread by
  BackupWatch) ended more than ``[backup] max_age_hours`` ago, or there is none, or the
  repository cannot be read; only once ``ccl backup setup`` was done;
- partition.default: rows in the DEFAULT partition of a monthly partitioned table (their month
  had no partition: a wrong MES clock, or partitions not made ahead); see docs/operations.md.

Before the rules, once at the first evaluation and then whenever the UTC date changes, the
monthly partitions of this month and the next ``[retention] partitions_ahead`` are created
where missing (ccl/adapters/storage/partitions.py). Dropping expired months is the retention
job's (ccl/orchestrator/retention_job.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from ccl.adapters.storage import partitions
from ccl.adapters.storage.postgres import UNAVAILABLE, notify_sql
from ccl.orchestrator.counters import CounterWindow, failed_writes

log = Logger()

RULES = ("service.fatal", "service.down", "service.restart_loop", "disk.watermark", "mes.silent", "gokiwon.backlog",
         "mes.nak_rate", "postgres.write_failures", "backup.stale",
         "partition.default")

#: Seconds before making partitions ahead is tried again after it failed (a log line each time;
#: the DEFAULT partitions keep every row meanwhile, partition.default says so).
PARTITIONS_RETRY_S = 3600.0

#: A record the database refused after it was ACKed is kept in rejected_telegrams with result
#: 00: a write failure (postgres.write_failures), not a NAK.
_ACCEPTED = "00"


@attrs.frozen
class Condition:
    rule: str
    subject: str
    severity: str
    message: str
    details: dict = attrs.field(factory=dict, eq=False, hash=False)


def _event(kind: str, row_id: int, rule: str, subject: str, severity: str | None = None, message: str | None = None) -> str:
    payload = {"type": "alert", "event": kind, "id": row_id, "rule": rule, "subject": subject}
    if severity:
        payload.update(severity=severity, message=message)
    return json.dumps(payload, ensure_ascii=False)


@defer.inlineCallbacks
def _sync(cursor, conditions: list[Condition]):
    changes = []
    for c in conditions:
        yield cursor.execute(
            "INSERT INTO alerts (rule, subject, severity, message, details) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (rule, subject) WHERE cleared_at IS NULL DO NOTHING RETURNING id",
            (c.rule, c.subject, c.severity, c.message, json.dumps(c.details, ensure_ascii=False, default=str)))
        row = yield cursor.fetchone()
        if row:
            yield cursor.execute(notify_sql(), (_event("raised", row[0], c.rule, c.subject, c.severity, c.message),))
            changes.append(("raised", c.rule, c.subject))
    keys = [f"{c.rule}\x1f{c.subject}" for c in conditions]
    yield cursor.execute(
        "UPDATE alerts SET cleared_at = now() WHERE cleared_at IS NULL AND rule = ANY(%s)"
        " AND NOT (rule || chr(31) || subject) = ANY(%s) RETURNING id, rule, subject",
        (list(RULES), keys))
    cleared = yield cursor.fetchall()
    for row_id, rule, subject in cleared:
        yield cursor.execute(notify_sql(), (_event("cleared", row_id, rule, subject),))
        changes.append(("cleared", rule, subject))
    return changes


@defer.inlineCallbacks
def _acknowledge(cursor, alert_id: int, actor: str):
    yield cursor.execute("UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s WHERE id = %s"
                         " AND acknowledged_at IS NULL RETURNING id, rule, subject", (actor, alert_id))
    row = cursor.fetchone()
    if row is None:
        return False
    payload = {"type": "alert", "event": "acknowledged", "id": row[0], "rule": row[1], "subject": row[2], "by": actor}
    yield cursor.execute(notify_sql(), (json.dumps(payload, ensure_ascii=False),))
    return True


def acknowledge(db, alert_id: int, actor: str) -> defer.Deferred:
    """Mark an alert seen by ``actor`` (and NOTIFY it); fires with True when it was open to acknowledge."""
    return db.runInteraction(_acknowledge, alert_id, actor)


def open_alerts(db) -> defer.Deferred:
    d = db.runQuery("SELECT id, rule, subject, severity, message, details, raised_at, acknowledged_at, acknowledged_by"
                    " FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at")
    keys = ("id", "rule", "subject", "severity", "message", "details", "raised_at", "acknowledged_at", "acknowledged_by")
    return d.addCallback(lambda rows: [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in zip(keys, row)} for row in rows])


def disk_usage(path: Path) -> dict | None:
    """Usage of the volume holding ``path`` (its nearest existing parent), or None."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None
    return {"path": str(path), "total": usage.total, "used": usage.used, "free": usage.free,
            "percent": round(100.0 * usage.used / usage.total, 2) if usage.total else 0.0}


class AlertRules:
    def __init__(self, reactor, monitor, db, settings, volumes: dict[str, Path],
                 disks: Callable[[], dict[str, dict | None]] | None = None, backups=None):
        """``disks``: the volumes' usage as last read elsewhere (the host sampler, in a thread);
        without it they are read here, on the caller's thread. ``backups``: a BackupWatch."""
        self._reactor = reactor
        self._disks = disks
        self._backups = backups
        self._monitor = monitor
        self._db = db
        self._settings = settings
        self.volumes = volumes
        self._down_since: dict[str, float] = {}
        self._database_away_since: dict[str, float] = {}
        self._failed_writes: dict[str, tuple[int | None, CounterWindow]] = {}  # id -> (pid, window)
        self._running = False
        self._idle: list[defer.Deferred] = []
        self.last_conditions: list[Condition] = []
        self._partitions_made_on = None  # the UTC date partitions were last made ahead on
        self._partitions_retry_at = 0.0  # after a failure, not before (reactor seconds)

    def idle(self) -> defer.Deferred:
        """Fires once no evaluation is in flight (shutdown waits for it before closing the database)."""
        if not self._running:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._idle.append(waiter)
        return waiter

    def service_conditions(self) -> list[Condition]:
        s = self._settings
        now = self._reactor.seconds()
        found = []
        for child in self._monitor.children.values():
            if child.state == "fatal":
                found.append(Condition("service.fatal", child.id, "critical",
                                       f"{child.id} gave up: {child.last_restart_reason}",
                                       {"last_exit": child.last_exit}))
            if child.wanted and child.state != "running":
                since = self._down_since.setdefault(child.id, now)
                if now - since >= s.down_alert_after:
                    found.append(Condition("service.down", child.id, "critical",
                                           f"{child.id} is {child.state} for {now - since:.0f} s",
                                           {"state": child.state, "health": child.health}))
            else:
                self._down_since.pop(child.id, None)
            recent = [t for t in child.restart_times if now - t <= s.restart_loop_window]
            if len(recent) >= s.restart_loop_count:
                found.append(Condition("service.restart_loop", child.id, "warning",
                                       f"{child.id} restarted {len(recent)} times in {s.restart_loop_window:g} s",
                                       {"last_restart_reason": child.last_restart_reason}))
        return found

    def disk_conditions(self) -> list[Condition]:
        found = []
        read = self._disks() if self._disks is not None else {name: disk_usage(path) for name, path in self.volumes.items()}
        for name, path in self.volumes.items():
            usage = read.get(name)
            if usage and usage["percent"] > self._settings.disk_watermark:
                found.append(Condition("disk.watermark", name, "critical",
                                       f"{name} volume ({path}) is {usage['percent']:.1f} % full"
                                       f" (watermark {self._settings.disk_watermark:g} %)", usage))
        return found

    def backup_conditions(self) -> list[Condition]:
        if self._backups is None:
            return []
        why = self._backups.stale(self._reactor.seconds())
        if why is None:
            return []
        last = self._backups.info.last_good() if self._backups.info else None
        return [Condition("backup.stale", "database", "warning", why,
                          {"last_backup": last.label if last else None,
                           "last_backup_end": last.stopped.isoformat() if last else None})]

    def write_failure_conditions(self) -> list[Condition]:
        """Services whose PostgreSQL writes fail: by their failed-write counter or their /health."""
        s = self._settings
        now = self._reactor.seconds()
        found = []
        for child in self._monitor.children.values():
            if not child.alive():
                self._database_away_since.pop(child.id, None)
                continue
            reasons, details = [], {}
            if child.spec.metrics_url:
                failed = self._failed_writes_in_window(child, now)
                if failed > s.pg_failures_max:
                    reasons.append(f"{failed:g} failed PostgreSQL writes in {s.pg_failures_window:g} s"
                                   f" (limit {s.pg_failures_max})")
                    details["failed_writes"] = failed
            database = (child.reported or {}).get("database")
            if database is not None and database != "ok":
                since = self._database_away_since.setdefault(child.id, now)
                if now - since >= s.pg_unavailable_after:
                    reasons.append(f"its /health says database {database} for {now - since:.0f} s")
                    details.update(database=database, database_error=child.reported.get("database_error"))
            else:
                self._database_away_since.pop(child.id, None)
            if reasons:
                found.append(Condition("postgres.write_failures", child.id, "critical",
                                       f"{child.id}: " + "; ".join(reasons), details))
        return found

    def _failed_writes_in_window(self, child, now: float) -> float:
        pid, window = self._failed_writes.get(child.id, (None, None))
        if window is None:
            window = CounterWindow(self._settings.pg_failures_window)
        if pid != child.pid:
            window.add(now, 0.0)  # a new process counts from 0
            self._failed_writes[child.id] = (child.pid, window)
        window.add(now, failed_writes(child.metrics))
        return window.increase(now)

    @defer.inlineCallbacks
    def database_conditions(self):
        s = self._settings
        found = []
        rows = yield self._db.runQuery(
            "WITH w AS (SELECT now() - make_interval(secs => %s) AS since)"
            " SELECT (SELECT line_speed FROM tc_4003_speed ORDER BY received_at DESC LIMIT 1),"
            " extract(epoch FROM now() - greatest("
            "  (SELECT max(received_at) FROM tc_4000_schedule), (SELECT max(received_at) FROM tc_4001_cut),"
            "  (SELECT max(received_at) FROM tc_4002_wpd), (SELECT max(received_at) FROM tc_4003_speed),"
            "  (SELECT max(last_seen_at) FROM link_status WHERE kind = 'mes'))),"
            " (SELECT count(*) FROM forward_outbox WHERE state = 'pending'),"
            " (SELECT count(*) FROM rejected_telegrams, w WHERE listener = 'mes' AND result_code <> %s"
            "   AND received_at > w.since),"
            " (SELECT count(*) FROM tc_4000_schedule, w WHERE received_at > w.since)"
            " + (SELECT count(*) FROM tc_4001_cut, w WHERE received_at > w.since)"
            " + (SELECT count(*) FROM tc_4002_wpd, w WHERE received_at > w.since)"
            " + (SELECT count(*) FROM tc_4003_speed, w WHERE received_at > w.since)",
            (s.nak_rate_window, _ACCEPTED))
        speed, silent, backlog, refused, stored = rows[0]
        if speed is not None and speed > 0 and silent is not None and silent > s.mes_silent_after:
            found.append(Condition("mes.silent", "mes", "critical",
                                   f"no MES telegram for {silent:.0f} s while the line runs (last speed {speed})",
                                   {"silent_seconds": float(silent), "line_speed": speed}))
        if backlog > s.backlog_max:
            found.append(Condition("gokiwon.backlog", "gokiwon", "warning",
                                   f"{backlog} telegrams waiting for 고기원 (limit {s.backlog_max})",
                                   {"pending": backlog}))
        received = refused + stored
        if received >= s.nak_rate_min_telegrams and 100.0 * refused / received > s.nak_rate_max:
            by_code = yield self._db.runQuery(
                "SELECT result_code, count(*) FROM rejected_telegrams WHERE listener = 'mes' AND result_code <> %s"
                " AND received_at > now() - make_interval(secs => %s) GROUP BY result_code ORDER BY 2 DESC",
                (_ACCEPTED, s.nak_rate_window))
            rate = 100.0 * refused / received
            found.append(Condition("mes.nak_rate", "mes", "warning",
                                   f"{refused} of {received} MES telegrams refused in the last"
                                   f" {s.nak_rate_window:g} s ({rate:.1f} %, limit {s.nak_rate_max:g} %)",
                                   {"refused": refused, "received": received, "rate_percent": round(rate, 2),
                                    "by_code": {code: count for code, count in by_code}}))
        stray = yield self._db.runQuery(partitions.DEFAULT_ROWS_SQL)
        for table, count in stray:
            if count:
                found.append(Condition("partition.default", table, "warning",
                                       f"{count} rows in {table}_default: their month has no partition",
                                       {"rows": count}))
        return found

    @defer.inlineCallbacks
    def make_partitions(self):
        """This month's and the next months' partitions, once per UTC date (by the reactor's clock)."""
        now = self._reactor.seconds()
        today = datetime.fromtimestamp(now, timezone.utc).date()
        if self._partitions_made_on == today or now < self._partitions_retry_at:
            return
        try:
            yield self._db.runQuery(partitions.ENSURE_SQL,
                                    partitions.ensure_params(today, self._settings.partitions_ahead))
        except UNAVAILABLE:
            raise
        except Exception:
            # The alert rules go on; the DEFAULT partitions keep every row meanwhile.
            self._partitions_retry_at = now + PARTITIONS_RETRY_S
            log.failure("making the monthly partitions ahead failed; tried again in {seconds:g} s",
                        seconds=PARTITIONS_RETRY_S)
            return
        self._partitions_made_on = today
        log.info("monthly partitions made up to {months} months ahead of {today}",
                 months=self._settings.partitions_ahead, today=today.isoformat())

    @defer.inlineCallbacks
    def evaluate(self):
        """Evaluate every rule and bring the alerts table in line; fires with the changes."""
        if self._running:
            return []
        self._running = True
        try:
            conditions = (self.service_conditions() + self.disk_conditions() + self.write_failure_conditions()
                          + self.backup_conditions())
            try:
                yield self.make_partitions()
                conditions += yield self.database_conditions()
            except UNAVAILABLE:
                # The database itself is the problem: the service rules above say so.
                log.info("alert rules: database unavailable, database rules skipped")
                return []
            self.last_conditions = conditions
            changes = yield self._db.runInteraction(_sync, conditions)
            for kind, rule, subject in changes:
                log.warn("alert {kind}: {rule} {subject}", kind=kind, rule=rule, subject=subject)
            return changes
        except UNAVAILABLE:
            return []
        finally:
            self._running = False
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)
