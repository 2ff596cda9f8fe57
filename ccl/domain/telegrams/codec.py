"""Decode one whole telegram into a Telegram, and encode values back into bytes."""

from __future__ import annotations

import datetime
import types
from collections.abc import Mapping

import attrs

from ccl.domain.telegrams.fields import (
    SPARE, FieldFormatError, FieldSpec, decode_field, encode_field, parse_date, parse_time,
)
from ccl.domain.telegrams.fast import fast_fields
from ccl.domain.telegrams.fast import sent_at as fast_sent_at
from ccl.domain.telegrams.header import (
    BAD_LENGTH, FORMAT_ERROR, HEADER_UNREADABLE, TelegramRejected, field_spans, judge_header,
)
from ccl.domain.telegrams.layout import Layouts, TelegramLayout

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    PLANT_TZ: datetime.tzinfo = ZoneInfo("Asia/Seoul")
except (ImportError, ZoneInfoNotFoundError):  # pragma: no cover - host without tz data
    # Korea has kept UTC+9 without daylight saving since 1988, so a fixed offset gives
    # the same instants for any telegram this system will ever see.
    PLANT_TZ = datetime.timezone(datetime.timedelta(hours=9), "KST")

HEADER_KEYS = ("tc_code", "line_code", "sequence_no", "length", "date", "time")


def _read_only(fields: Mapping[str, object]) -> Mapping[str, object]:
    # The decoder hands over a fresh dict it keeps no reference to, already wrapped.
    if type(fields) is types.MappingProxyType:
        return fields
    return types.MappingProxyType(dict(fields))


@attrs.frozen
class Telegram:
    tc_code: str
    line_code: str
    sequence_no: int
    length: int
    sent_at: datetime.datetime  # header date + time, Asia/Seoul
    date: str  # raw header YYYYMMDD
    time: str  # raw header HHMMSS
    fields: Mapping[str, object] = attrs.field(converter=_read_only, hash=False)
    raw: bytes
    layout: TelegramLayout

    def as_flat_dict(self) -> dict:
        flat = {key: getattr(self, key) for key in HEADER_KEYS}
        flat.update(self.fields)
        return flat


def decode(raw: bytes, layouts: Layouts) -> Telegram:
    """Decode exactly one telegram; raises TelegramRejected with the NAK result code."""
    raw = bytes(raw)
    quick = fast_fields(raw, layouts)
    if quick is not None:
        layout, header, body, moments = quick
        return Telegram(tc_code=header["tc_code"], line_code=header["line_code"],
                        sequence_no=header["sequence_no"], length=layout.length,
                        sent_at=fast_sent_at(moments, PLANT_TZ),
                        date=header["date"], time=header["time"], fields=types.MappingProxyType(body), raw=raw,
                        layout=layout)
    verdict = judge_header(raw, layouts)
    if verdict.code is not None:
        raise TelegramRejected(verdict.code, verdict.reason, tc_code=verdict.tc_code,
                               sequence_no=verdict.sequence_no)
    layout = verdict.layout
    tc_code, sequence_no = verdict.tc_code, verdict.sequence_no
    if len(raw) != layout.length:
        raise TelegramRejected(
            BAD_LENGTH, f"telegram is {len(raw)} bytes but its length field and TC "
            f"{tc_code} ({layout.name}) say {layout.length}",
            tc_code=tc_code, sequence_no=sequence_no)
    if sequence_no is None:
        raise TelegramRejected(HEADER_UNREADABLE, "header unreadable: sequence_no is not "
                               "a number", tc_code=tc_code, field="sequence_no")

    def reject(spec: FieldSpec, start: int, end: int, why: str) -> TelegramRejected:
        where = "header" if start < layouts.header_length else f"TC {tc_code}"
        return TelegramRejected(FORMAT_ERROR, f"{where} field '{spec.name}' (bytes "
                                f"{start}-{end}): {why}", tc_code=tc_code,
                                sequence_no=sequence_no, field=spec.name)

    values: dict[str, object] = {}
    body: dict[str, object] = {}
    for target, fields, start in ((values, layouts.header, 0),
                                  (body, layout.fields, layouts.header_length)):
        for spec, begin, end in field_spans(fields, start):
            try:
                value = decode_field(spec, raw[begin:end])
            except FieldFormatError as exc:
                raise reject(spec, begin, end, str(exc)) from None
            if spec.name != SPARE:
                target[spec.name] = value
    date, time = values["date"], values["time"]
    if date is None or time is None:
        spec = next(f for f in layouts.header if f.name == ("date" if date is None else "time"))
        begin, end = layouts.header_spans[spec.name]
        raise reject(spec, begin, end, "is blank")
    sent_at = datetime.datetime.combine(parse_date(date), parse_time(time), tzinfo=PLANT_TZ)
    return Telegram(tc_code=tc_code, line_code=values["line_code"], sequence_no=sequence_no,
                    length=layout.length, sent_at=sent_at, date=date, time=time,
                    fields=body, raw=raw, layout=layout)


def encode(layouts: Layouts, tc_code: str, values: Mapping[str, object], *,
           line_code: str = "CCL1", sequence_no: int,
           sent_at: datetime.datetime) -> bytes:
    """Build one telegram. Record fields missing from ``values`` are sent blank.

    Raises ValueError (naming the field) for an unknown TC or key, a naive ``sent_at``,
    or a value that cannot be written in its field.
    """
    layout = layouts.get(tc_code)
    if layout is None:
        raise ValueError(f"unknown TC code {tc_code!r}")
    known = {spec.name for spec in layout.record_fields}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"TC {tc_code}: no field(s) {', '.join(sorted(unknown))}; "
                         f"fields are {', '.join(sorted(known))}")
    if isinstance(sequence_no, bool) or not isinstance(sequence_no, int) or sequence_no < 1:
        raise ValueError(f"sequence_no must be a positive int, got {sequence_no!r}")
    if sent_at.tzinfo is None or sent_at.utcoffset() is None:
        # A naive time would silently be taken as plant time; on a UTC host that is a
        # nine-hour error on the wire, so the caller must say which zone it means.
        raise ValueError("sent_at must be timezone-aware")
    local = sent_at.astimezone(PLANT_TZ)
    header_values = {"tc_code": tc_code, "line_code": line_code, "sequence_no": sequence_no,
                     "length": layout.length, "date": local.strftime("%Y%m%d"),
                     "time": local.strftime("%H%M%S")}
    out = bytearray()
    for where, fields, source in (("header", layouts.header, header_values),
                                  (f"TC {tc_code}", layout.fields, values)):
        for spec in fields:
            value = None if spec.name == SPARE else source.get(spec.name)
            try:
                out += encode_field(spec, value)
            except ValueError as exc:
                raise ValueError(f"{where} field '{spec.name}': {exc}") from None
    return bytes(out)
