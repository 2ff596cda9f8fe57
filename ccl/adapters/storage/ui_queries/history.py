"""코일 이력: search the coils, page by page, sortable on whitelisted columns only; CSV export.

A coil is its latest TC 4000 schedule row (a coil can be rescheduled; the newest row wins),
dated by when that row arrived. ui_coil_latest (schema/071, kept by triggers in the same
transaction) names that row for every coil.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, like_pattern, one, rows
from ccl.domain import coil_search
from ccl.domain.coil_search import COUNT_CAP, CSV_COLUMNS, PAGE_SIZES, BadSearch, Search  # noqa: F401 (re-exported for callers of the queries)

#: Sort keys (coil_search.SORTABLE) -> the SQL expression. Nothing else reaches ORDER BY.
SORTABLE = {
    "received_at": "l.received_at",
    "coil_number": "l.coil_number",
    "customer_name": "l.customer_name",
    "ccl_bom": "s.ccl_bom",
    "thickness": "s.thickness",
    "width": "s.width",
    "length_value": "s.length_value",
}
if tuple(SORTABLE) != coil_search.SORTABLE:  # the domain's list and this map name the same keys
    raise ImportError("ui_queries.history.SORTABLE and coil_search.SORTABLE differ")


def where_clause(query: Search) -> tuple[str, dict[str, Any]]:
    """The WHERE clause over ``l`` (ui_coil_latest: each coil's newest schedule row,
    schema/071) and its named parameters. Every filter is on ``l``, so counting never
    touches the wide schedule rows."""
    clauses = [
        # ::timestamp: a bare date would become a timestamptz in the SESSION's time zone first
        "l.received_at >= (%(from)s::date::timestamp AT TIME ZONE %(tz)s)",
        "l.received_at < ((%(to)s::date + 1)::timestamp AT TIME ZONE %(tz)s)",
    ]
    params: dict[str, Any] = {"from": query.date_from, "to": query.date_to, "tz": PLANT_TZ}
    # LIKE, not ILIKE: ILIKE is several times slower here. Coil numbers are upper case in
    # practice, so what the user typed matches as typed or upper-cased.
    if query.coil:
        params["coil"] = like_pattern(query.coil)
        if query.coil == query.coil.upper():
            clauses.append("l.coil_number LIKE %(coil)s")
        else:
            clauses.append("(l.coil_number LIKE %(coil)s OR l.coil_number LIKE %(coil_upper)s)")
            params["coil_upper"] = like_pattern(query.coil.upper())
    if query.customer:
        clauses.append("l.customer_name LIKE %(customer)s")
        params["customer"] = like_pattern(query.customer)
    if query.defect_type:
        clauses.append("EXISTS (SELECT 1 FROM defect_detections d WHERE d.coil_number = l.coil_number"
                       " AND d.defect_type = %(defect_type)s)")
        params["defect_type"] = query.defect_type
    # The grade in force of the coil's newest graded pass: the override where one was made.
    for name, column in (("grade", "grade"), ("disposition", "disposition")):
        value = getattr(query, name)
        if value:
            clauses.append(f"(SELECT coalesce(g.override_{column}, g.{column}) FROM coil_grades g"
                           f" WHERE g.coil_number = l.coil_number ORDER BY g.graded_at DESC LIMIT 1) = %({name})s")
            params[name] = value
    return " AND ".join(clauses), params


def order_clause(query: Search) -> str:
    direction = "DESC" if query.descending else "ASC"
    # NOT NULL columns without NULLS LAST, so that an index serves the sort
    nulls = "" if query.sort in ("received_at", "coil_number") else " NULLS LAST"
    return f"{SORTABLE[query.sort]} {direction}{nulls}, l.schedule_id {direction}"




#: A coil's newest schedule row: ``l`` names it, ``s`` is the row itself.
_COILS = "ui_coil_latest l JOIN tc_4000_schedule s ON s.id = l.schedule_id"
_LIST_COLUMNS = """s.id, s.coil_number, s.received_at, s.customer_name, s.ccl_bom, s.product_group,
    s.thickness, s.width, s.length_value, s.weight"""


@defer.inlineCallbacks
def search(db, query: Search) -> defer.Deferred:
    """One page of coils with their defect counts, plus the total (capped at COUNT_CAP)."""
    where, params = where_clause(query)
    params = dict(params, limit=query.page_size, offset=(query.page - 1) * query.page_size, cap=COUNT_CAP + 1)
    page, counted = yield defer.gatherResults([
        rows(db, f"""
            SELECT p.*, (SELECT count(*) FROM defect_detections d WHERE d.coil_number = p.coil_number) AS defects,
                   (SELECT max(w.received_at) FROM tc_4002_wpd w WHERE w.coil_number = p.coil_number) AS wpd_at,
                   tc.completeness, tc.tracked_coil, gr.grade, gr.disposition, gr.overridden
            FROM (SELECT {_LIST_COLUMNS}, row_number() OVER (ORDER BY {order_clause(query)}) AS row_order
                  FROM {_COILS} WHERE {where}
                  ORDER BY {order_clause(query)} LIMIT %(limit)s OFFSET %(offset)s) p
            LEFT JOIN LATERAL (SELECT completeness, tracked_coil FROM tracking_coils c
                               WHERE c.coil_number = p.coil_number ORDER BY c.head_wpd_at DESC LIMIT 1) tc ON true
            LEFT JOIN LATERAL (SELECT coalesce(g.override_grade, g.grade) AS grade,
                                      coalesce(g.override_disposition, g.disposition) AS disposition,
                                      g.override_grade IS NOT NULL AS overridden
                               FROM coil_grades g WHERE g.coil_number = p.coil_number
                               ORDER BY g.graded_at DESC LIMIT 1) gr ON true
            ORDER BY p.row_order""", params),
        one(db, f"SELECT count(*) AS n FROM (SELECT 1 FROM ui_coil_latest l WHERE {where} LIMIT %(cap)s) c", params),
    ], consumeErrors=True)
    total = counted["n"]
    return {"rows": page, "total": min(total, COUNT_CAP), "more": total > COUNT_CAP,
            "page": query.page, "page_size": query.page_size}


CSV_MAX_ROWS = 200_000


def export_rows(query: Search) -> tuple[str, dict[str, Any]]:
    """``(sql, params)`` selecting every matching coil as CSV_COLUMNS, in the search's order
    (no paging, at most CSV_MAX_ROWS)."""
    where, params = where_clause(query)
    params = dict(params, limit=CSV_MAX_ROWS)
    sql = f"""SELECT s.coil_number, to_char(s.received_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS'),
                     s.customer_name, s.ccl_bom, s.product_group, s.thickness, s.width, s.length_value, s.weight,
                     (SELECT count(*) FROM defect_detections d WHERE d.coil_number = s.coil_number)
              FROM {_COILS} WHERE {where} ORDER BY {order_clause(query)} LIMIT %(limit)s"""
    return sql, params


def stream_export(db, query: Search, write_rows, chunk: int = 2000) -> defer.Deferred:
    """Fetch the export through a server-side cursor, ``chunk`` rows at a time, calling
    ``write_rows(list_of_tuples)`` for each chunk; ``write_rows`` returns False to stop early
    (the client went away). Fires with the number of rows written."""
    sql, params = export_rows(query)

    @defer.inlineCallbacks
    def interaction(cursor):
        yield cursor.execute(f"DECLARE ccl_export NO SCROLL CURSOR FOR {sql}", params)
        written = 0
        while True:
            yield cursor.execute("FETCH FORWARD %s FROM ccl_export", (chunk,))
            batch = cursor.fetchall()
            if not batch:
                break
            written += len(batch)
            if write_rows(batch) is False:
                break
        yield cursor.execute("CLOSE ccl_export")
        return written

    return db.runInteraction(interaction)
