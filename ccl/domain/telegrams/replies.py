"""Builders for the telegrams this system originates: 4900 ACK, 4901 NAK, 4999 alive."""

from __future__ import annotations

import datetime

from ccl.domain.telegrams.codec import Telegram, encode
from ccl.domain.telegrams.framing import Garbage
from ccl.domain.telegrams.header import ACCEPTED, TelegramRejected
from ccl.domain.telegrams.layout import PROCESS, Layouts

# Put in a NAK when the refused telegram's own TC code or sequence number could not be
# read: sequence numbers start at 1 and no TC is 0000, so neither can be mistaken for
# a real one.
UNKNOWN_ACKED_TC = "0000"
UNKNOWN_ACKED_SEQUENCE = 0


def encode_ack(layouts: Layouts, *, acked_tc_code: str, acked_sequence_no: int,
               result_code: str = ACCEPTED, line_code: str = "CCL1", sequence_no: int,
               sent_at: datetime.datetime) -> bytes:
    """A 4900 ACK when ``result_code`` is "00", otherwise a 4901 NAK carrying it."""
    layout = layouts.by_name("ack" if result_code == ACCEPTED else "nak")
    return encode(layouts, layout.tc_code,
                  {"acked_tc_code": acked_tc_code, "acked_sequence_no": acked_sequence_no,
                   "result_code": result_code},
                  line_code=line_code, sequence_no=sequence_no, sent_at=sent_at)


def encode_alive(layouts: Layouts, *, alive_count: int, state: str = "01",
                 line_code: str = "CCL1", sequence_no: int,
                 sent_at: datetime.datetime) -> bytes:
    """A 4999 alive; the caller wraps ``alive_count`` (the field holds 0-9999)."""
    layout = layouts.by_name("alive")
    return encode(layouts, layout.tc_code, {"alive_count": alive_count, "state": state},
                  line_code=line_code, sequence_no=sequence_no, sent_at=sent_at)


def make_reply(layouts: Layouts, outcome: Telegram | TelegramRejected | Garbage, *,
               sequence_no: int, sent_at: datetime.datetime,
               line_code: str = "CCL1") -> bytes | None:
    """The reply owed for one received item, or None when none is owed.

    ``outcome`` is a decoded Telegram (ACK for process telegrams; alives and replies are
    never answered), a TelegramRejected, or a framing Garbage item (NAK with its code;
    continuation pieces of one garbage run are not NAKed again).
    """
    if isinstance(outcome, Telegram):
        if outcome.layout.kind != PROCESS:
            return None
        tc_code, acked_sequence, code = outcome.tc_code, outcome.sequence_no, ACCEPTED
    elif isinstance(outcome, (TelegramRejected, Garbage)):
        if isinstance(outcome, Garbage) and outcome.continued:
            return None
        tc_code, acked_sequence, code = outcome.tc_code, outcome.sequence_no, outcome.code
    else:
        raise TypeError(f"cannot reply to {outcome!r}")
    tc_width = next(f.width for f in layouts.header if f.name == "tc_code")
    if tc_code is None or len(tc_code) != tc_width:
        tc_code = UNKNOWN_ACKED_TC
    if acked_sequence is None:
        acked_sequence = UNKNOWN_ACKED_SEQUENCE
    return encode_ack(layouts, acked_tc_code=tc_code, acked_sequence_no=acked_sequence,
                      result_code=code, line_code=line_code, sequence_no=sequence_no,
                      sent_at=sent_at)
