"""The daily roll-up behind 통계 (tables and triggers: schema/070_ui_stats_rollup.sql).

``refresh`` sums closed plant days into ui_stats_cells / ui_stats_coils: first the days a
change marked dirty, then, oldest first, days never summed (a backfill of a big history goes
``max_days`` at a time). ccl-ui runs it every ``[ui] stats_refresh_seconds``.

Freshness: none needed for correctness. The statistics use the roll-up only for days that
are summed AND have no pending mark; every other day (today, yesterday during the first
``GRACE`` after midnight, days changed since their last sum) is read from defect_detections.
A refresh only moves days from the slow path to the fast one.

Why the marks stay right under concurrency: a mark commits with the change that made it.
``refresh`` reads the marks first and sums afterwards (READ COMMITTED: the sums see at least
what the marks saw), then deletes exactly the marks it read; a mark committed meanwhile stays
for the next run. Rows of "today" are not marked (that keeps ingestion free of extra writes),
so a day is first summed only ``GRACE`` after it ended, when no transaction that began on it
can still be writing.
"""

from __future__ import annotations

import datetime

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ

#: A day is summed this long after its end at the earliest (see the module docstring).
GRACE = "1 hour"
HISTOGRAM_BINS = 20
#: pg_try_advisory_xact_lock key: one refresh at a time even with several ccl-ui processes.
_LOCK = 0x0CC1_5747

_DAY_RANGE = ("d.detection_time >= (t.day::timestamp AT TIME ZONE %(tz)s)"
              " AND d.detection_time < ((t.day + 1)::timestamp AT TIME ZONE %(tz)s)")

_SUM_CELLS = f"""
    INSERT INTO ui_stats_cells (day, defect_type, severity, bin, n)
    SELECT t.day, d.defect_type, d.severity,
           least(width_bucket(d.confidence_score, 0, 1, {HISTOGRAM_BINS}), {HISTOGRAM_BINS}), count(*)
    FROM unnest(%(days)s::date[]) t(day) JOIN defect_detections d ON {_DAY_RANGE}
    GROUP BY GROUPING SETS ((1, 2), (1, 3), (1, 4))"""

# The coil's customer: ui_coil_latest (schema/071) names its newest schedule row.
_SUM_COILS = f"""
    INSERT INTO ui_stats_coils (day, customer_name, prev_day, n, coils)
    SELECT c.day, coalesce(u.customer_name, ''), p.prev_day, sum(c.n), count(*)
    FROM (SELECT t.day, d.coil_number, count(*) AS n
          FROM unnest(%(days)s::date[]) t(day) JOIN defect_detections d ON {_DAY_RANGE}
          GROUP BY 1, 2) c
    LEFT JOIN ui_coil_latest u ON u.coil_number = c.coil_number
    CROSS JOIN LATERAL (
        SELECT (max(e.detection_time) AT TIME ZONE %(tz)s)::date AS prev_day FROM defect_detections e
        WHERE e.coil_number = c.coil_number AND e.detection_time < (c.day::timestamp AT TIME ZONE %(tz)s)) p
    GROUP BY 1, 2, 3"""


def refresh(db, now: datetime.datetime, max_days: int = 31, max_marks: int = 10_000) -> defer.Deferred:
    """Sum the dirty days and up to ``max_days`` never-summed days closed ``GRACE`` before
    ``now``; fires with the list of days summed (empty when there was nothing to do or
    another refresh runs)."""

    @defer.inlineCallbacks
    def interaction(cursor):
        yield cursor.execute("SET LOCAL jit = off")
        yield cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK,))
        if not cursor.fetchone()[0]:
            return []
        yield cursor.execute("SELECT id, day FROM ui_stats_dirty ORDER BY id LIMIT %s", (max_marks,))
        marks = cursor.fetchall()  # (mark id, day)
        ids = [mark_id for mark_id, _ in marks]
        params = {"tz": PLANT_TZ, "grace": GRACE, "limit": max_days, "now": now,
                  "marked": sorted({day for _, day in marks})}
        # marked days already summed, and the oldest closed days never summed
        yield cursor.execute("""
            SELECT day FROM ui_stats_days WHERE day = ANY(%(marked)s::date[])
            UNION
            (SELECT f.first + i FROM
                 (SELECT (min(detection_time) AT TIME ZONE %(tz)s)::date AS first FROM defect_detections) f,
                 generate_series(0, ((%(now)s::timestamptz - %(grace)s::interval) AT TIME ZONE %(tz)s)::date - 1 - f.first) i
             WHERE NOT EXISTS (SELECT 1 FROM ui_stats_days s WHERE s.day = f.first + i)
             ORDER BY 1 LIMIT %(limit)s)""", params)
        days = sorted(day for (day,) in cursor.fetchall())
        if days:
            params["days"] = days
            yield cursor.execute("DELETE FROM ui_stats_cells WHERE day = ANY(%(days)s::date[])", params)
            yield cursor.execute("DELETE FROM ui_stats_coils WHERE day = ANY(%(days)s::date[])", params)
            yield cursor.execute(_SUM_CELLS, params)
            yield cursor.execute(_SUM_COILS, params)
            yield cursor.execute("INSERT INTO ui_stats_days (day) SELECT unnest(%(days)s::date[])"
                                 " ON CONFLICT DO NOTHING", params)
        if ids:
            yield cursor.execute("DELETE FROM ui_stats_dirty WHERE id = ANY(%s)", (ids,))
        return days

    return db.runInteraction(interaction)


@defer.inlineCallbacks
def refresh_all(db, now: datetime.datetime, max_days: int = 31) -> defer.Deferred:
    """Refresh until nothing is left (tests, benchmarks, and after a long outage)."""
    total = []
    while True:
        days = yield refresh(db, now, max_days=max_days)
        total.extend(days)
        pending = yield db.runQuery("SELECT count(*) FROM ui_stats_dirty")
        if not days and not pending[0][0]:
            return total
