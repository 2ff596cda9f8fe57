r"""PostgreSQL's COPY text format, written once for every COPY we send (MES writer, defect batches).

A value per column, columns separated by tabs, rows by newlines; NULL is ``\N``; a backslash,
tab, newline or carriage return inside a text is escaped with a backslash.
"""

from __future__ import annotations

import datetime
import decimal
import re

NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_str(value: str) -> str:
    """A text value: backslash, tab, newline and CR escaped (most texts have none: returned as they are)."""
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _copy_bytes(value) -> str:
    return "\\\\x" + bytes(value).hex()


def _copy_moment(value) -> str:
    return value.isoformat()


# Looked up by exact type: the COPY text of a batch is built in the writer thread, holding the
# GIL the receiver needs, and a chain of isinstance tests per value was a fifth of that work.
# Order matters for subclasses (the fallback walks it): bool before int.
_COPY_BY_TYPE = {
    type(None): lambda value: NULL,
    str: copy_str,
    bool: lambda value: "t" if value else "f",
    int: str,
    decimal.Decimal: str,
    float: repr,
    bytes: _copy_bytes,
    bytearray: _copy_bytes,
    memoryview: _copy_bytes,
    datetime.datetime: _copy_moment,
    datetime.date: _copy_moment,
    datetime.time: _copy_moment,
}


def copy_text(value) -> str:
    """One value in COPY's text format."""
    fast = _COPY_BY_TYPE.get(type(value))
    if fast is not None:
        return fast(value)
    for kind, text in _COPY_BY_TYPE.items():
        if isinstance(value, kind):
            return text(value)
    return copy_str(str(value))
