"""Telegrams refused on the way in (rejected by us, NAKed) and on the way out (dead letters:
refused by 고기원): the filters of their listings and the rules of sending a dead letter again.

Pure values: dates are the plant's days (Asia/Seoul), turned into UTC instants here so that no
query depends on a session's time zone; "today" is always passed in.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ccl.domain.query_values import optional_day
from ccl.domain.telegrams import PLANT_TZ

#: Page sizes a listing offers; anything else falls back to the default.
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
#: Counting stops here: "10,000+" says enough and a count beyond costs a scan.
COUNT_CAP = 10_000
#: The default and the longest period, in days.
DEFAULT_DAYS = 7
MAX_DAYS = 366
MAX_PAGE = 100_000

#: Listeners a rejected telegram may come from (``rejected_telegrams.listener``).
LISTENERS = ("mes", "gokiwon-ack")
#: The outbox states (``forward_outbox.state``); only ``refused`` is a dead letter.
DEAD = "refused"
STATES = ("pending", "delivered", DEAD)
#: What the dead-letter listing shows: the dead letters, or every entry ever sent again.
VIEWS = ("dead", "resent")

_TC = re.compile(r"^[0-9]{4}$")
_CODE = re.compile(r"^[0-9]{2}$")
_CHANNEL = re.compile(r"^[a-z0-9_-]{1,32}$")


class BadFilter(ValueError):
    """A listing argument that cannot be used (answered with 400 and this message)."""


class NotDead(Exception):
    """Only a dead letter (state ``refused``) can be sent again."""

    def __init__(self, entry_id: int, state: str) -> None:
        super().__init__(f"outbox entry {entry_id} is {state}, not a dead letter: only refused entries are sent again")
        self.entry_id = entry_id
        self.state = state


class UnknownEntry(LookupError):
    """No outbox entry (or rejected telegram) has this id."""


@attrs.frozen
class Period:
    """Plant days ``first`` .. ``last``, both inclusive."""

    first: datetime.date
    last: datetime.date

    @property
    def since(self) -> datetime.datetime:
        """The first instant of the period (aware)."""
        return datetime.datetime.combine(self.first, datetime.time(), PLANT_TZ)

    @property
    def until(self) -> datetime.datetime:
        """The first instant after the period (aware)."""
        return datetime.datetime.combine(self.last + datetime.timedelta(days=1), datetime.time(), PLANT_TZ)

    @classmethod
    def from_args(cls, args: Mapping[str, str], today: datetime.date) -> "Period":
        last = optional_day(args.get("to"), "to", BadFilter) or today
        first = optional_day(args.get("from"), "from", BadFilter) or last - datetime.timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise BadFilter("from: the start date is after the end date")
        if (last - first).days >= MAX_DAYS:
            raise BadFilter(f"from: at most {MAX_DAYS} days at once")
        return cls(first, last)


@attrs.frozen
class Paging:
    page: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "Paging":
        size = _whole(args.get("size"), "size", 1, max(PAGE_SIZES)) or DEFAULT_PAGE_SIZE
        return cls(page=_whole(args.get("page"), "page", 1, MAX_PAGE) or 1,
                   size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE)


@attrs.frozen
class RejectedFilter:
    """Which rejected telegrams to list (newest first)."""

    period: Period
    tc_code: str = ""  # "" = any
    result_code: str = ""
    listener: str = ""
    paging: Paging = Paging()

    @classmethod
    def from_args(cls, args: Mapping[str, str], today: datetime.date) -> "RejectedFilter":
        return cls(period=Period.from_args(args, today),
                   tc_code=_matching(args.get("tc"), _TC, "tc", "four digits"),
                   result_code=_matching(args.get("code"), _CODE, "code", "two digits"),
                   listener=_one_of(args.get("listener"), LISTENERS, "listener"),
                   paging=Paging.from_args(args))

    def as_args(self, **changes: Any) -> dict[str, str]:
        """Query arguments that reproduce this filter (for links), with ``changes`` applied."""
        args = {"from": self.period.first.isoformat(), "to": self.period.last.isoformat(), "tc": self.tc_code,
                "code": self.result_code, "listener": self.listener, "page": str(self.paging.page),
                "size": str(self.paging.size)}
        args.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in args.items() if v != ""}


@attrs.frozen
class DeadLetterFilter:
    """Which outbox entries to list: ``dead`` (refused now, newest refusal first) or
    ``resent`` (every entry sent again from the UI, newest re-send first, in any state)."""

    period: Period
    view: str = "dead"
    channel: str = ""
    tc_code: str = ""
    paging: Paging = Paging()

    @classmethod
    def from_args(cls, args: Mapping[str, str], today: datetime.date) -> "DeadLetterFilter":
        return cls(period=Period.from_args(args, today), view=_one_of(args.get("view"), VIEWS, "view") or "dead",
                   channel=_matching(args.get("channel"), _CHANNEL, "channel", "a channel name"),
                   tc_code=_matching(args.get("tc"), _TC, "tc", "four digits"), paging=Paging.from_args(args))

    def as_args(self, **changes: Any) -> dict[str, str]:
        args = {"from": self.period.first.isoformat(), "to": self.period.last.isoformat(), "view": self.view,
                "channel": self.channel, "tc": self.tc_code, "page": str(self.paging.page),
                "size": str(self.paging.size)}
        args.update({k: str(v) for k, v in changes.items()})
        return {k: v for k, v in args.items() if v != ""}


@attrs.frozen
class Listing:
    """One page of a listing: ``total`` counts at most COUNT_CAP (``capped`` when there are more)."""

    items: tuple
    total: int
    capped: bool
    paging: Paging

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.paging.size))


def _whole(text: str | None, name: str, low: int, high: int) -> int | None:
    if not text:
        return None
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise BadFilter(f"{name}: a whole number from {low} to {high}")
    return int(text)


def _matching(text: str | None, pattern: re.Pattern, name: str, what: str) -> str:
    value = (text or "").strip()
    if value and not pattern.match(value):
        raise BadFilter(f"{name}: {what}, got {value[:40]!r}")
    return value


def _one_of(text: str | None, allowed: tuple[str, ...], name: str) -> str:
    value = (text or "").strip()
    if value and value not in allowed:
        raise BadFilter(f"{name}: one of {', '.join(allowed)}")
    return value
