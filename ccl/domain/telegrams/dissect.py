"""A refused telegram taken apart for a person: hex rows, the bytes as EUC-KR text, and the
fields the layout file expects at each offset, each with its value or what is wrong with it.

For diagnosis only (the UI's rejected-telegram page): it never raises on any input, however
garbled, and judges the bytes with the layout file as it is now (which may differ from the
one the telegram was refused under).
"""

from __future__ import annotations

import attrs

from ccl.domain.telegrams.codec import decode
from ccl.domain.telegrams.fields import WIRE_ENCODING, FieldFormatError, decode_field
from ccl.domain.telegrams.header import TelegramRejected, field_spans, judge_header
from ccl.domain.telegrams.layout import Layouts

ROW = 16
#: Longer input is shown up to here (a run of garbage can be kilobytes).
SHOWN_BYTES = 4096


@attrs.frozen
class HexRow:
    offset: int
    hex: str  # "34 30 30 30 ..." (16 bytes, a wider gap after the eighth)
    ascii: str  # printable ASCII as is, anything else "."


@attrs.frozen
class FieldView:
    name: str
    part: str  # "header", "body" or "extra" (bytes beyond the layout's length)
    start: int
    end: int  # exclusive; may be past the telegram's end (then ``problem`` says so)
    text: str  # the field's bytes as EUC-KR (CP949), undecodable bytes as U+FFFD
    hex: str
    value: str | None  # the decoded value as text, None when it does not decode
    problem: str | None


@attrs.frozen
class Dissection:
    length: int
    shown: int  # bytes in ``rows`` and ``text`` (at most SHOWN_BYTES)
    rows: tuple[HexRow, ...]
    text: str  # the whole (shown) telegram as EUC-KR text, control characters as "·"
    layout_name: str | None  # of the TC code in the header, when the layout file knows it
    fields: tuple[FieldView, ...]
    verdict_code: str | None  # the result code the current layout gives (None: it would be taken)
    verdict: str


def dissect(raw: bytes, layouts: Layouts) -> Dissection:
    raw = bytes(raw)
    shown = raw[:SHOWN_BYTES]
    rows = tuple(HexRow(offset, _hex(shown[offset:offset + ROW]),
                        "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in shown[offset:offset + ROW]))
                 for offset in range(0, len(shown), ROW))
    header = judge_header(raw, layouts)
    layout = header.layout or (layouts.get(header.tc_code) if header.tc_code else None)
    fields = list(_fields(raw, layouts.header, 0, "header"))
    end = layouts.header_length
    if layout is not None:
        fields.extend(_fields(raw, layout.fields, layouts.header_length, "body"))
        end = layout.length
    if len(raw) > end and layout is not None:
        fields.append(_view("(extra)", "extra", raw, end, len(raw), None,
                            f"{len(raw) - end} bytes beyond the {end} of TC {layout.tc_code}"))
    try:
        decode(raw, layouts)
        code, verdict = None, "the current layout file takes this telegram"
    except TelegramRejected as refused:
        code, verdict = refused.code, refused.reason
    return Dissection(length=len(raw), shown=len(shown), rows=rows, text=_text(shown),
                      layout_name=layout.name if layout is not None else None, fields=tuple(fields),
                      verdict_code=code, verdict=verdict)


def _fields(raw: bytes, specs, start: int, part: str):
    for spec, begin, end in field_spans(specs, start):
        data = raw[begin:end]
        value, problem = None, None
        if len(data) < spec.width:
            problem = (f"missing: the telegram ends at byte {len(raw)}" if not data
                       else f"cut short: {len(data)} of {spec.width} bytes")
        else:
            try:
                decoded = decode_field(spec, data)
                value = "" if decoded is None else str(decoded)
            except FieldFormatError as error:
                problem = str(error)
        yield _view(spec.name, part, raw, begin, end, value, problem)


def _view(name: str, part: str, raw: bytes, begin: int, end: int, value, problem) -> FieldView:
    data = raw[begin:end]
    return FieldView(name=name, part=part, start=begin, end=end, text=data.decode(WIRE_ENCODING, errors="replace"),
                     hex=_hex(data[:64]) + (" …" if len(data) > 64 else ""), value=value, problem=problem)


def _hex(data: bytes) -> str:
    pairs = [f"{b:02X}" for b in data]
    return " ".join(pairs[:8]) + ("  " + " ".join(pairs[8:]) if len(pairs) > 8 else "")


def _text(data: bytes) -> str:
    text = data.decode(WIRE_ENCODING, errors="replace")
    return "".join("·" if (ord(c) < 0x20 or ord(c) == 0x7F) else c for c in text)
