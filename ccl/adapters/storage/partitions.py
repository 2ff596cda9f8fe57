"""Monthly partitions of the large tables: create them ahead, find rows in the DEFAULT
partitions, and the retention job that summarises coils and then drops expired months.

The partitions themselves are made by the SQL function ``ccl_month_partition`` (schema/117),
so the migration, this module and the orchestrator create them the same way. Blocking
psycopg2 functions (the CLI and a SyncPool call them); the orchestrator uses the statements.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone

import attrs
from twisted.logger import Logger

from ccl.domain.partitions import Expired, add_months, expired, months_ahead

log = Logger()

#: The partitioned tables, by retention group ([retention] <group>_months).
GROUPS: dict[str, tuple[str, ...]] = {
    "process": ("tc_4001_cut", "tc_4002_wpd", "tc_4003_speed", "rejected_telegrams"),
    "defects": ("defect_detections",),
}
#: Rows of other tables that belong to a partition's rows (table, its column naming them by id):
#: deleted before the partition is dropped (dropping a partition does not cascade; the foreign
#: keys of schema/123 would refuse to let it go otherwise).
DEPENDENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "defect_detections": (("tracking_defects", "defect_id"), ("periodic_members", "defect_id"),
                          ("defect_reviews", "defect_id"), ("defect_event_ids", "defect_id")),
}
TABLES: tuple[str, ...] = tuple(table for tables in GROUPS.values() for table in tables)

#: One statement: this month and the next ``ahead`` of every partitioned table (idempotent).
ENSURE_SQL = ("SELECT ccl_month_partition(t::regclass, m::date) FROM unnest(%s::text[]) AS t,"
              " generate_series(%s::date, %s::date, interval '1 month') AS m")

#: One statement: rows in each DEFAULT partition (counted up to 10,001; it should hold none).
DEFAULT_ROWS_SQL = " UNION ALL ".join(
    f"SELECT '{table}', (SELECT count(*) FROM (SELECT 1 FROM {table}_default LIMIT 10001) AS d)" for table in TABLES)


def ensure_params(today: date, ahead: int) -> tuple:
    months = months_ahead(today, ahead)
    return (list(TABLES), months[0], months[-1])


def ensure_partitions(connection, today: date, ahead: int) -> None:
    """Create this month's and the next ``ahead`` months' partitions where missing."""
    with connection.cursor() as cursor:
        cursor.execute(ENSURE_SQL, ensure_params(today, ahead))


def default_rows(connection) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(DEFAULT_ROWS_SQL)
        return {table: count for table, count in cursor.fetchall() if count}


def partitions_of(connection, table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                       " WHERE i.inhparent = %s::regclass ORDER BY c.relname", (table,))
        return [row[0] for row in cursor.fetchall()]


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime.combine(month, time(), timezone.utc)
    return start, datetime.combine(add_months(month, 1), time(), timezone.utc)


# Coils named in a month of data: its cuts (TC 4001), its schedules (TC 4000, kept), the tracked
# coils whose head weld passed in it and its defects. Defects marked false positive do not count.
# grade, disposition: from coil_grades (schema 100), an override over the computed grade; of
# several passes of a coil number (tracked coils "#2" ...) the last graded one.
SUMMARY_SQL = """
WITH coils AS (
    SELECT coil_number FROM tc_4001_cut WHERE sent_at >= %(since)s AND sent_at < %(until)s
    UNION SELECT coil_number FROM tc_4000_schedule WHERE sent_at >= %(since)s AND sent_at < %(until)s
    UNION SELECT coil_number FROM tracking_coils WHERE head_wpd_at >= %(since)s AND head_wpd_at < %(until)s
    UNION SELECT coil_number FROM defect_detections WHERE received_at >= %(since)s AND received_at < %(until)s
), schedule AS (
    SELECT DISTINCT ON (coil_number) coil_number, length_value FROM tc_4000_schedule
    WHERE coil_number IN (SELECT coil_number FROM coils) ORDER BY coil_number, received_at DESC, id DESC
), seen AS (
    SELECT coil_number, min(at) AS first_at, max(at) AS last_at FROM (
        SELECT coil_number, received_at AS at FROM tc_4000_schedule WHERE coil_number IN (SELECT coil_number FROM coils)
        UNION ALL SELECT coil_number, received_at FROM tc_4001_cut WHERE coil_number IN (SELECT coil_number FROM coils)
        UNION ALL SELECT coil_number, head_wpd_at FROM tracking_coils WHERE coil_number IN (SELECT coil_number FROM coils)
    ) AS times GROUP BY coil_number
), cuts AS (
    SELECT coil_number, count(*) AS pieces, sum(winding_length) AS winding FROM tc_4001_cut
    WHERE coil_number IN (SELECT coil_number FROM coils) GROUP BY coil_number
), tracked AS (
    SELECT coil_number, max(length_m) AS length_m FROM tracking_coils
    WHERE coil_number IN (SELECT coil_number FROM coils) GROUP BY coil_number
), counted AS (
    SELECT coil_number, defect_type, severity, count(*) AS n FROM defect_detections
    WHERE coil_number IN (SELECT coil_number FROM coils) AND review_status <> 'false_positive'
    GROUP BY coil_number, defect_type, severity
), by_type AS (
    SELECT coil_number, jsonb_object_agg(defect_type, n) AS types, sum(n) AS total FROM (
        SELECT coil_number, defect_type, sum(n) AS n FROM counted GROUP BY coil_number, defect_type) AS t
    GROUP BY coil_number
), by_severity AS (
    SELECT coil_number, jsonb_object_agg(severity, n) AS severities FROM (
        SELECT coil_number, severity, sum(n) AS n FROM counted GROUP BY coil_number, severity) AS s
    GROUP BY coil_number
), graded AS (
    SELECT DISTINCT ON (coil_number) coil_number, coalesce(override_grade, grade) AS grade,
        coalesce(override_disposition, disposition) AS disposition FROM coil_grades
    WHERE coil_number IN (SELECT coil_number FROM coils)
    ORDER BY coil_number, coalesce(overridden_at, graded_at) DESC, tracked_coil DESC
), written AS (
    INSERT INTO coil_summaries AS old (coil_number, first_seen_at, last_seen_at, mes_length_m, tracked_length_m,
        cut_pieces, winding_length_m, defects, defects_by_type, defects_by_severity, grade, disposition, summarized_at)
    SELECT c.coil_number, seen.first_at, seen.last_at, schedule.length_value, tracked.length_m,
        coalesce(cuts.pieces, 0), cuts.winding, coalesce(by_type.total, 0), coalesce(by_type.types, '{}'),
        coalesce(by_severity.severities, '{}'), graded.grade, graded.disposition, %(now)s
    FROM coils c LEFT JOIN schedule USING (coil_number) LEFT JOIN seen USING (coil_number)
        LEFT JOIN cuts USING (coil_number) LEFT JOIN tracked USING (coil_number)
        LEFT JOIN by_type USING (coil_number) LEFT JOIN by_severity USING (coil_number)
        LEFT JOIN graded USING (coil_number)
    ON CONFLICT (coil_number) DO UPDATE SET
        first_seen_at = least(old.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(old.last_seen_at, excluded.last_seen_at),
        mes_length_m = coalesce(excluded.mes_length_m, old.mes_length_m),
        tracked_length_m = coalesce(excluded.tracked_length_m, old.tracked_length_m),
        cut_pieces = greatest(old.cut_pieces, excluded.cut_pieces),
        winding_length_m = greatest(old.winding_length_m, excluded.winding_length_m),
        defects = CASE WHEN excluded.defects >= old.defects THEN excluded.defects ELSE old.defects END,
        defects_by_type = CASE WHEN excluded.defects >= old.defects THEN excluded.defects_by_type
                               ELSE old.defects_by_type END,
        defects_by_severity = CASE WHEN excluded.defects >= old.defects THEN excluded.defects_by_severity
                                   ELSE old.defects_by_severity END,
        grade = coalesce(excluded.grade, old.grade),
        disposition = coalesce(excluded.disposition, old.disposition),
        summarized_at = excluded.summarized_at
    RETURNING 1
)
SELECT count(*) FROM written
"""


@attrs.frozen
class RetentionReport:
    dry_run: bool
    expired: tuple[Expired, ...]
    summarized: int
    dropped: tuple[str, ...]

    def as_json(self) -> dict:
        return {"dry_run": self.dry_run, "summarized_coils": self.summarized, "dropped": list(self.dropped),
                "expired": [{"table": e.table, "partition": e.partition, "month": e.month.strftime("%Y-%m")}
                            for e in self.expired]}


def expired_partitions(connection, today: date, keep_months: dict[str, int]) -> list[Expired]:
    found = []
    for group, tables in GROUPS.items():
        for table in tables:
            found += expired(table, partitions_of(connection, table), today, keep_months.get(group, 0))
    return sorted(found, key=lambda e: (e.month, e.table))


def run_retention(connection, today: date, keep_months: dict[str, int], *, actor: str,
                  dry_run: bool = False, now: datetime | None = None) -> RetentionReport:
    """Summarise the coils of every expired month, then DETACH and DROP its partitions.

    Blocking; runs in the caller's transaction (commit afterwards). A dry run changes nothing
    and reports what would go. Audited in audit_logs (action ``retention.run``) when it drops.
    """
    now = now or datetime.now(timezone.utc)
    victims = expired_partitions(connection, today, keep_months)
    if dry_run:
        return RetentionReport(True, tuple(victims), 0, ())
    summarized = 0
    dropped = []
    with connection.cursor() as cursor:
        for month in sorted({v.month for v in victims}):
            since, until = _bounds(month)
            cursor.execute(SUMMARY_SQL, {"since": since, "until": until, "now": now})
            count = cursor.fetchone()[0]
            summarized += count
            log.info("retention: {count} coil summaries written for {month}", count=count,
                     month=month.strftime("%Y-%m"))
        for victim in victims:
            for table, column in DEPENDENTS.get(victim.table, ()):
                cursor.execute(f'DELETE FROM "{table}" WHERE "{column}" IN (SELECT id FROM "{victim.partition}")')
                if cursor.rowcount:
                    log.info("retention: deleted {count} rows of {table} for {partition}", count=cursor.rowcount,
                             table=table, partition=victim.partition)
            cursor.execute(f'ALTER TABLE "{victim.table}" DETACH PARTITION "{victim.partition}"')
            cursor.execute(f'DROP TABLE "{victim.partition}"')
            dropped.append(victim.partition)
            log.info("retention: dropped {partition} ({table}, {month})", partition=victim.partition,
                     table=victim.table, month=victim.month.strftime("%Y-%m"))
        report = RetentionReport(False, tuple(victims), summarized, tuple(dropped))
        if dropped:
            cursor.execute("INSERT INTO audit_logs (actor, action, target, result, details) VALUES"
                           " (%s, 'retention.run', 'partitions', 'ok', %s)",
                           (actor, json.dumps(report.as_json() | {"keep_months": keep_months})))
    return report
