"""The plant's time (Asia/Seoul), whatever the time zone of the machine or of the process.

Time is an input: these take a clock (anything with ``seconds()``: the reactor in a service,
``twisted.internet.task.Clock`` or a fixed clock in a test), never the wall clock itself.
"""

from __future__ import annotations

import datetime

from ccl.domain.telegrams import PLANT_TZ


def plant_now(clock) -> datetime.datetime:
    """The present of ``clock`` in plant time."""
    return datetime.datetime.fromtimestamp(clock.seconds(), PLANT_TZ)


def plant_today(clock) -> datetime.date:
    """The plant day of ``clock``'s present."""
    return plant_now(clock).date()


def plant_text(value, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A moment (aware datetime, or ISO 8601 text as the queries return it) written in plant
    time; '' for None or ''; the value as text when it is not a moment."""
    if not value:
        return ""
    try:
        moment = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(PLANT_TZ).strftime(pattern)
    except (TypeError, ValueError, AttributeError):
        return str(value)
