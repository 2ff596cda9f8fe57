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
