"""Stream framing: same output for every split, re-synchronisation, bounded memory."""

from __future__ import annotations

import importlib.resources
import random
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.telegrams import (
    BAD_LENGTH, FORMAT_ERROR, HEADER_UNREADABLE, UNKNOWN_TC, Frame, Garbage, TelegramFramer,
    TelegramRejected, decode, load_layouts,
)

LAYOUTS = load_layouts()
RAW = {
    line.split("\t")[0]: bytes.fromhex(line.split("\t")[1])
    for line in (Path(__file__).parent / "data" / "vectors.txt").read_text("utf-8").splitlines()
    if line.strip()
}

# A header that is right for TC 4003 except its length (99): 11, with sequence 1.
FAKE_HEADER = b"4003CCL1000001000099"
# Good telegrams, refused ones, and junk, in one stream; the last 4 bytes are a
# telegram that never finishes.
PIECES = [
    RAW["schedule"], b"NOISE\r\n", RAW["cut"], RAW["unknown-tc"], RAW["wpd"],
    FAKE_HEADER + b"40", RAW["speed"], RAW["bad-length"], RAW["alive"], RAW["bad-number"],
    b"x", RAW["bad-date"], RAW["schedule-blank-weight-cp949"], b"4000",
]
STREAM = b"".join(PIECES)
EXPECTED = [
    Frame(RAW["schedule"]),
    Garbage(b"NOISE\r\n", HEADER_UNREADABLE, "", None, None),
    Frame(RAW["cut"]),
    Garbage(RAW["unknown-tc"], UNKNOWN_TC, "", "4005", 7),
    Frame(RAW["wpd"]),
    Garbage(FAKE_HEADER + b"40", BAD_LENGTH, "", "4003", 1),
    Frame(RAW["speed"]),
    Garbage(RAW["bad-length"], BAD_LENGTH, "", "4003", 8),
    Frame(RAW["alive"]),
    Frame(RAW["bad-number"]),
    Garbage(b"x", HEADER_UNREADABLE, "", None, 100001),  # bytes 8-14 happen to be digits
    Frame(RAW["bad-date"]),
    Frame(RAW["schedule-blank-weight-cp949"]),
    Garbage(b"4000", HEADER_UNREADABLE, "", "4000", None),
]


def run(chunks, max_garbage: int = 64 * 1024, layouts=LAYOUTS) -> list:
    framer = TelegramFramer(layouts, max_garbage=max_garbage)
    items = []
    for chunk in chunks:
        items += framer.feed(chunk)
    return items + framer.flush(final=True)


def without_reasons(items: list) -> list:
    return [Garbage(i.raw, i.code, "", i.tc_code, i.sequence_no, i.continued)
            if isinstance(i, Garbage) else i for i in items]


class MixedStreamTests(SynchronousTestCase):
    def test_whole_stream(self) -> None:
        """A mixed stream is cut into its telegrams and garbage runs, each with its reason, losing no byte."""
        items = run([STREAM])
        self.assertEqual(without_reasons(items), EXPECTED)
        self.assertEqual(b"".join(i.raw for i in items), STREAM)
        reasons = [i.reason for i in items if isinstance(i, Garbage)]
        self.assertIn("4005", reasons[1])
        self.assertIn("81", reasons[3])
        self.assertTrue(all(reasons), reasons)

    def test_frames_decode_as_the_codec_says(self) -> None:
        """The framer's frames are what the codec then accepts or refuses."""
        codes = []
        for item in run([STREAM]):
            if isinstance(item, Frame):
                try:
                    decode(item.raw, LAYOUTS)
                    codes.append("00")
                except TelegramRejected as exc:
                    codes.append(exc.code)
        self.assertEqual(codes, ["00", "00", "00", "00", "00", FORMAT_ERROR, FORMAT_ERROR, "00"])

    def test_every_split_point(self) -> None:
        """The stream fed in two pieces, split at any byte, is framed the same."""
        reference = run([STREAM])
        for cut in range(len(STREAM) + 1):
            self.assertEqual(run([STREAM[:cut], STREAM[cut:]]), reference, cut)

    def test_byte_by_byte(self) -> None:
        """The stream fed byte by byte is framed the same."""
        self.assertEqual(run([STREAM[i:i + 1] for i in range(len(STREAM))]), run([STREAM]))

    def test_random_splits(self) -> None:
        """The stream fed in random pieces is framed the same."""
        reference = run([STREAM])
        rng = random.Random(4000)
        for _ in range(300):
            cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(2, 40)))
            chunks = [STREAM[a:b] for a, b in zip([0] + cuts, cuts + [len(STREAM)])]
            self.assertEqual(run(chunks), reference, cuts)

    def test_small_max_garbage_same_for_every_split(self) -> None:
        """With a small max_garbage the framing is the same for every split and keeps every byte."""
        for max_garbage in (1, 30):
            reference = run([STREAM], max_garbage)
            self.assertEqual(b"".join(i.raw for i in reference), STREAM)
            self.assertEqual([i for i in reference if isinstance(i, Frame)],
                             [i for i in EXPECTED if isinstance(i, Frame)])
            for cut in range(len(STREAM) + 1):
                self.assertEqual(run([STREAM[:cut], STREAM[cut:]], max_garbage), reference,
                                 (max_garbage, cut))
            self.assertEqual(run([bytes([b]) for b in STREAM], max_garbage), reference)

    def test_long_garbage_run_comes_in_pieces(self) -> None:
        """A garbage run longer than max_garbage comes out in pieces, the later ones marked continued."""
        items = run([STREAM], max_garbage=30)
        unknown = [i for i in items if isinstance(i, Garbage) and i.code == UNKNOWN_TC]
        self.assertEqual([len(i.raw) for i in unknown], [30, 30, 20])
        self.assertEqual([(i.tc_code, i.sequence_no, i.continued) for i in unknown],
                         [("4005", 7, False), (None, None, True), (None, None, True)])

    def test_buffer_bounded_while_feeding(self) -> None:
        """The framer's buffer stays within max_garbage plus a header probe, or one telegram."""
        for max_garbage in (5, 64):
            framer = TelegramFramer(LAYOUTS, max_garbage=max_garbage)
            bound = max(max_garbage + LAYOUTS.probe_length, 180)
            for i in range(len(STREAM)):
                framer.feed(STREAM[i:i + 1])
                self.assertLessEqual(framer.buffered, bound)


class BadHeaderTests(SynchronousTestCase):
    def test_header_claiming_a_megabyte_does_not_wait(self) -> None:
        """A header claiming a megabyte is refused at once (bad length), and the next telegram framed."""
        bogus = b"4000CCL1000042999999" + b"x" * 20
        framer = TelegramFramer(LAYOUTS)
        items = framer.feed(bogus + RAW["cut"])
        self.assertEqual(without_reasons(items),
                         [Garbage(bogus, BAD_LENGTH, "", "4000", 42), Frame(RAW["cut"])])
        self.assertEqual(framer.buffered, 0)

    def test_header_claiming_ten_megabytes_does_not_wait(self) -> None:
        """With an 8-digit length field, a header claiming 10 MB is judged at once too."""
        # A layout with an 8-digit length field can claim 10 MB; still judged at once.
        text = (importlib.resources.files("ccl.data") / "telegram-layout.toml").read_text(
            "utf-8")
        for name, old, new in (("length", 6, 8), ("spare", 6, 4)):
            field = f'{{ name = "{name}",'.ljust(24)
            self.assertIn(f"{field}width = {old}", text)
            text = text.replace(f"{field}width = {old}", f"{field}width = {new}", 1)
        path = Path(self.mktemp())
        path.write_text(text, encoding="utf-8")
        layouts = load_layouts(path)
        self.assertEqual((layouts.header_length, layouts.get("4003").length), (40, 80))
        speed = RAW["speed"]  # re-laid: length 14-22, date+time 22-36, spare 36-40
        good = speed[:14] + b"00000080" + speed[20:34] + b"    " + speed[40:]
        claim = good[:14] + b"10000000" + good[22:]
        framer = TelegramFramer(layouts)
        items = framer.feed(claim[:40])
        self.assertEqual(framer.buffered, 40)  # held as garbage, not waited on
        items += framer.feed(good)
        self.assertEqual(without_reasons(items),
                         [Garbage(claim[:40], BAD_LENGTH, "", "4003", 4), Frame(good)])
        self.assertIn("10000000", items[0].reason)
        self.assertEqual(decode(good, layouts).fields["line_speed"], 75)

    def test_junk_without_header_beyond_max_garbage(self) -> None:
        """Junk with no header comes out in max_garbage pieces, nothing lost, nothing left buffered."""
        framer = TelegramFramer(LAYOUTS, max_garbage=1000)
        junk = bytes(range(256)) * 10  # 2560 bytes, no TC code anywhere
        items = framer.feed(junk)
        self.assertEqual([len(i.raw) for i in items], [1000, 1000])
        self.assertEqual([(i.code, i.continued) for i in items],
                         [(HEADER_UNREADABLE, False), (HEADER_UNREADABLE, True)])
        self.assertLess(framer.buffered, 1000 + LAYOUTS.probe_length)
        rest = framer.flush(final=True)
        self.assertEqual(b"".join(i.raw for i in items + rest), junk)
        self.assertEqual(framer.buffered, 0)

    def test_ten_megabytes_of_junk_in_segments(self) -> None:
        """Ten megabytes of junk pass in bounded pieces, and a telegram after them is framed."""
        framer = TelegramFramer(LAYOUTS)
        segment = (b"\x00JUNK 400 4003 9999 " * 3277)[:65536]
        dropped = 0
        for _ in range(160):
            for item in framer.feed(segment):
                self.assertIsInstance(item, Garbage)
                self.assertLessEqual(len(item.raw), 64 * 1024)
                dropped += len(item.raw)
            self.assertLessEqual(framer.buffered, 64 * 1024 + LAYOUTS.probe_length)
        items = framer.feed(RAW["speed"])
        self.assertEqual(items[-1], Frame(RAW["speed"]))
        dropped += sum(len(i.raw) for i in items[:-1])
        self.assertEqual(dropped, 160 * 65536)

    def test_length_with_leading_spaces_is_a_valid_header(self) -> None:
        """A length field with leading spaces is a valid header."""
        spaced = RAW["speed"][:14] + b"    80" + RAW["speed"][20:]
        self.assertEqual(without_reasons(run([b"zz" + spaced])),
                         [Garbage(b"zz", HEADER_UNREADABLE, "", None, None), Frame(spaced)])


class FlushTests(SynchronousTestCase):
    def test_half_telegram_then_final_flush(self) -> None:
        """Half a telegram stays buffered on an idle flush and becomes bad-length garbage on the final one."""
        framer = TelegramFramer(LAYOUTS)
        self.assertEqual(framer.feed(RAW["schedule"][:100]), [])
        self.assertEqual(framer.flush(), [])  # idle: still a plausible telegram
        self.assertEqual(framer.buffered, 100)
        [garbage] = framer.flush(final=True)
        self.assertEqual((garbage.raw, garbage.code, garbage.tc_code, garbage.sequence_no),
                         (RAW["schedule"][:100], BAD_LENGTH, "4000", 1))
        self.assertIn("100 of 180", garbage.reason)
        self.assertEqual(framer.buffered, 0)
        self.assertEqual(framer.feed(RAW["cut"]), [Frame(RAW["cut"])])

    def test_idle_flush_keeps_a_plausible_header_start(self) -> None:
        """An idle flush gives up the junk but keeps what may start a header."""
        framer = TelegramFramer(LAYOUTS)
        self.assertEqual(framer.feed(b"JUNK!!40"), [])
        [garbage] = framer.flush()
        self.assertEqual((garbage.raw, garbage.code), (b"JUNK!!", HEADER_UNREADABLE))
        self.assertEqual(framer.buffered, 2)
        self.assertEqual(framer.feed(RAW["speed"][2:]), [Frame(RAW["speed"])])

    def test_idle_flush_during_a_garbage_run(self) -> None:
        """An idle flush during a garbage run gives up the garbage and keeps the telegram's start."""
        framer = TelegramFramer(LAYOUTS)
        self.assertEqual(framer.feed(b"X" * 30 + RAW["speed"][:10]), [])
        [garbage] = framer.flush()
        self.assertEqual(garbage.raw, b"X" * 30)
        self.assertEqual(framer.buffered, 10)
        self.assertEqual(framer.feed(RAW["speed"][10:]), [Frame(RAW["speed"])])

    def test_idle_flush_partial_length_field(self) -> None:
        """An idle flush keeps a partial header only while its length field can still be right."""
        # "4003CCL1000004 1" cannot be 4003's length (80) any more; "4003CCL100000400" can.
        for tail, kept in ((b"4003CCL1000004 1", 0), (b"4003CCL100000400", 16)):
            framer = TelegramFramer(LAYOUTS)
            framer.feed(b"##" + tail)
            framer.flush()
            self.assertEqual(framer.buffered, kept, tail)

    def test_idle_flush_drops_an_implausible_tail(self) -> None:
        """An idle flush drops a tail that cannot start a header."""
        framer = TelegramFramer(LAYOUTS)
        framer.feed(b"X" * 30 + b"5")
        [garbage] = framer.flush()
        self.assertEqual(garbage.raw, b"X" * 30 + b"5")
        self.assertEqual((framer.buffered, framer.flush(final=True)), (0, []))

    def test_nothing_buffered(self) -> None:
        """With nothing fed, feeding and flushing give nothing; max_garbage must be positive."""
        framer = TelegramFramer(LAYOUTS)
        self.assertEqual((framer.feed(b""), framer.flush(), framer.flush(final=True)),
                         ([], [], []))
        self.assertRaises(ValueError, TelegramFramer, LAYOUTS, max_garbage=0)
