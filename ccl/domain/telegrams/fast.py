"""A fast path for decoding well-formed telegrams.

The MES receiver decodes every telegram before it may ACK it; at 10,000 telegrams/s the
general decoder's per-field dispatch was most of the receive path's CPU. This module turns
each layout, once, into the source of one straight-line Python function (field offsets,
types and names written into it, no loop, no per-field dispatch) and decodes a telegram
with it: about four times cheaper than walking a field plan. Generating source is what
``attrs`` and ``namedtuple`` do for the same reason; the source is built only from the
layout's checked field names and widths.

It only ever answers for a telegram it finds entirely valid; at the first doubt it returns
None and ``decode`` takes the general path, which alone decides refusals and their reasons.
So a telegram decodes to the same Telegram either way (the tests compare both on every
vector and on generated and corrupted telegrams).
"""

from __future__ import annotations

import datetime

from ccl.domain.telegrams.fields import (
    DATE, DIGITS, INT, SPARE, TEXT, TIME, WIRE_ENCODING, FieldFormatError, decode_field,
)
from ccl.domain.telegrams.layout import Layouts, TelegramLayout

# id(layouts) -> (layouts, {tc: (layout, decoder)}, tc span)
_PLANS: dict[int, tuple] = {}

# Header date / time bytes -> parsed value, bounded (only valid ones are kept).
_DATES: dict[bytes, datetime.date] = {}
_TIMES: dict[bytes, datetime.time] = {}
_REMEMBERED = 4096


def _remember(cache: dict, key: bytes, value) -> None:
    if len(cache) >= _REMEMBERED:
        cache.clear()
    cache[key] = value


def _field_lines(spec, begin: int, end: int, index: int, values: list[str], moments: list[str]) -> list[str]:
    """Source lines that check one field and bind its value to ``v<index>`` (or return None)."""
    name = None if spec.name == SPARE else spec.name
    var = f"v{index}"
    data = f"raw[{begin}:{end}]"
    lines = []
    if spec.type == TEXT:
        if name is None:
            # Padding: only its encoding is checked; pure ASCII (the usual blanks) needs no decode.
            lines += [f"d = {data}", "if not d.isascii():", f"    d.strip(PAD).decode({WIRE_ENCODING!r})"]
        else:
            # CP949 agrees with ASCII on ASCII bytes, and its codec costs ten times more.
            lines += [f"d = {data}.strip(PAD)",
                      f"{var} = (d.decode('ascii') if d.isascii() else d.decode({WIRE_ENCODING!r})).strip(' \\x00')"]
    elif spec.type == INT:
        lines += [f"d = {data}.lstrip(b' ')",
                  "if d:",
                  "    if not d.isdigit():",  # bytes.isdigit: ASCII digits only
                  "        return None",
                  f"    {var} = int(d)",
                  "else:",
                  f"    {var} = None"]
    elif spec.type == DIGITS:
        lines += [f"d = {data}", "if not d.isdigit():", "    return None", f"{var} = d.decode('ascii')"]
    elif spec.type in (DATE, TIME):
        # Only 8 / 6 digits forming a real date / time; blanks and the rest: general path.
        if spec.width != (8 if spec.type == DATE else 6):
            return ["return None"]
        parts = ((0, 4), (4, 6), (6, 8)) if spec.type == DATE else ((0, 2), (2, 4), (4, 6))
        call = "date" if spec.type == DATE else "time"
        cache = "DATES" if spec.type == DATE else "TIMES"
        # Consecutive telegrams share their date and mostly their second: remember the parses.
        lines += [f"d = {data}", f"m{index} = {cache}.get(d)", f"if m{index} is None:",
                  "    if not d.isdigit():", "        return None",
                  f"    m{index} = {call}(" + ", ".join(f"int(d[{a}:{b}])" for a, b in parts) + ")",
                  f"    remember({cache}, d, m{index})",
                  f"{var} = d.decode('ascii')"]
        if name is not None:
            moments.append(f"{name!r}: m{index}")
    else:
        lines += [f"try:", f"    {var} = decode_field(SPECS[{index}], {data})",
                  "except FieldFormatError:", "    return None"]
    if name is not None:
        values.append(f"{name!r}: {var}")
    return lines


def _decoder(layouts: Layouts, layout: TelegramLayout):
    specs = layouts.header + layout.fields
    body_from = len(layouts.header)
    header_values: list[str] = []
    body_values: list[str] = []
    moments: list[str] = []
    lines: list[str] = []
    offset = 0
    for index, spec in enumerate(specs):
        target = header_values if index < body_from else body_values
        lines += _field_lines(spec, offset, offset + spec.width, index, target,
                              moments if index < body_from else [])
        offset += spec.width
    lines.append("return {" + ", ".join(header_values) + "}, {" + ", ".join(body_values) + "}, {"
                 + ", ".join(moments) + "}")
    source = ("def decode(raw):\n    try:\n"
              + "".join(f"        {line}\n" for line in lines)
              + "    except (UnicodeDecodeError, ValueError):\n        return None\n")
    namespace = {"PAD": b" \x00", "date": datetime.date, "time": datetime.time, "SPECS": specs,
                 "DATES": _DATES, "TIMES": _TIMES, "remember": _remember,
                 "decode_field": decode_field, "FieldFormatError": FieldFormatError}
    exec(compile(source, f"<telegram decoder {layout.tc_code}>", "exec"), namespace)  # noqa: S102
    return namespace["decode"]


def _compile(layouts: Layouts) -> tuple:
    entry = _PLANS.get(id(layouts))
    if entry is not None and entry[0] is layouts:
        return entry
    entry = (layouts, {tc: (layout, _decoder(layouts, layout)) for tc, layout in layouts.by_tc.items()},
             layouts.header_spans["tc_code"])
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(layouts)] = entry
    return entry


def fast_fields(raw: bytes, layouts: Layouts) -> tuple[TelegramLayout, dict, dict, dict] | None:
    """(layout, header values, body values, parsed header date/time) of a valid telegram, or
    None: ask the general decoder."""
    _, by_tc, (tc_start, tc_end) = _compile(layouts)
    found = by_tc.get(raw[tc_start:tc_end].decode("ascii", "replace"))
    if found is None:
        return None
    layout, decoder = found
    if len(raw) != layout.length:
        return None
    decoded = decoder(raw)
    if decoded is None:
        return None
    header, body, moments = decoded
    if header.get("length") != layout.length or header.get("sequence_no") is None:
        return None
    if header.get("date") is None or header.get("time") is None:
        return None
    return layout, header, body, moments


def sent_at(moments: dict, tz) -> datetime.datetime:
    """The header's send time from the date and time ``fast_fields`` parsed."""
    return datetime.datetime.combine(moments["date"], moments["time"], tzinfo=tz)
