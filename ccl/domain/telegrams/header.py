"""Result codes and the header check shared by the framer and the decoder.

Both must judge a header the same way (same code, same reason), otherwise a telegram
would be NAKed differently depending on whether the framer or the decoder saw the fault
first; so the judgement lives here, once.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ccl.domain.telegrams.fields import FieldFormatError, FieldSpec, decode_field
from ccl.domain.telegrams.layout import Layouts, TelegramLayout

ACCEPTED = "00"
UNKNOWN_TC = "10"
BAD_LENGTH = "11"
FORMAT_ERROR = "12"
HEADER_UNREADABLE = "13"


class TelegramRejected(Exception):
    """A telegram that cannot be taken; ``code`` is the result code its NAK carries."""

    def __init__(self, code: str, reason: str, *, tc_code: str | None = None,
                 sequence_no: int | None = None, field: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.tc_code = tc_code
        self.sequence_no = sequence_no
        #: the offending field's name, when one field is to blame
        self.field = field

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


@attrs.frozen
class HeaderVerdict:
    """What the leading bytes of a candidate telegram say about it.

    ``code`` is None when the header is valid for framing: a known TC whose length field
    equals that TC's layout length. ``tc_code`` is set whenever the TC bytes are digits,
    ``sequence_no`` whenever that field is readable.
    """

    code: str | None
    reason: str
    tc_code: str | None = None
    sequence_no: int | None = None
    layout: TelegramLayout | None = None


def judge_header(head: bytes, layouts: Layouts) -> HeaderVerdict:
    """Judge the header at the start of ``head`` (which may hold more bytes after it)."""
    tc_code, tc_error = _read(head, layouts, "tc_code")
    sequence_no, _ = _read(head, layouts, "sequence_no")
    length, length_error = _read(head, layouts, "length")
    if tc_error:
        return HeaderVerdict(HEADER_UNREADABLE, f"header unreadable: tc_code {tc_error}",
                             sequence_no=sequence_no)
    if length_error or length is None:
        return HeaderVerdict(HEADER_UNREADABLE,
                             f"header unreadable: length {length_error or 'is blank'}",
                             tc_code=tc_code, sequence_no=sequence_no)
    layout = layouts.get(tc_code)
    if layout is None:
        return HeaderVerdict(UNKNOWN_TC, f"unknown TC code {tc_code}",
                             tc_code=tc_code, sequence_no=sequence_no)
    if length != layout.length:
        return HeaderVerdict(BAD_LENGTH, f"length field says {length} but TC {tc_code} "
                             f"({layout.name}) is {layout.length} bytes",
                             tc_code=tc_code, sequence_no=sequence_no)
    return HeaderVerdict(None, "valid header", tc_code=tc_code, sequence_no=sequence_no,
                         layout=layout)


def _read(head: bytes, layouts: Layouts, name: str) -> tuple[object, str | None]:
    """(decoded value, None), or (None, why) when the field is missing or malformed."""
    start, end = layouts.header_spans[name]
    if len(head) < end:
        return None, f"is incomplete (only {len(head)} bytes received)"
    spec = next(f for f in layouts.header if f.name == name)
    try:
        return decode_field(spec, bytes(head[start:end])), None
    except FieldFormatError as exc:
        return None, str(exc)


def field_spans(fields: tuple[FieldSpec, ...], start: int) -> Iterator[tuple[FieldSpec, int, int]]:
    """Yield (spec, start, end) for consecutive fields beginning at offset ``start``."""
    for spec in fields:
        yield spec, start, start + spec.width
        start += spec.width
