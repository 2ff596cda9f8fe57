"""통계: defects over a date range (plant-time days, both ends inclusive).

Two scans of the covering index defect_detections_time_cover (schema/060): one grouped by
(day, type, severity, confidence bin), folded here into the Pareto, the daily trend and the
confidence histogram; one by coil for the customer breakdown. Both run at once on the pool.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections import Counter, defaultdict

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, gather, rows_without_jit

HISTOGRAM_BINS = 20
MAX_DAYS = 366

_RANGE = ("d.detection_time >= (%(from)s::date AT TIME ZONE %(tz)s)"
          " AND d.detection_time < ((%(to)s::date + 1) AT TIME ZONE %(tz)s)")


def _params(date_from: datetime.date, date_to: datetime.date) -> dict:
    # Korea keeps no daylight saving time: a fixed offset turns each timestamp into its plant
    # day with integer arithmetic, much cheaper per row than AT TIME ZONE.
    offset = zoneinfo.ZoneInfo(PLANT_TZ).utcoffset(datetime.datetime.combine(date_from, datetime.time()))
    return {"from": date_from, "to": date_to, "tz": PLANT_TZ, "bins": HISTOGRAM_BINS,
            "offset": int(offset.total_seconds())}


def _cells(db, params: dict) -> defer.Deferred:
    # date_part (double precision), not extract (numeric, much slower per row)
    return rows_without_jit(db, f"""
        SELECT floor((date_part('epoch', d.detection_time) + %(offset)s) / 86400)::int AS day, d.defect_type, d.severity,
               least(width_bucket(d.confidence_score, 0, 1, %(bins)s), %(bins)s) AS bin, count(*) AS n
        FROM defect_detections d WHERE {_RANGE} GROUP BY 1, 2, 3, 4""", params, wrap=False)


def by_customer(db, params: dict) -> defer.Deferred:
    """Defects and coils per customer (the customer of each coil's latest schedule)."""
    return rows_without_jit(db, f"""
        SELECT coalesce(s.customer_name, '') AS customer_name, sum(c.n) AS n, count(*) AS coils
        FROM (SELECT d.coil_number, count(*) AS n FROM defect_detections d WHERE {_RANGE}
              GROUP BY d.coil_number) c
        LEFT JOIN LATERAL (SELECT customer_name FROM tc_4000_schedule s WHERE s.coil_number = c.coil_number
                           ORDER BY s.received_at DESC LIMIT 1) s ON true
        GROUP BY 1 ORDER BY n DESC LIMIT 30""", params)


def fold(cells: list[tuple]) -> dict:
    """Pareto (count per type, most frequent first, with the cumulative share), daily counts
    per severity, and the confidence histogram, from (day number since 1970, type, severity, bin, n) cells."""
    types: Counter = Counter()
    days: dict[str, Counter] = defaultdict(Counter)
    bins: Counter = Counter()
    epoch = datetime.date(1970, 1, 1)
    for day_no, defect_type, severity, bin_no, n in cells:
        types[defect_type] += n
        days[(epoch + datetime.timedelta(days=day_no)).isoformat()][severity] += n
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


@defer.inlineCallbacks
def statistics(db, date_from: datetime.date, date_to: datetime.date) -> defer.Deferred:
    params = _params(date_from, date_to)
    found = yield gather(cells=_cells(db, params), by_customer=by_customer(db, params))
    result = fold(found["cells"])
    result["by_customer"] = found["by_customer"]
    result["from"], result["to"] = date_from.isoformat(), date_to.isoformat()
    return result
