"""Telegram codec: the spec's test vectors, round trips, field rules, replies."""

from __future__ import annotations

import datetime
import decimal
import json
import operator
import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.telegrams import (
    ACCEPTED, BAD_LENGTH, FORMAT_ERROR, HEADER_UNREADABLE, PLANT_TZ, UNKNOWN_TC, Garbage,
    TelegramRejected, decode, encode, encode_ack, encode_alive, load_layouts, make_reply,
)

VECTORS_PATH = Path(__file__).parent / "data" / "vectors.txt"
LAYOUTS = load_layouts()
SENT_AT = datetime.datetime(2025, 7, 3, 15, 29, 6, tzinfo=PLANT_TZ)


def read_vectors() -> list[tuple[str, bytes, dict]]:
    """(name, raw bytes, expected) per line of the spec's vectors file."""
    vectors = []
    for line in VECTORS_PATH.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        name, hex_text, expected = line.split("\t")
        vectors.append((name, bytes.fromhex(hex_text),
                        json.loads(expected, parse_float=decimal.Decimal)))
    return vectors


VECTORS = read_vectors()
RAW = {name: raw for name, raw, _ in VECTORS}


def with_bytes(raw: bytes, start: int, replacement: bytes) -> bytes:
    """``raw`` with the bytes at ``start`` overwritten (same total length)."""
    return raw[:start] + replacement + raw[start + len(replacement):]


class VectorTests(SynchronousTestCase):
    """One generated test per line of vectors.txt (added below the class)."""

    def test_file_has_every_vector(self) -> None:
        """The vector file names each vector once and covers NAK codes 10, 11 and 12."""
        names = [name for name, _, _ in VECTORS]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(names), 10)
        naks = sorted(expected["nak"] for _, _, expected in VECTORS if "nak" in expected)
        self.assertEqual(naks, ["10", "11", "12", "12"])


def _decode_test(raw: bytes, expected: dict):
    def test(self: SynchronousTestCase) -> None:
        if "nak" in expected:
            error = self.assertRaises(TelegramRejected, decode, raw, LAYOUTS)
            self.assertEqual(error.code, expected["nak"], error.reason)
            return
        flat = decode(raw, LAYOUTS).as_flat_dict()
        for key, value in expected.items():
            self.assertIn(key, flat)
            self.assertEqual(flat[key], value, key)
            if value is not None:
                self.assertIs(type(flat[key]), type(value), key)
    return test


def _reencode_test(raw: bytes):
    def test(self: SynchronousTestCase) -> None:
        telegram = decode(raw, LAYOUTS)
        again = encode(LAYOUTS, telegram.tc_code, telegram.fields,
                       line_code=telegram.line_code, sequence_no=telegram.sequence_no,
                       sent_at=telegram.sent_at)
        self.assertEqual(again, raw)
    return test


for _name, _raw, _expected in VECTORS:
    _slug = re.sub(r"\W", "_", _name)
    setattr(VectorTests, f"test_vector_{_slug}", _decode_test(_raw, _expected))
    if "nak" not in _expected:
        setattr(VectorTests, f"test_reencode_{_slug}", _reencode_test(_raw))


class DecodeTests(SynchronousTestCase):
    def test_header_values(self) -> None:
        """The header decodes to TC, sequence, length and a plant-time (+09:00) sent_at."""
        telegram = decode(RAW["schedule"], LAYOUTS)
        self.assertEqual(telegram.sent_at, SENT_AT)
        self.assertEqual(telegram.sent_at.utcoffset(), datetime.timedelta(hours=9))
        self.assertEqual(telegram.sent_at.astimezone(datetime.timezone.utc).hour, 6)
        self.assertEqual((telegram.date, telegram.time), ("20250703", "152906"))
        self.assertEqual(telegram.raw, RAW["schedule"])
        self.assertEqual(telegram.layout.name, "schedule")

    def test_spare_not_in_record_and_fields_read_only(self) -> None:
        """A decoded telegram's fields leave out the spare and cannot be changed."""
        telegram = decode(RAW["cut"], LAYOUTS)
        self.assertNotIn("spare", telegram.fields)
        self.assertNotIn("spare", telegram.as_flat_dict())
        self.assertEqual(list(telegram.fields), ["coil_number", "cut_mode", "winding_length"])
        self.assertRaises(TypeError, operator.setitem, telegram.fields, "cut_mode", 1)

    def test_numbers_leading_spaces_and_blank(self) -> None:
        """Numbers may have leading spaces; a blank number is None."""
        raw = with_bytes(RAW["speed"], 40, b"  75")
        self.assertEqual(decode(raw, LAYOUTS).fields["line_speed"], 75)
        raw = with_bytes(RAW["speed"], 40, b"    ")
        self.assertIsNone(decode(raw, LAYOUTS).fields["line_speed"])
        raw = with_bytes(RAW["speed"], 14, b"    80")  # length field with spaces
        self.assertEqual(decode(raw, LAYOUTS).length, 80)

    def test_numbers_malformed(self) -> None:
        """Trailing spaces, signs, inner spaces, NULs or wide digits in a number are a format error naming the field."""
        for bad in (b"75  ", b"+075", b"-075", b"7 5 ", b"\x0075\x00", b"\xef\xbc\x97\x35"):
            raw = with_bytes(RAW["speed"], 40, bad)
            error = self.assertRaises(TelegramRejected, decode, raw, LAYOUTS)
            self.assertEqual(error.code, FORMAT_ERROR, bad)
            self.assertEqual(error.field, "line_speed")
            self.assertIn("'line_speed'", error.reason)
            self.assertEqual((error.tc_code, error.sequence_no), ("4003", 4))

    def test_blank_decimal_is_none(self) -> None:
        """A blank decimal field is None."""
        raw = with_bytes(RAW["schedule"], 134, b"      ")
        self.assertIsNone(decode(raw, LAYOUTS).fields["thickness"])

    def test_text_nul_padding_stripped(self) -> None:
        """NUL padding around text is stripped."""
        raw = with_bytes(RAW["wpd"], 40, b"\x00H477707\x00\x00\x00\x00")
        self.assertEqual(decode(raw, LAYOUTS).fields["coil_number"], "H477707")

    def test_blank_text_is_empty_string(self) -> None:
        """A blank text field is the empty string."""
        raw = with_bytes(RAW["wpd"], 40, b" " * 12)
        self.assertEqual(decode(raw, LAYOUTS).fields["coil_number"], "")

    def test_half_character_at_field_end_dropped(self) -> None:
        """Half a CP949 character at a text field's end is dropped."""
        # customer_name is bytes 84-124; fill it with 19 x 가 and the first byte of a 20th.
        field = "가".encode("cp949") * 19 + "나".encode("cp949")[:1]
        raw = with_bytes(RAW["schedule"], 84, field)
        self.assertEqual(decode(raw, LAYOUTS).fields["customer_name"], "가" * 19)
        # The half character followed by padding is the same situation.
        field = "가".encode("cp949") * 18 + "나".encode("cp949")[:1] + b"   "
        raw = with_bytes(RAW["schedule"], 84, field)
        self.assertEqual(decode(raw, LAYOUTS).fields["customer_name"], "가" * 18)

    def test_bytes_not_cp949_rejected(self) -> None:
        """Bytes that are not CP949 are a format error naming the field."""
        for bad in (b"\x80", b"\xff", "가".encode("cp949")[:1] + b"!"):
            raw = with_bytes(RAW["schedule"], 84, b"AB" + bad + b"CD")
            error = self.assertRaises(TelegramRejected, decode, raw, LAYOUTS)
            self.assertEqual(error.code, FORMAT_ERROR, bad)
            self.assertIn("'customer_name'", error.reason)
        error = self.assertRaises(TelegramRejected, decode,
                                  with_bytes(RAW["cut"], 4, b"CC\xffL"), LAYOUTS)
        self.assertEqual((error.code, error.field), (FORMAT_ERROR, "line_code"))

    def test_impossible_or_blank_date_time(self) -> None:
        """An impossible or blank date or time is a format error naming the field."""
        for start, bad, field in ((20, b"20250230", "date"), (20, b"2025070 ", "date"),
                                  (20, b"        ", "date"), (28, b"256199", "time"),
                                  (28, b"240000", "time"), (28, b"      ", "time")):
            error = self.assertRaises(TelegramRejected, decode,
                                      with_bytes(RAW["wpd"], start, bad), LAYOUTS)
            self.assertEqual((error.code, error.field), (FORMAT_ERROR, field), bad)

    def test_header_unreadable(self) -> None:
        """An unreadable TC or length, or an incomplete header, is 'header unreadable'."""
        for start, bad in ((0, b"40A2"), (0, b" 402"), (14, b"0000A0"), (14, b"      ")):
            error = self.assertRaises(TelegramRejected, decode,
                                      with_bytes(RAW["wpd"], start, bad), LAYOUTS)
            self.assertEqual(error.code, HEADER_UNREADABLE, bad)
        error = self.assertRaises(TelegramRejected, decode, RAW["wpd"][:15], LAYOUTS)
        self.assertEqual(error.code, HEADER_UNREADABLE)
        self.assertIn("incomplete", error.reason)

    def test_sequence_unreadable(self) -> None:
        """An unreadable sequence number is 'header unreadable', keeping the TC."""
        raw = with_bytes(RAW["wpd"], 8, b"00x003")
        error = self.assertRaises(TelegramRejected, decode, raw, LAYOUTS)
        self.assertEqual((error.code, error.tc_code, error.sequence_no),
                         (HEADER_UNREADABLE, "4002", None))
        self.assertIn("sequence_no", error.reason)

    def test_unknown_tc_keeps_sequence(self) -> None:
        """An unknown TC is refused with its code and sequence number."""
        error = self.assertRaises(TelegramRejected, decode, RAW["unknown-tc"], LAYOUTS)
        self.assertEqual((error.code, error.tc_code, error.sequence_no),
                         (UNKNOWN_TC, "4005", 7))

    def test_raw_length_disagrees(self) -> None:
        """A telegram whose size disagrees with its length field or layout is a bad length, sizes named."""
        for raw in (RAW["speed"][:79], RAW["speed"] + b" "):
            error = self.assertRaises(TelegramRejected, decode, raw, LAYOUTS)
            self.assertEqual(error.code, BAD_LENGTH)
            self.assertIn(str(len(raw)), error.reason)
        error = self.assertRaises(TelegramRejected, decode, RAW["bad-length"], LAYOUTS)
        self.assertIn("81", error.reason)


def sample_values(layout) -> dict:
    """Values of every record field, as wide as each field allows."""
    values: dict[str, object] = {}
    for spec in layout.record_fields:
        if spec.type == "text":
            values[spec.name] = ("똠㈜가" * spec.width)[:spec.width // 2] or "Z"
        elif spec.type == "digits":
            values[spec.name] = "1234567890"[:spec.width].rjust(spec.width, "0")
        elif spec.type == "int":
            values[spec.name] = 10 ** spec.width - 1
        elif spec.type == "decimal":
            values[spec.name] = decimal.Decimal(10 ** spec.width - 1).scaleb(-spec.scale)
    return values


class RoundTripTests(SynchronousTestCase):
    def test_every_tc(self) -> None:
        """Every TC's values encode to its length and decode back the same."""
        for tc_code, layout in LAYOUTS.by_tc.items():
            values = sample_values(layout)
            raw = encode(LAYOUTS, tc_code, values, line_code="CCL2", sequence_no=999999,
                         sent_at=SENT_AT)
            self.assertEqual(len(raw), layout.length, tc_code)
            telegram = decode(raw, LAYOUTS)
            self.assertEqual(dict(telegram.fields), values, tc_code)
            self.assertEqual((telegram.tc_code, telegram.line_code, telegram.sequence_no,
                              telegram.length, telegram.sent_at),
                             (tc_code, "CCL2", 999999, layout.length, SENT_AT))

    def test_none_numerics_and_missing_fields(self) -> None:
        """None numbers and missing fields encode as blanks and decode as None or empty text."""
        values = {"coil_number": "H1", "thickness": None, "width": None, "weight": None}
        raw = encode(LAYOUTS, "4000", values, sequence_no=1, sent_at=SENT_AT)
        fields = decode(raw, LAYOUTS).fields
        for name in ("thickness", "width", "weight", "length_value", "sequence_order"):
            self.assertIsNone(fields[name], name)
        self.assertEqual((fields["coil_number"], fields["customer_name"]), ("H1", ""))
        self.assertEqual(raw[134:140], b"      ")

    def test_korean_and_extended_hangul(self) -> None:
        """Korean text, extended hangul included, round-trips through CP949."""
        name = "(주)똠방각하㈜ 이알텍"
        raw = encode(LAYOUTS, "4000", {"customer_name": name}, sequence_no=1,
                     sent_at=SENT_AT)
        self.assertEqual(decode(raw, LAYOUTS).fields["customer_name"], name)
        self.assertEqual(raw[84:84 + len(name.encode("cp949"))], name.encode("cp949"))

    def test_truncation_at_character_boundary(self) -> None:
        """Text too long for its field is cut at a character boundary, never half a character."""
        # 40-byte field: 21 syllables (42 bytes) keep 20; "A" + 20 syllables (41 bytes)
        # keeps "A" + 19 and a space, never half of the 20th.
        for value, kept in (("가" * 21, "가" * 20), ("A" + "똠" * 20, "A" + "똠" * 19)):
            raw = encode(LAYOUTS, "4000", {"customer_name": value}, sequence_no=1,
                         sent_at=SENT_AT)
            self.assertEqual(len(raw), 180)
            self.assertEqual(decode(raw, LAYOUTS).fields["customer_name"], kept)
        raw = encode(LAYOUTS, "4000", {"customer_name": "A" + "똠" * 20}, sequence_no=1,
                     sent_at=SENT_AT)
        self.assertEqual(raw[123:124], b" ")

    def test_sent_at_converted_to_plant_time(self) -> None:
        """sent_at in any zone is written in plant time and read back as the same instant."""
        utc = datetime.datetime(2025, 7, 3, 20, 0, 1, tzinfo=datetime.timezone.utc)
        telegram = decode(encode(LAYOUTS, "4003", {"line_speed": 1}, sequence_no=1,
                                 sent_at=utc), LAYOUTS)
        self.assertEqual((telegram.date, telegram.time), ("20250704", "050001"))
        self.assertEqual(telegram.sent_at, utc)

    def test_decimal_inputs(self) -> None:
        """Decimals and floats are written with the field's scale."""
        for value in (decimal.Decimal("0.372"), 0.372, decimal.Decimal("0.3720")):
            raw = encode(LAYOUTS, "4000", {"thickness": value}, sequence_no=1,
                         sent_at=SENT_AT)
            self.assertEqual(raw[134:140], b"000372", value)
        raw = encode(LAYOUTS, "4000", {"thickness": 2}, sequence_no=1, sent_at=SENT_AT)
        self.assertEqual(decode(raw, LAYOUTS).fields["thickness"], decimal.Decimal("2.000"))


class EncodeErrorTests(SynchronousTestCase):
    def assertRefused(self, tc_code: str, values: dict, *needles: str, **kwargs) -> None:
        kwargs.setdefault("sequence_no", 1)
        kwargs.setdefault("sent_at", SENT_AT)
        error = self.assertRaises(ValueError, encode, LAYOUTS, tc_code, values, **kwargs)
        for needle in needles:
            self.assertIn(needle, str(error))

    def test_values_that_do_not_fit(self) -> None:
        """Values that do not fit their field (too big, negative, wrong kind, too many decimals) are refused."""
        self.assertRefused("4000", {"width": 100000}, "'width'", "5 digits")
        self.assertRefused("4000", {"width": -1}, "'width'", "negative")
        self.assertRefused("4000", {"width": True}, "'width'")
        self.assertRefused("4000", {"width": "12"}, "'width'")
        self.assertRefused("4000", {"thickness": decimal.Decimal("0.3725")}, "'thickness'",
                           "decimals")
        self.assertRefused("4000", {"thickness": decimal.Decimal("1000")}, "'thickness'")
        self.assertRefused("4000", {"thickness": decimal.Decimal("NaN")}, "'thickness'")
        self.assertRefused("4000", {"coil_number": "H4\U0001F600"}, "'coil_number'", "CP949")
        self.assertRefused("4000", {"coil_number": 477707}, "'coil_number'")
        self.assertRefused("4999", {"state": "1"}, "'state'", "2 ASCII digits")
        self.assertRefused("4999", {"alive_count": 10000}, "'alive_count'")

    def test_bad_calls(self) -> None:
        """An unknown TC or field, the spare, a bad sequence number or a naive sent_at is refused."""
        self.assertRefused("4005", {}, "4005")
        self.assertRefused("4003", {"line_sped": 1}, "line_sped")
        self.assertRefused("4003", {"spare": ""}, "spare")
        self.assertRefused("4003", {}, "sequence_no", sequence_no=0)
        self.assertRefused("4003", {}, "sequence_no", sequence_no=1000000)
        self.assertRefused("4003", {}, "timezone",
                           sent_at=datetime.datetime(2025, 7, 3, 15, 29, 6))
        self.assertRefused("4003", {}, "line_code", line_code="CCL\U0001F600")


class ReplyTests(SynchronousTestCase):
    def test_ack_and_nak(self) -> None:
        """ACK (4900) and NAK (4901) encode the acknowledged TC, sequence and result code."""
        ack = decode(encode_ack(LAYOUTS, acked_tc_code="4000", acked_sequence_no=123,
                                sequence_no=7, sent_at=SENT_AT), LAYOUTS)
        self.assertEqual((ack.tc_code, ack.length, dict(ack.fields)),
                         ("4900", 60, {"acked_tc_code": "4000", "acked_sequence_no": 123,
                                       "result_code": "00"}))
        nak = decode(encode_ack(LAYOUTS, acked_tc_code="4003", acked_sequence_no=9,
                                result_code=FORMAT_ERROR, line_code="CCL9",
                                sequence_no=8, sent_at=SENT_AT), LAYOUTS)
        self.assertEqual((nak.tc_code, nak.line_code, nak.sequence_no, nak.fields["result_code"]),
                         ("4901", "CCL9", 8, "12"))

    def test_alive(self) -> None:
        """The alive telegram encodes its count and state."""
        raw = encode_alive(LAYOUTS, alive_count=17, sequence_no=5, sent_at=SENT_AT)
        self.assertEqual(raw, RAW["alive"])
        offline = decode(encode_alive(LAYOUTS, alive_count=0, state="99", sequence_no=1,
                                      sent_at=SENT_AT), LAYOUTS)
        self.assertEqual(dict(offline.fields), {"alive_count": 0, "state": "99"})

    def test_make_reply(self) -> None:
        """make_reply ACKs a telegram, NAKs refusals and garbage; alives, replies and continued garbage get nothing."""
        def reply(outcome):
            raw = make_reply(LAYOUTS, outcome, sequence_no=3, sent_at=SENT_AT)
            return None if raw is None else dict(decode(raw, LAYOUTS).as_flat_dict())

        accepted = reply(decode(RAW["schedule"], LAYOUTS))
        self.assertEqual((accepted["tc_code"], accepted["acked_tc_code"],
                          accepted["acked_sequence_no"], accepted["result_code"]),
                         ("4900", "4000", 1, ACCEPTED))
        self.assertIsNone(reply(decode(RAW["alive"], LAYOUTS)))
        self.assertIsNone(reply(decode(encode_ack(LAYOUTS, acked_tc_code="4000",
                                                  acked_sequence_no=1, sequence_no=1,
                                                  sent_at=SENT_AT), LAYOUTS)))
        rejected = self.assertRaises(TelegramRejected, decode, RAW["bad-number"], LAYOUTS)
        nak = reply(rejected)
        self.assertEqual((nak["tc_code"], nak["acked_tc_code"], nak["acked_sequence_no"],
                          nak["result_code"]), ("4901", "4003", 9, FORMAT_ERROR))
        unreadable = reply(Garbage(b"junk", HEADER_UNREADABLE, "x", None, None))
        self.assertEqual((unreadable["acked_tc_code"], unreadable["acked_sequence_no"],
                          unreadable["result_code"]), ("0000", 0, HEADER_UNREADABLE))
        self.assertIsNone(reply(Garbage(b"junk", UNKNOWN_TC, "x", None, None,
                                        continued=True)))
        self.assertRaises(TypeError, make_reply, LAYOUTS, b"raw", sequence_no=1,
                          sent_at=SENT_AT)
