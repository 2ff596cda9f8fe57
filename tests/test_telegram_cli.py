"""`ccl decode`: called through configure()/run() with stdout captured."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.cli import decode as decode_cli

HEX = {
    line.split("\t")[0]: line.split("\t")[1]
    for line in (Path(__file__).parent / "data" / "vectors.txt").read_text("utf-8").splitlines()
    if line.strip()
}


class DecodeCommandTests(SynchronousTestCase):
    def call(self, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="ccl decode")
        decode_cli.configure(parser)
        args = parser.parse_args(list(argv))
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        return decode_cli.run(args), out.getvalue(), err.getvalue()

    def test_one_telegram_aligned(self) -> None:
        """ccl decode prints a telegram's fields one a line, values aligned in one column, Korean decoded."""
        code, out, _ = self.call(HEX["schedule"])
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["tc_code", "4000"])
        columns = {line.index(line.split()[1], len(line.split()[0])) for line in lines}
        self.assertEqual(columns, {len("sequence_order") + 2})
        self.assertIn("customer_name   이알텍㈜", lines)
        self.assertIn("thickness       0.372", lines)
        self.assertEqual(len(lines), 18)

    def test_null_value_shown(self) -> None:
        """A blank numeric field prints as NULL, and CP949 text is decoded."""
        code, out, _ = self.call(HEX["schedule-blank-weight-cp949"])
        self.assertEqual(code, 0)
        self.assertIn("weight          NULL", out.splitlines())
        self.assertIn("customer_name   똠방각하", out.splitlines())

    def test_json(self) -> None:
        """--json prints one JSON object per telegram with typed values."""
        code, out, _ = self.call("--json", HEX["schedule"])
        self.assertEqual(code, 0)
        [record] = [json.loads(line) for line in out.splitlines()]
        self.assertEqual((record["thickness"], record["customer_name"], record["width"]),
                         (0.372, "이알텍㈜", 1212))

    def test_rejected_telegram(self) -> None:
        """A refused telegram prints its NAK code and reason and exits 1."""
        code, out, _ = self.call(HEX["bad-number"])
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith("NAK 12: TC 4003 field 'line_speed'"), out)
        code, out, _ = self.call(HEX["unknown-tc"])
        self.assertEqual((code, out.split(":")[0]), (1, "NAK 10"))

    def test_file_with_several_telegrams(self) -> None:
        """A file of several telegrams prints each, a bad one as its NAK, and exits 1."""
        path = Path(self.mktemp())
        path.write_bytes(b"".join(bytes.fromhex(HEX[n]) for n in ("cut", "bad-length", "speed")))
        code, out, _ = self.call("--json", "--file", str(path))
        records = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(code, 1)
        self.assertEqual([r.get("tc_code") for r in records], ["4001", "4003", "4003"])
        self.assertEqual([r.get("nak") for r in records], [None, "11", None])
        self.assertEqual(records[2]["line_speed"], 75)

    def test_stdin(self) -> None:
        """Raw telegram bytes, or hex with spaces, are read from stdin."""
        raw = bytes.fromhex(HEX["speed"])
        code, out, _ = self.call("--file", "-", stdin=raw)
        self.assertEqual(code, 0)
        self.assertIn("line_speed   75", out.splitlines())
        spaced = " ".join(HEX["wpd"][i:i + 8] for i in range(0, len(HEX["wpd"]), 8))
        code, out, _ = self.call("-", stdin=(spaced + "\n").encode())
        self.assertEqual(code, 0)
        self.assertIn("coil_number  H477707", out.splitlines())

    def test_other_layout(self) -> None:
        """A broken --layout file exits 2 with a message naming the file."""
        path = Path(self.mktemp())
        path.write_text("[header]\n", encoding="utf-8")
        code, out, err = self.call("--layout", str(path), HEX["speed"])
        self.assertEqual((code, out), (2, ""))
        self.assertIn(str(path), err)

    def test_bad_input(self) -> None:
        """Text that is not hex, a missing file or empty stdin exits 2 with a message."""
        code, out, err = self.call("4000CCL1ZZ")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("hex", err)
        code, _, err = self.call("--file", str(Path(self.mktemp())))
        self.assertEqual(code, 2)
        self.assertIn("error", err)
        code, _, err = self.call("--file", "-")
        self.assertEqual(code, 2)

    def test_truncated_telegram(self) -> None:
        """A truncated telegram prints NAK 11 and exits 1."""
        code, out, _ = self.call(HEX["cut"][:100])
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith("NAK 11: truncated telegram"), out)
