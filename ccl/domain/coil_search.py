"""A 코일 이력 search, validated: dates (plant-time days, both inclusive), filters, sort, page.

Pure values: the storage adapter (``ui_queries/history.py``) turns a Search into SQL.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs

from ccl.domain.quality.grading import DISPOSITIONS

from ccl.domain.query_values import optional_day

#: Sort keys the client may ask for (the storage adapter maps each to its column).
SORTABLE = ("received_at", "coil_number", "customer_name", "ccl_bom", "thickness", "width", "length_value")
PAGE_SIZES = (25, 50, 100, 200)
#: Counting stops here: "1,000+" is as useful as an exact figure and costs far less.
COUNT_CAP = 1_000
#: The default and the longest search window, in days.
DEFAULT_DAYS = 30
MAX_DAYS = 3660


class BadSearch(ValueError):
    """A search parameter that cannot be used (the page answers 400 with this message)."""


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
    #: the coil's grade / disposition (an override where one was made; docs/quality.md)
    grade: str = ""
    disposition: str = ""

    @classmethod
    def from_args(cls, args: dict[str, str], today: datetime.date) -> Search:
        """Build from query arguments (already decoded to str); raise BadSearch on nonsense.
        ``today`` (the plant day of the caller's clock) ends the range when ``to`` is not given."""
        date_to = optional_day(args.get("to"), "to", BadSearch) or today
        date_from = optional_day(args.get("from"), "from", BadSearch) or date_to - datetime.timedelta(days=DEFAULT_DAYS - 1)
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
        for name in ("coil", "customer", "defect_type", "grade", "disposition"):
            value = (args.get(name) or "").strip()
            if len(value) > 64:
                raise BadSearch(f"{name}: at most 64 characters")
            texts[name] = value
        if texts["disposition"] and texts["disposition"] not in DISPOSITIONS:
            raise BadSearch(f"disposition: one of {', '.join(DISPOSITIONS)}")
        page_size = clamp(args.get("size"), 1, 200, 50)
        if page_size not in PAGE_SIZES:
            page_size = 50
        return cls(date_from=date_from, date_to=date_to, sort=sort, descending=order == "desc",
                   page=clamp(args.get("page"), 1, 100_000, 1), page_size=page_size, **texts)

    def as_args(self, **changes: Any) -> dict[str, str]:
        """The query arguments that reproduce this search (for links), with ``changes`` applied."""
        args = {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(), "coil": self.coil,
                "customer": self.customer, "defect_type": self.defect_type, "grade": self.grade,
                "disposition": self.disposition, "sort": self.sort,
                "order": "desc" if self.descending else "asc", "page": str(self.page), "size": str(self.page_size)}
        args.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in args.items() if v != ""}


#: The columns of the CSV export, in order.
CSV_COLUMNS = ("coil_number", "received_at", "customer_name", "ccl_bom", "product_group", "thickness", "width",
               "length_value", "weight", "defects")


def clamp(value: Any, low: int, high: int, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))
