"""`ccl decode`: show what the system reads from raw telegram bytes (commissioning aid).

Input goes through the same framer and decoder as the live MES link, so what this prints
is what the service would store, and a refusal shows the NAK code the service would send.
"""

from __future__ import annotations

import argparse
import decimal
import json
import sys

from ccl.domain.telegrams import (
    Garbage, LayoutError, Telegram, TelegramFramer, TelegramRejected, decode, load_layouts,
)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Decode MES telegrams and print their fields. Several telegrams "
                          "back to back are cut apart as on the live link.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("hex", nargs="?", metavar="HEX",
                        help="telegram bytes as hex (spaces and newlines ignored); "
                             "'-' reads the hex from standard input")
    source.add_argument("--file", metavar="PATH",
                        help="file holding raw telegram bytes; '-' reads raw bytes from "
                             "standard input")
    parser.add_argument("--layout", metavar="PATH",
                        help="layout file to use instead of the packaged one")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per telegram and line")


def run(args: argparse.Namespace) -> int:
    try:
        layouts = load_layouts(args.layout)
    except LayoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        data = _read_input(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not data:
        print("error: no bytes to decode", file=sys.stderr)
        return EXIT_USAGE

    framer = TelegramFramer(layouts)
    items = framer.feed(data) + framer.flush(final=True)
    status = EXIT_OK
    for index, item in enumerate(items):
        if isinstance(item, Garbage):
            outcome: Telegram | TelegramRejected = TelegramRejected(
                item.code, f"{item.reason} ({len(item.raw)} bytes dropped)",
                tc_code=item.tc_code, sequence_no=item.sequence_no)
        else:
            try:
                outcome = decode(item.raw, layouts)
            except TelegramRejected as exc:
                outcome = exc
        if isinstance(outcome, TelegramRejected):
            status = EXIT_REJECTED
        if args.json:
            print(json.dumps(_as_json(outcome), ensure_ascii=False))
        else:
            if index:
                print()
            _print_text(outcome)
    return status


def _read_input(args: argparse.Namespace) -> bytes:
    if args.file is not None:
        if args.file == "-":
            return sys.stdin.buffer.read()
        with open(args.file, "rb") as handle:
            return handle.read()
    text = sys.stdin.read() if args.hex == "-" else args.hex
    try:
        return bytes.fromhex("".join(text.split()))
    except ValueError:
        raise ValueError("HEX is not valid hexadecimal (two digits per byte)") from None


def _print_text(outcome: Telegram | TelegramRejected) -> None:
    if isinstance(outcome, TelegramRejected):
        print(f"NAK {outcome.code}: {outcome.reason}")
        return
    flat = outcome.as_flat_dict()
    width = max(len(name) for name in flat)
    for name, value in flat.items():
        shown = "NULL" if value is None else str(value)
        print(f"{name:<{width}}  {shown}".rstrip())


def _as_json(outcome: Telegram | TelegramRejected) -> dict:
    if isinstance(outcome, TelegramRejected):
        return {"nak": outcome.code, "reason": outcome.reason, "tc_code": outcome.tc_code,
                "sequence_no": outcome.sequence_no}
    # Decimals become JSON numbers, as in the test vectors; the fields are at most a
    # handful of digits wide, well inside what a float carries exactly.
    return {name: float(value) if isinstance(value, decimal.Decimal) else value
            for name, value in outcome.as_flat_dict().items()}
