"""코일 이력: search the coils, page by page, sortable on whitelisted columns only; CSV export.

A coil is its latest TC 4000 schedule row (a coil can be rescheduled; the newest row wins),
dated by when that row arrived. ui_coil_latest (schema/071, kept by triggers in the same
transaction) names that row for every coil.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from twisted.internet import defer

from ccl.adapters.storage.ui_queries._sql import PLANT_TZ, clamp, like_pattern, one, rows

#: Sort keys the client may ask for -> the SQL expression. Nothing else reaches ORDER BY.
SORTABLE = {
    "received_at": "l.received_at",
    "coil_number": "l.coil_number",
    "customer_name": "l.customer_name",
    "ccl_bom": "s.ccl_bom",
    "thickness": "s.thickness",
    "width": "s.width",
    "length_value": "s.length_value",
}
PAGE_SIZES = (25, 50, 100, 200)
#: Counting stops here: "1,000+" is as useful as an exact figure and costs far less.
COUNT_CAP = 1_000
#: The default and the longest search window, in days.
DEFAULT_DAYS = 30
MAX_DAYS = 3660


class BadSearch(ValueError):
    """A search parameter that cannot be used (the page answers 400 with this message)."""


def _date(text: str | None, name: str) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise BadSearch(f"{name}: expected a date YYYY-MM-DD, got {text!r}") from None


@attrs.frozen
class Search:
    """A validated history search (dates are plant-time days, both inclusive)."""

    date_from: datetime.date
    date_to: datetime.date
    coil: str = ""
    customer: str = ""
    defect_type: str = ""
    sort: str = "received_at"
    descending: bool = True
    page: int = 1
    page_size: int = 50

    @classmethod
    def from_args(cls, args: dict[str, str], today: datetime.date) -> Search:
        """Build from query arguments (already decoded to str); raise BadSearch on nonsense.
        ``today`` (the plant day of the caller's clock) ends the range when ``to`` is not given."""
        date_to = _date(args.get("to"), "to") or today
        date_from = _date(args.get("from"), "from") or date_to - datetime.timedelta(days=DEFAULT_DAYS - 1)
        if date_from > date_to:
            raise BadSearch("from: the start date is after the end date")
        if (date_to - date_from).days >= MAX_DAYS:
            raise BadSearch(f"from: at most {MAX_DAYS} days at once")
        sort = args.get("sort") or "received_at"
        if sort not in SORTABLE:
            raise BadSearch(f"sort: one of {', '.join(SORTABLE)}")
        order = args.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise BadSearch("order: asc or desc")
        texts = {}
        for name in ("coil", "customer", "defect_type"):
            value = (args.get(name) or "").strip()
            if len(value) > 64:
                raise BadSearch(f"{name}: at most 64 characters")
            texts[name] = value
        page_size = clamp(args.get("size"), 1, 200, 50)
        if page_size not in PAGE_SIZES:
            page_size = 50
        return cls(date_from=date_from, date_to=date_to, sort=sort, descending=order == "desc",
                   page=clamp(args.get("page"), 1, 100_000, 1), page_size=page_size, **texts)

    def as_args(self, **changes: Any) -> dict[str, str]:
        """The query arguments that reproduce this search (for links), with ``changes`` applied."""
        args = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(), "coil": self.coil,
                "customer": self.customer, "defect_type": self.defect_type, "sort": self.sort,
                "order": "desc" if self.descending else "asc", "page": str(self.page), "size": str(self.page_size)}
        args.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in args.items() if v != ""}

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause over ``l`` (ui_coil_latest: each coil's newest schedule row,
        schema/071) and its named parameters. Every filter is on ``l``, so counting never
        touches the wide schedule rows."""
        clauses = [
            # ::timestamp: a bare date would become a timestamptz in the SESSION's time zone first
            "l.received_at >= (%(from)s::date::timestamp AT TIME ZONE %(tz)s)",
            "l.received_at < ((%(to)s::date + 1)::timestamp AT TIME ZONE %(tz)s)",
        ]
        params: dict[str, Any] = {"from": self.date_from, "to": self.date_to, "tz": PLANT_TZ}
        # LIKE, not ILIKE: ILIKE is several times slower here. Coil numbers are upper case in
        # practice, so what the user typed matches as typed or upper-cased.
        if self.coil:
            params["coil"] = like_pattern(self.coil)
            if self.coil == self.coil.upper():
                clauses.append("l.coil_number LIKE %(coil)s")
            else:
                clauses.append("(l.coil_number LIKE %(coil)s OR l.coil_number LIKE %(coil_upper)s)")
                params["coil_upper"] = like_pattern(self.coil.upper())
        if self.customer:
            clauses.append("l.customer_name LIKE %(customer)s")
            params["customer"] = like_pattern(self.customer)
        if self.defect_type:
            clauses.append("EXISTS (SELECT 1 FROM defect_detections d WHERE d.coil_number = l.coil_number"
                           " AND d.defect_type = %(defect_type)s)")
            params["defect_type"] = self.defect_type
        return " AND ".join(clauses), params

    def order_by(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        # NOT NULL columns without NULLS LAST, so that an index serves the sort
        nulls = "" if self.sort in ("received_at", "coil_number") else " NULLS LAST"
        return f"{SORTABLE[self.sort]} {direction}{nulls}, l.schedule_id {direction}"


#: A coil's newest schedule row: ``l`` names it, ``s`` is the row itself.
_COILS = "ui_coil_latest l JOIN tc_4000_schedule s ON s.id = l.schedule_id"
_LIST_COLUMNS = """s.id, s.coil_number, s.received_at, s.customer_name, s.ccl_bom, s.product_group,
    s.thickness, s.width, s.length_value, s.weight"""


@defer.inlineCallbacks
def search(db, query: Search) -> defer.Deferred:
    """One page of coils with their defect counts, plus the total (capped at COUNT_CAP)."""
    where, params = query.where()
    params = dict(params, limit=query.page_size, offset=(query.page - 1) * query.page_size, cap=COUNT_CAP + 1)
    page, counted = yield defer.gatherResults([
        rows(db, f"""
            SELECT p.*, (SELECT count(*) FROM defect_detections d WHERE d.coil_number = p.coil_number) AS defects,
                   (SELECT max(w.received_at) FROM tc_4002_wpd w WHERE w.coil_number = p.coil_number) AS wpd_at
            FROM (SELECT {_LIST_COLUMNS} FROM {_COILS} WHERE {where}
                  ORDER BY {query.order_by()} LIMIT %(limit)s OFFSET %(offset)s) p""", params),
        one(db, f"SELECT count(*) AS n FROM (SELECT 1 FROM ui_coil_latest l WHERE {where} LIMIT %(cap)s) c", params),
    ], consumeErrors=True)
    total = counted["n"]
    return {"rows": page, "total": min(total, COUNT_CAP), "more": total > COUNT_CAP,
            "page": query.page, "page_size": query.page_size}


CSV_COLUMNS = ("coil_number", "received_at", "customer_name", "ccl_bom", "product_group", "thickness", "width",
               "length_value", "weight", "defects")
CSV_MAX_ROWS = 200_000


def export_rows(query: Search) -> tuple[str, dict[str, Any]]:
    """``(sql, params)`` selecting every matching coil as CSV_COLUMNS, in the search's order
    (no paging, at most CSV_MAX_ROWS)."""
    where, params = query.where()
    params = dict(params, limit=CSV_MAX_ROWS)
    sql = f"""SELECT s.coil_number, to_char(s.received_at AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS'),
                     s.customer_name, s.ccl_bom, s.product_group, s.thickness, s.width, s.length_value, s.weight,
                     (SELECT count(*) FROM defect_detections d WHERE d.coil_number = s.coil_number)
              FROM {_COILS} WHERE {where} ORDER BY {query.order_by()} LIMIT %(limit)s"""
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
