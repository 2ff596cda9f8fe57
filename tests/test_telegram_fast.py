"""decode's fast path (ccl.domain.telegrams.fast) answers exactly like the general decoder."""

import random
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.telegrams import TelegramRejected, codec, decode, load_layouts
from tests.support.mes import alive, cut, schedule, speed, wpd

LAYOUTS = load_layouts()
VECTORS = [bytes.fromhex(line.split("\t")[1])
           for line in (Path(__file__).parent / "data" / "vectors.txt").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]


class FastPathTests(SynchronousTestCase):
    def general(self, raw):
        self.patch(codec, "fast_fields", lambda raw, layouts: None)
        try:
            return codec.decode(raw, LAYOUTS)
        finally:
            self.patch(codec, "fast_fields", FAST)

    def test_same_telegram_or_same_refusal_on_every_vector_and_many_variants(self):
        """On every vector and thousands of corruptions, the fast path decodes or refuses as the general decoder."""
        rng = random.Random(3)
        samples = VECTORS + [schedule(1, customer="똠방각하"), schedule(2, thickness=None), cut(3), wpd(4),
                             speed(5), alive(6)]
        for raw in list(samples):
            for _ in range(80):  # single-byte corruptions anywhere, of every kind of field
                mutated = bytearray(raw)
                mutated[rng.randrange(len(raw))] = rng.choice(b" 0123456789AZ\x00\xff\xb0\xa1-+")
                samples.append(bytes(mutated))
        accepted = refused = 0
        for raw in samples:
            try:
                general = self.general(raw)
            except TelegramRejected as refusal:
                with self.assertRaises(TelegramRejected) as caught:
                    decode(raw, LAYOUTS)
                self.assertEqual((caught.exception.code, caught.exception.reason, caught.exception.tc_code,
                                  caught.exception.sequence_no),
                                 (refusal.code, refusal.reason, refusal.tc_code, refusal.sequence_no))
                refused += 1
                continue
            fast = decode(raw, LAYOUTS)
            self.assertEqual(fast, general)
            self.assertEqual(fast.as_flat_dict(), general.as_flat_dict())
            self.assertEqual((fast.sent_at, fast.layout), (general.sent_at, general.layout))
            accepted += 1
        self.assertGreater(accepted, 200)
        self.assertGreater(refused, 100)

    def test_header_verdicts_are_the_same_with_and_without_the_quick_check(self):
        """The header verdict is the same with and without the quick check, on valid and corrupted headers."""
        from ccl.domain.telegrams import header

        rng = random.Random(5)
        heads = []
        for raw in VECTORS + [schedule(1), speed(2), alive(3), cut(4)]:
            heads.append(raw[:40])
            for _ in range(200):
                mutated = bytearray(raw[:40])
                mutated[rng.randrange(20)] = rng.choice(b" 0123456789AZ\x00\xff")
                heads.append(bytes(mutated))
            heads.append(raw[:12])  # too short to judge
        valid = 0
        for head in heads:
            quick = header.judge_header(head, LAYOUTS)
            self.patch(header, "_quick_valid", lambda head, layouts: None)
            general = header.judge_header(head, LAYOUTS)
            self.patch(header, "_quick_valid", QUICK)
            self.assertEqual(quick, general, head)
            valid += general.code is None
        self.assertGreater(valid, 50)


FAST = codec.fast_fields
QUICK = __import__("ccl.domain.telegrams.header", fromlist=["_quick_valid"])._quick_valid
