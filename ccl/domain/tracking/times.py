"""When a telegram's event happened, on the server's clock.

A telegram's receipt time (``received_at``, the server's clock, to the microsecond) is the
best stamp of its event, the MES sending as it happens. A telegram the MES held back (a link
outage, a queue) arrives late: its header send time (the MES clock, whole seconds) is then the
better one. The MES clock's offset from ours is the median of ``received_at - sent_at`` over
the window (latency and clock offset together; robust against the few late ones); a telegram
received more than ``late_after_s`` after that is late and dated ``sent_at + offset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

from ccl.domain.tracking.records import Telegram


def mes_offset(telegrams: Sequence[Telegram]) -> float:
    if not telegrams:
        return 0.0
    return median(t.received_at - t.sent_at for t in telegrams)


def event_time(telegram: Telegram, offset: float, late_after_s: float) -> tuple[float, bool]:
    """(time of the event, late?)."""
    if telegram.received_at - telegram.sent_at - offset > late_after_s:
        return telegram.sent_at + offset, True
    return telegram.received_at, False
