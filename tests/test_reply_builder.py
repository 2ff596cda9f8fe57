"""The fast reply builder writes exactly what the real encoder writes."""

import datetime
import random

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.reply_builder import ReplyBuilder
from ccl.domain.telegrams import PLANT_TZ, encode_ack, load_layouts

LAYOUTS = load_layouts()


class ReplyBuilderTests(SynchronousTestCase):
    def test_same_bytes_as_encode_ack(self):
        """The fast ACK/NAK builder writes byte for byte what encode_ack writes, across codes, sequences and seconds."""
        builder = ReplyBuilder(LAYOUTS, "CCL1")
        rng = random.Random(7)
        now = 1751524146.25
        for expected_sequence in range(1, 3001):
            tc = rng.choice(["4000", "4001", "4002", "4003", "0000"])
            acked = rng.choice([0, 1, 999999, rng.randrange(1, 999999)])
            code = rng.choice(["00", "10", "11", "12", "13"])
            now += rng.choice([0, 0, 0.3, 1.0, 86400])
            built = builder.build(tc, acked, code, now)
            real = encode_ack(LAYOUTS, acked_tc_code=tc, acked_sequence_no=acked, result_code=code,
                              line_code="CCL1", sequence_no=expected_sequence,
                              sent_at=datetime.datetime.fromtimestamp(int(now), PLANT_TZ))
            self.assertEqual(built, real)

    def test_sequence_wraps_after_999999(self):
        """The reply sequence number wraps from 999999 to 1, written as six digits."""
        builder = ReplyBuilder(LAYOUTS)
        builder.sequence = 999998
        builder.build("4000", 1, "00", 0.0)
        self.assertEqual(builder.sequence, 999999)
        built = builder.build("4000", 1, "00", 0.0)
        self.assertEqual(builder.sequence, 1)
        start, end = LAYOUTS.header_spans["sequence_no"]
        self.assertEqual(built[start:end], b"000001")
