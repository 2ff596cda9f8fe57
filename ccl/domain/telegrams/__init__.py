"""MES telegrams: layouts loaded from the layout file, the codec and the stream framer.

Pure Python (standard library and attrs): no I/O beyond reading the layout file.
"""

from ccl.domain.telegrams.codec import PLANT_TZ, Telegram, decode, encode
from ccl.domain.telegrams.fields import FieldSpec
from ccl.domain.telegrams.framing import Frame, Garbage, TelegramFramer
from ccl.domain.telegrams.header import (
    ACCEPTED, BAD_LENGTH, FORMAT_ERROR, HEADER_UNREADABLE, UNKNOWN_TC, TelegramRejected,
)
from ccl.domain.telegrams.layout import LayoutError, Layouts, TelegramLayout, load_layouts
from ccl.domain.telegrams.replies import encode_ack, encode_alive, make_reply

__all__ = [
    "ACCEPTED", "BAD_LENGTH", "FORMAT_ERROR", "HEADER_UNREADABLE", "UNKNOWN_TC",
    "PLANT_TZ", "FieldSpec", "Frame", "Garbage", "LayoutError", "Layouts", "Telegram",
    "TelegramFramer", "TelegramLayout", "TelegramRejected", "decode", "encode",
    "encode_ack", "encode_alive", "load_layouts", "make_reply",
]
