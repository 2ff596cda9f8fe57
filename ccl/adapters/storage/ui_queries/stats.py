"""통계: defects over a date range (plant-time days, both ends inclusive).

Two queries, run at once on the pool: cells grouped by (day, type, severity, confidence bin),
folded here into the Pareto, the daily trend and the confidence histogram; and defects per
coil for the customer breakdown. Each reads the daily roll-up (rollup.py, schema/070) for the
days summed and unchanged since, and the covering index defect_detections_time_cover
(schema/060) for the other days (today, recently changed ones): exact at every moment.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, gather, rows_without_jit
from ccl.adapters.storage.ui_queries.rollup import HISTOGRAM_BINS
from ccl.ports import STATISTICS_MAX_DAYS

MAX_DAYS = STATISTICS_MAX_DAYS


def _params(date_from: datetime.date, date_to: datetime.date) -> dict:
    return {"from": date_from, "to": date_to, "tz": PLANT_TZ, "bins": HISTOGRAM_BINS}


# Days of the range summed in the roll-up and not changed since (schema/070 and rollup.py),
# and the other days of the range, read from the defects themselves one day at a time. One
# statement, one snapshot: the two halves never overlap nor miss a day.
_SPLIT = """
    rolled AS MATERIALIZED (
        SELECT r.day FROM ui_stats_days r WHERE r.day BETWEEN %(from)s::date AND %(to)s::date
        AND NOT EXISTS (SELECT 1 FROM ui_stats_dirty m WHERE m.day = r.day)),
    live AS MATERIALIZED (
        SELECT %(from)s::date + i AS day FROM generate_series(0, %(to)s::date - %(from)s::date) i
        WHERE NOT EXISTS (SELECT 1 FROM rolled r WHERE r.day = %(from)s::date + i))"""

_LIVE_DAY = ("d.detection_time >= (l.day::timestamp AT TIME ZONE %(tz)s)"
             " AND d.detection_time < ((l.day + 1)::timestamp AT TIME ZONE %(tz)s)")


def _cells(db, params: dict) -> defer.Deferred:
    # The roll-up's rows count along one dimension each (schema/070); the live days' cells are
    # cut the same way, and all of it summed here by GROUPING SETS: a year is ~1,900 rows to
    # hand over instead of ~12,000 (NULL groups of the other dimensions are ignored by fold).
    return rows_without_jit(db, f"""
        WITH {_SPLIT},
        cells AS (
            SELECT c.day, c.defect_type, c.severity, c.bin::int AS bin, c.n FROM ui_stats_cells c
            WHERE c.day BETWEEN %(from)s::date AND %(to)s::date AND c.day IN (SELECT day FROM rolled)
            UNION ALL
            SELECT x.day, x.defect_type, x.severity, x.bin, count(*)
            FROM (SELECT l.day, d.defect_type, d.severity,
                         least(width_bucket(d.confidence_score, 0, 1, %(bins)s), %(bins)s) AS bin
                  FROM live l JOIN defect_detections d ON {_LIVE_DAY}) x
            GROUP BY GROUPING SETS ((1, 2), (1, 3), (1, 4)))
        SELECT (day - date '1970-01-01') AS day, defect_type, severity, bin, sum(n)::bigint AS n
        FROM cells GROUP BY GROUPING SETS ((defect_type), (day, severity), (bin))""", params, wrap=False)


def by_customer(db, params: dict) -> defer.Deferred:
    """Defects and coils per customer (the customer of each coil's latest schedule). A coil
    counts once, on its first day in the range: where its previous defect day (prev_day) is
    none or before the range."""
    return rows_without_jit(db, f"""
        WITH {_SPLIT},
        per_day AS (
            SELECT c.customer_name, c.n,
                   CASE WHEN c.prev_day IS NULL OR c.prev_day < %(from)s::date THEN c.coils ELSE 0 END AS coils
            FROM ui_stats_coils c
            WHERE c.day BETWEEN %(from)s::date AND %(to)s::date AND c.day IN (SELECT day FROM rolled)
            UNION ALL
            -- a subquery per coil, not a join: the planner cannot know how few live coils there are
            SELECT coalesce((SELECT u.customer_name FROM ui_coil_latest u WHERE u.coil_number = x.coil_number), ''),
                   x.n, CASE WHEN p.prev_day IS NULL OR p.prev_day < %(from)s::date THEN 1 ELSE 0 END
            FROM (SELECT l.day, d.coil_number, count(*) AS n FROM live l JOIN defect_detections d ON {_LIVE_DAY}
                  GROUP BY 1, 2) x
            CROSS JOIN LATERAL (
                SELECT (max(e.detection_time) AT TIME ZONE %(tz)s)::date AS prev_day FROM defect_detections e
                WHERE e.coil_number = x.coil_number AND e.detection_time < (x.day::timestamp AT TIME ZONE %(tz)s)) p)
        SELECT customer_name, sum(n)::bigint AS n, sum(coils)::bigint AS coils
        FROM per_day GROUP BY 1 ORDER BY n DESC, customer_name LIMIT 30""", params)


def fold(cells: list[tuple]) -> dict:
    """Pareto (count per type, most frequent first, with the cumulative share), daily counts
    per severity, and the confidence histogram, from (day number since 1970, type, severity, bin, n)
    cells. A cell may leave out (None) what it does not count towards: (day, type, None, None, n)
    counts for the Pareto only, (day, None, severity, None, n) for the trend only, and so on."""
    types: Counter = Counter()
    days: dict[str, Counter] = defaultdict(Counter)
    bins: Counter = Counter()
    epoch = datetime.date(1970, 1, 1)
    for day_no, defect_type, severity, bin_no, n in cells:
        if defect_type is not None:
            types[defect_type] += n
        if severity is not None:
            days[(epoch + datetime.timedelta(days=day_no)).isoformat()][severity] += n
        if bin_no is not None:
            bins[bin_no] += n
    total = sum(types.values())
    pareto, running = [], 0
    for defect_type, n in sorted(types.items(), key=lambda item: (-item[1], item[0])):
        running += n
        pareto.append({"defect_type": defect_type, "n": n, "cumulative": running / total})
    daily = [{"day": day, **{s: counts.get(s, 0) for s in ("low", "medium", "high", "critical")},
              "n": sum(counts.values())} for day, counts in sorted(days.items())]
    confidence = [{"bin": b, "low": (b - 1) / HISTOGRAM_BINS, "high": b / HISTOGRAM_BINS, "n": bins.get(b, 0)}
                  for b in range(1, HISTOGRAM_BINS + 1)]
    return {"total": total, "pareto": pareto, "daily": daily, "confidence": confidence}


def by_grade(db, params: dict) -> defer.Deferred:
    """Coils graded in the range (plant days of graded_at) by the grade and disposition in force
    (an override where one was made), most first."""
    return rows_without_jit(db, """
        SELECT coalesce(override_grade, grade) AS grade, coalesce(override_disposition, disposition) AS disposition,
               count(*) AS coils, count(*) FILTER (WHERE override_grade IS NOT NULL) AS overridden
        FROM coil_grades
        WHERE graded_at >= (%(from)s::date::timestamp AT TIME ZONE %(tz)s)
          AND graded_at < ((%(to)s::date + 1)::timestamp AT TIME ZONE %(tz)s)
        GROUP BY 1, 2 ORDER BY coils DESC, 1, 2""", params)


@defer.inlineCallbacks
def statistics(db, date_from: datetime.date, date_to: datetime.date) -> defer.Deferred:
    params = _params(date_from, date_to)
    found = yield gather(cells=_cells(db, params), by_customer=by_customer(db, params), by_grade=by_grade(db, params))
    result = fold(found["cells"])
    result["by_customer"] = found["by_customer"]
    result["by_grade"] = found["by_grade"]
    result["from"], result["to"] = date_from.isoformat(), date_to.isoformat()
    return result
