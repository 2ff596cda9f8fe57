"""The layout file: the packaged default, an edited copy, and refused broken files."""

from __future__ import annotations

import copy
import datetime
import importlib.resources
import json
import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.telegrams import (
    BAD_LENGTH, PLANT_TZ, FieldSpec, LayoutError, TelegramRejected, decode, encode,
    load_layouts,
)

DEFAULT_TEXT = (importlib.resources.files("ccl.data") / "telegram-layout.toml").read_text(
    "utf-8")
SENT_AT = datetime.datetime(2025, 7, 3, 15, 29, 6, tzinfo=PLANT_TZ)
CUT_VECTOR = next(
    bytes.fromhex(line.split("\t")[1])
    for line in (Path(__file__).parent / "data" / "vectors.txt").read_text("utf-8").splitlines()
    if line.startswith("cut\t"))


def toml_value(value: object) -> str:
    """Just enough TOML writing for layout documents (JSON strings are TOML strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def dump_layout(document: dict) -> str:
    lines = []
    for key, value in document.items():
        if key not in ("header", "telegram"):
            lines.append(f"{key} = {toml_value(value)}")
    if "header" in document:
        lines.append("[header]")
        lines += [f"{k} = {toml_value(v)}" for k, v in document["header"].items()]
    for entry in document.get("telegram", []):
        lines.append("[[telegram]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def telegram_entry(document: dict, tc_code: str) -> dict:
    return next(t for t in document["telegram"] if t["tc_code"] == tc_code)


def body_field(document: dict, tc_code: str, name: str) -> dict:
    return next(f for f in telegram_entry(document, tc_code)["fields"] if f["name"] == name)


class DefaultLayoutTests(SynchronousTestCase):
    def test_lengths_match_the_spec(self) -> None:
        """The packaged layout has the spec's header (40 bytes, its fields) and telegram lengths."""
        layouts = load_layouts()
        self.assertEqual(layouts.header_length, 40)
        self.assertEqual({tc: lay.length for tc, lay in layouts.by_tc.items()},
                         {"4000": 180, "4001": 80, "4002": 80, "4003": 80,
                          "4900": 60, "4901": 60, "4999": 60})
        self.assertEqual([(f.name, f.width, f.type) for f in layouts.header],
                         [("tc_code", 4, "digits"), ("line_code", 4, "text"),
                          ("sequence_no", 6, "int"), ("length", 6, "int"),
                          ("date", 8, "date"), ("time", 6, "time"), ("spare", 6, "text")])
        self.assertEqual(layouts.probe_length, 20)
        self.assertEqual(layouts.header_spans["length"], (14, 20))

    def test_kinds_tables_and_channels(self) -> None:
        """Each process TC has its table and forwarding channel (4001 none); 4900/4901 are replies, 4999 alive."""
        layouts = load_layouts()
        self.assertEqual([(lay.tc_code, lay.name, lay.table, lay.forward)
                          for lay in layouts.process_layouts],
                         [("4000", "schedule", "tc_4000_schedule", "schedule"),
                          ("4001", "cut", "tc_4001_cut", None),
                          ("4002", "wpd", "tc_4002_wpd", "wpd"),
                          ("4003", "speed", "tc_4003_speed", "speed")])
        self.assertEqual(layouts.channels, ("schedule", "speed", "wpd"))
        self.assertEqual({tc: layouts.get(tc).kind for tc in ("4900", "4901", "4999")},
                         {"4900": "reply", "4901": "reply", "4999": "alive"})
        self.assertIsNone(layouts.get("4005"))
        self.assertEqual(layouts.by_name("nak").tc_code, "4901")
        self.assertRaises(KeyError, layouts.by_name, "nothing")

    def test_record_fields_exclude_spare(self) -> None:
        """A telegram's record fields are its fields without the spare."""
        layout = load_layouts().get("4000")
        self.assertEqual(layout.fields[-1], FieldSpec("spare", 19, "text"))
        self.assertNotIn("spare", [f.name for f in layout.record_fields])
        self.assertEqual(len(layout.record_fields), len(layout.fields) - 1)
        self.assertEqual(layout.record_fields[6], FieldSpec("thickness", 6, "decimal", 3))

    def test_path_and_default_agree(self) -> None:
        """Loading the packaged file by path gives the same layouts as the default."""
        path = Path(self.mktemp())
        path.write_text(DEFAULT_TEXT, encoding="utf-8")
        self.assertEqual(load_layouts(path), load_layouts())
        self.assertEqual(load_layouts(str(path)), load_layouts(None))


class EditedLayoutTests(SynchronousTestCase):
    def write(self, text: str) -> Path:
        path = Path(self.mktemp())
        path.write_text(text, encoding="utf-8")
        return path

    def test_width_change_in_the_file_is_enough(self) -> None:
        """Changing a field's width in the file is all it takes: lengths, encoding and decoding follow."""
        # The plant engineer's edit: TC 4001 coil_number 12 -> 14 bytes, nothing else.
        block = DEFAULT_TEXT.index('tc_code = "4001"')
        old = '{ name = "coil_number",    width = 12, type = "text" }'
        at = DEFAULT_TEXT.index(old, block)
        edited = (DEFAULT_TEXT[:at] + old.replace("width = 12", "width = 14")
                  + DEFAULT_TEXT[at + len(old):])
        layouts = load_layouts(self.write(edited))
        self.assertEqual(layouts.get("4001").length, 82)
        self.assertEqual(layouts.get("4000").length, 180)

        raw = encode(layouts, "4001", {"coil_number": "H4777070001X", "cut_mode": 1,
                                       "winding_length": 12}, sequence_no=2, sent_at=SENT_AT)
        self.assertEqual((len(raw), raw[14:20]), (82, b"000082"))
        fields = decode(raw, layouts).fields
        self.assertEqual(dict(fields), {"coil_number": "H4777070001X", "cut_mode": 1,
                                        "winding_length": 12})
        error = self.assertRaises(TelegramRejected, decode, CUT_VECTOR, layouts)
        self.assertEqual(error.code, BAD_LENGTH)
        self.assertEqual(decode(CUT_VECTOR, load_layouts()).fields["winding_length"], 3559)

    def test_declared_lengths_are_checked_when_present(self) -> None:
        """Declared lengths that agree with the fields are accepted."""
        document = tomllib.loads(DEFAULT_TEXT)
        for entry in document["telegram"]:
            entry["length"] = {"4000": 180, "4900": 60, "4901": 60, "4999": 60}.get(
                entry["tc_code"], 80)
        document["header"]["length"] = 40
        self.assertEqual(load_layouts(self.write(dump_layout(document))).get("4000").length,
                         180)


class BrokenLayoutTests(SynchronousTestCase):
    def assertRefused(self, mutate, *needles: str) -> None:
        document = copy.deepcopy(tomllib.loads(DEFAULT_TEXT))
        mutate(document)
        path = Path(self.mktemp())
        path.write_text(dump_layout(document), encoding="utf-8")
        error = self.assertRaises(LayoutError, load_layouts, path)
        message = str(error)
        self.assertTrue(message.startswith(str(path)), message)
        for needle in needles:
            self.assertIn(needle, message)

    def test_field_problems(self) -> None:
        """A bad field type, width, scale or unknown key is refused naming the TC, the field and the problem."""
        def set_field(tc, name, /, **changes):
            return lambda d: body_field(d, tc, name).update(changes)

        self.assertRefused(set_field("4003", "line_speed", type="float"),
                           "TC 4003", "'line_speed'", "type", "float")
        self.assertRefused(set_field("4003", "line_speed", width=0), "TC 4003", "width")
        self.assertRefused(set_field("4003", "line_speed", width="4"), "'line_speed'", "width")
        self.assertRefused(set_field("4000", "thickness", scale=-1), "'thickness'", "scale")
        self.assertRefused(set_field("4000", "width", scale=2), "'width'", "only decimal")
        self.assertRefused(set_field("4003", "line_speed", widht=4), "'line_speed'",
                           "unknown key", "widht")
        self.assertRefused(set_field("4002", "coil_number", name="Coil Number"),
                           "TC 4002", "name")
        self.assertRefused(lambda d: telegram_entry(d, "4000")["fields"].append(
            {"name": "coil_number", "width": 2, "type": "text"}),
            "TC 4000", "'coil_number'", "declared twice")
        self.assertRefused(set_field("4000", "length_value", name="length"),
                           "TC 4000", "'length'", "clashes")
        self.assertRefused(lambda d: telegram_entry(d, "4003").update(fields=[]),
                           "TC 4003", "fields")

    def test_header_problems(self) -> None:
        """A header missing a field, with a wrong type, width, name or length is refused, saying which."""
        def header_field(name, /, **changes):
            return lambda d: next(f for f in d["header"]["fields"]
                                  if f["name"] == name).update(changes)

        self.assertRefused(lambda d: d["header"]["fields"].pop(0), "header", "'tc_code'")
        self.assertRefused(header_field("length", type="text"), "header", "'length'", "int")
        self.assertRefused(header_field("date", width=6), "header", "'date'", "8 bytes")
        self.assertRefused(header_field("spare", name="sender"), "header", "sender", "spare")
        self.assertRefused(lambda d: d["header"].update(length=42), "header",
                           "declared length 42", "40")
        self.assertRefused(lambda d: d.pop("header"), "[header]")

    def test_telegram_problems(self) -> None:
        """A wrong declared length, a bad or repeated TC or name, an unknown kind or a missing table is refused."""
        def set_entry(tc, **changes):
            return lambda d: telegram_entry(d, tc).update(changes)

        self.assertRefused(set_entry("4001", length=180), "TC 4001", "declared length 180",
                           "80")
        self.assertRefused(set_entry("4003", tc_code=4003), "tc_code", "4003")
        self.assertRefused(set_entry("4003", tc_code="403"), "tc_code", "403")
        self.assertRefused(set_entry("4003", tc_code="4002"), "TC 4002", "twice")
        self.assertRefused(set_entry("4003", name="wpd"), "TC 4003", "'wpd'", "twice")
        self.assertRefused(set_entry("4003", kind="data"), "TC 4003", "kind", "data")
        self.assertRefused(lambda d: telegram_entry(d, "4001").pop("table"),
                           "TC 4001", "table")
        self.assertRefused(set_entry("4900", forward="acks"), "TC 4900", "only process")
        self.assertRefused(set_entry("4003", colour="red"), "TC 4003", "colour")
        self.assertRefused(lambda d: d["telegram"].remove(telegram_entry(d, "4999")),
                           "'alive'")
        self.assertRefused(set_entry("4999", kind="process", table="t"), "TC 4999",
                           "alive")
        self.assertRefused(lambda d: telegram_entry(d, "4901")["fields"].pop(2),
                           "TC 4901", "result_code")
        self.assertRefused(set_field_width("4900", "acked_tc_code", 5), "TC 4900",
                           "acked_tc_code")
        self.assertRefused(set_field_width("4000", "spare", 999999), "TC 4000",
                           "does not fit")
        self.assertRefused(lambda d: d.update(telegrams=[]), "unknown key", "telegrams")
        self.assertRefused(lambda d: d.pop("telegram"), "[[telegram]]")

    def test_unreadable_files(self) -> None:
        """A file that is not TOML or does not exist is a LayoutError naming the file."""
        path = Path(self.mktemp())
        path.write_text(DEFAULT_TEXT.replace('name = "cut"', 'name = cut'), encoding="utf-8")
        error = self.assertRaises(LayoutError, load_layouts, path)
        self.assertIn("not valid TOML", str(error))
        self.assertIn(str(path), str(error))
        error = self.assertRaises(LayoutError, load_layouts, path.with_name("missing.toml"))
        self.assertIn("missing.toml", str(error))
        self.assertTrue(issubclass(LayoutError, ValueError))


def set_field_width(tc: str, name: str, width: int):
    return lambda d: body_field(d, tc, name).update(width=width)


class DumpTests(SynchronousTestCase):
    """The test's own TOML writer must reproduce the packaged document exactly."""

    def test_dump_round_trip(self) -> None:
        """A dumped layout document reads back the same."""
        document = tomllib.loads(DEFAULT_TEXT)
        self.assertEqual(tomllib.loads(dump_layout(document)), document)
