"""Field types of the MES wire format: how one fixed-width field is read and written.

Everything here works on one field's bytes and knows nothing of telegrams; the codec
adds the telegram context (which field, which TC) to the errors raised here.
"""

from __future__ import annotations

import codecs
import datetime
import decimal
import re
from collections.abc import Callable

import attrs

DIGITS = "digits"
TEXT = "text"
INT = "int"
DECIMAL = "decimal"
DATE = "date"
TIME = "time"
FIELD_TYPES = frozenset({DIGITS, TEXT, INT, DECIMAL, DATE, TIME})

#: Fields of this name are padding: decoded (so they are format-checked) but never part
#: of a record.
SPARE = "spare"

#: EUC-KR on the wire; CP949 is its superset and also carries extended Hangul (똠).
WIRE_ENCODING = "cp949"

_NUMBER = re.compile(rb" *[0-9]+")
_DIGITS = re.compile(rb"[0-9]+")
_PAD = b" \x00"


@attrs.frozen
class FieldSpec:
    """One fixed-width field of a telegram: ``width`` counts bytes, not characters."""

    name: str
    width: int
    type: str
    scale: int = 0


class FieldFormatError(ValueError):
    """The bytes of one field break the wire format (result code 12 at telegram level)."""


def decode_field(spec: FieldSpec, data: bytes) -> object:
    """Decode one field's bytes; raises FieldFormatError with a reason (no field name)."""
    if spec.type == TEXT:
        return _decode_text(data)
    if spec.type == DIGITS:
        if not _DIGITS.fullmatch(data):
            raise FieldFormatError(f"expected {spec.width} ASCII digits, got {data!r}")
        return data.decode("ascii")
    if spec.type == INT:
        return _decode_int(data)
    if spec.type == DECIMAL:
        number = _decode_int(data)
        if number is None:
            return None
        # Built from the digit tuple, so the value is exact and independent of the
        # decimal context's precision.
        digits = tuple(int(c) for c in str(number))
        return decimal.Decimal((0, digits, -spec.scale))
    if spec.type == DATE:
        return None if _blank(data) else _check_date(data)
    if spec.type == TIME:
        return None if _blank(data) else _check_time(data)
    raise AssertionError(f"unknown field type {spec.type!r}")  # the loader refuses these


def encode_field(spec: FieldSpec, value: object) -> bytes:
    """Encode one value to exactly ``spec.width`` bytes; ValueError when it cannot fit."""
    if spec.type == TEXT:
        return _encode_text(spec.width, value)
    if spec.type == DIGITS:
        if not (isinstance(value, str) and len(value) == spec.width and value.isascii()
                and value.isdigit()):
            raise ValueError(f"must be a string of exactly {spec.width} ASCII digits, "
                             f"got {value!r}")
        return value.encode("ascii")
    if spec.type == INT:
        return _encode_int(spec.width, value)
    if spec.type == DECIMAL:
        return _encode_int(spec.width, _unscale(value, spec.scale))
    if spec.type == DATE:
        return _encode_moment(spec.width, value, datetime.date, "%Y%m%d", _check_date)
    if spec.type == TIME:
        return _encode_moment(spec.width, value, datetime.time, "%H%M%S", _check_time)
    raise AssertionError(f"unknown field type {spec.type!r}")


def parse_date(text: str) -> datetime.date:
    return datetime.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def parse_time(text: str) -> datetime.time:
    return datetime.time(int(text[0:2]), int(text[2:4]), int(text[4:6]))


def _blank(data: bytes) -> bool:
    return data.strip(b" ") == b""


def _decode_text(data: bytes) -> str:
    # Stripping the padding bytes first is safe: neither space nor NUL can be the
    # second byte of a CP949 character, so no character is ever cut by it.
    data = data.strip(_PAD)
    try:
        # Fast path for the usual case, a field of whole characters (same result).
        return data.decode(WIRE_ENCODING).strip(" \x00")
    except UnicodeDecodeError:
        pass
    decoder = codecs.getincrementaldecoder(WIRE_ENCODING)()
    try:
        # final=False leaves a lone first half of a double-byte character pending
        # instead of failing: the spec says a half character at the end is dropped.
        text = decoder.decode(data, final=False)
    except UnicodeDecodeError as exc:
        raise FieldFormatError(
            f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid CP949"
        ) from None
    return text.strip(" \x00")


def _decode_int(data: bytes) -> int | None:
    if _blank(data):
        return None
    if not _NUMBER.fullmatch(data):
        raise FieldFormatError(f"not a right-aligned number: {data!r}")
    return int(data.decode("ascii"))


def _check_date(data: bytes) -> str:
    if len(data) != 8 or not _DIGITS.fullmatch(data):
        raise FieldFormatError(f"not a YYYYMMDD date: {data!r}")
    text = data.decode("ascii")
    try:
        parse_date(text)
    except ValueError:
        raise FieldFormatError(f"impossible date {text}") from None
    return text


def _check_time(data: bytes) -> str:
    if len(data) != 6 or not _DIGITS.fullmatch(data):
        raise FieldFormatError(f"not an HHMMSS time: {data!r}")
    text = data.decode("ascii")
    try:
        parse_time(text)
    except ValueError:
        raise FieldFormatError(f"impossible time {text}") from None
    return text


def _encode_text(width: int, value: object) -> bytes:
    if value is None:
        return b" " * width
    if not isinstance(value, str):
        raise ValueError(f"must be a str, got {type(value).__name__}")
    out = bytearray()
    # Character by character so a cut always falls between characters, never inside
    # a double-byte one.
    for char in value:
        try:
            encoded = char.encode(WIRE_ENCODING)
        except UnicodeEncodeError:
            raise ValueError(f"{char!r} cannot be written in CP949") from None
        if len(out) + len(encoded) > width:
            break
        out += encoded
    return bytes(out).ljust(width, b" ")


def _encode_int(width: int, value: object) -> bytes:
    if value is None:
        return b" " * width
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"negative numbers cannot be sent, got {value}")
    text = str(value)
    if len(text) > width:
        raise ValueError(f"{value} does not fit in {width} digits")
    return text.zfill(width).encode("ascii")


def _unscale(value: object, scale: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = decimal.Decimal(repr(value))  # the float's shortest form, e.g. 0.372
    if isinstance(value, bool) or not isinstance(value, (int, decimal.Decimal)):
        raise ValueError(f"must be a Decimal, int or float, got {value!r}")
    number = decimal.Decimal(value)
    if not number.is_finite():
        raise ValueError(f"must be finite, got {value!r}")
    scaled = number.scaleb(scale, context=decimal.Context(prec=60))
    if scaled != scaled.to_integral_value():
        # Rounding here would silently change plant data; the caller must decide.
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


def _encode_moment(width: int, value: object, kind: type, fmt: str,
                   check: Callable[[bytes], str]) -> bytes:
    if value is None:
        return b" " * width
    if isinstance(value, kind) or (kind is datetime.time and isinstance(value, datetime.datetime)):
        value = value.strftime(fmt)
    if not isinstance(value, str):
        raise ValueError(f"must be a str or {kind.__name__}, got {value!r}")
    data = value.encode("ascii", "replace")
    try:
        check(data)
    except FieldFormatError as exc:
        raise ValueError(str(exc)) from None
    if len(data) != width:
        raise ValueError(f"needs a field of {len(data)} bytes, the layout gives {width}")
    return data
