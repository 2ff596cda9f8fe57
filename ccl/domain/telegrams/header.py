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
    quick = _quick_valid(head, layouts)
    if quick is not None:
        return quick
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
    start, end, spec = _header_field(layouts, name)
    if len(head) < end:
        return None, f"is incomplete (only {len(head)} bytes received)"
    try:
        return decode_field(spec, bytes(head[start:end])), None
    except FieldFormatError as exc:
        return None, str(exc)


# (id of a Layouts) -> (that Layouts, {(tc bytes, length bytes): layout}, spans) for the
# header of a valid telegram, whose verdict is then given without the general field reads.
_VALID_HEADS: dict[int, tuple] = {}


def quick_layout(head: bytes, layouts: Layouts) -> TelegramLayout | None:
    """The layout of a plainly valid header (a known TC, its exact length written as digits,
    maybe with leading spaces, a readable sequence number); None when any of that is in doubt.
    The framer cuts well-formed telegrams with this alone, without building a verdict."""
    entry = _VALID_HEADS.get(id(layouts))
    if entry is None or entry[0] is not layouts:
        table = {}
        (ls, le) = layouts.header_spans["length"]
        for tc_code, layout in layouts.by_tc.items():
            padded = str(layout.length).zfill(le - ls)
            zeros = len(padded) - len(padded.lstrip("0"))
            for k in range(zeros + 1):
                table[(tc_code.encode("ascii"), (" " * k + padded[k:]).encode("ascii"))] = layout
        spans = layouts.header_spans
        if len(_VALID_HEADS) > 64:
            _VALID_HEADS.clear()
        entry = _VALID_HEADS[id(layouts)] = (layouts, table, spans["tc_code"], spans["length"],
                                              spans["sequence_no"], max(spans["tc_code"][1], spans["length"][1],
                                                                        spans["sequence_no"][1]))
    _, table, (ts, te), (ls, le), (ss, se), needed = entry
    if len(head) < needed:
        return None
    layout = table.get((head[ts:te], head[ls:le]))
    if layout is None:
        return None
    digits = head[ss:se].lstrip(b" ")
    if digits and not digits.isdigit():
        return None  # an unreadable sequence number: the general path words it
    return layout


def _quick_valid(head: bytes, layouts: Layouts) -> HeaderVerdict | None:
    """The verdict on a header that is plainly valid (see quick_layout); None sends every
    other case to the general reading."""
    layout = quick_layout(head, layouts)
    if layout is None:
        return None
    ss, se = layouts.header_spans["sequence_no"]
    digits = head[ss:se].lstrip(b" ")
    return HeaderVerdict(None, "valid header", tc_code=layout.tc_code,
                         sequence_no=int(digits) if digits else None, layout=layout)


# (id of a Layouts) -> (that Layouts, {name: (start, end, spec)}). Headers are judged several
# times per telegram at 10,000 telegrams/s; looking the spec up by name each time was a
# measurable part of it. The Layouts itself is kept in the entry so a reused id is detected.
_HEADER_FIELDS: dict[int, tuple[Layouts, dict[str, tuple[int, int, FieldSpec]]]] = {}


def _header_field(layouts: Layouts, name: str) -> tuple[int, int, FieldSpec]:
    entry = _HEADER_FIELDS.get(id(layouts))
    if entry is None or entry[0] is not layouts:
        fields = {}
        for key, (start, end) in layouts.header_spans.items():
            fields[key] = (start, end, next(f for f in layouts.header if f.name == key))
        if len(_HEADER_FIELDS) > 64:
            _HEADER_FIELDS.clear()
        entry = _HEADER_FIELDS[id(layouts)] = (layouts, fields)
    return entry[1][name]


def field_spans(fields: tuple[FieldSpec, ...], start: int) -> Iterator[tuple[FieldSpec, int, int]]:
    """Yield (spec, start, end) for consecutive fields beginning at offset ``start``."""
    for spec in fields:
        yield spec, start, start + spec.width
        start += spec.width
