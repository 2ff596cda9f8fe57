"""The listing filters of refused telegrams and dead letters, and the byte view of a telegram."""

from __future__ import annotations

import datetime

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.refusals import COUNT_CAP, BadFilter, DeadLetterFilter, Listing, Paging, Period, RejectedFilter
from ccl.domain.telegrams import PLANT_TZ, load_layouts
from ccl.domain.telegrams.dissect import SHOWN_BYTES, dissect
from tests.support.mes import schedule, speed

LAYOUTS = load_layouts()
TODAY = datetime.date(2026, 3, 1)


class FilterTests(SynchronousTestCase):
    def test_default_period_is_the_last_seven_plant_days_ending_today(self):
        """Without arguments, the filter covers the seven plant days ending on the given today, page 1 of 50."""
        chosen = RejectedFilter.from_args({}, TODAY)
        self.assertEqual((chosen.period.first, chosen.period.last), (datetime.date(2026, 2, 23), TODAY))
        self.assertEqual((chosen.tc_code, chosen.result_code, chosen.listener), ("", "", ""))
        self.assertEqual(chosen.paging, Paging(1, 50))

    def test_period_bounds_are_plant_midnights(self):
        """A period starts and ends at plant-time (Asia/Seoul) midnights."""
        period = Period(datetime.date(2026, 2, 28), datetime.date(2026, 2, 28))
        self.assertEqual(period.since, datetime.datetime(2026, 2, 27, 15, 0, tzinfo=datetime.timezone.utc))
        self.assertEqual(period.until, datetime.datetime(2026, 2, 28, 15, 0, tzinfo=datetime.timezone.utc))
        self.assertEqual(period.until.astimezone(PLANT_TZ).date(), datetime.date(2026, 3, 1))

    def test_filters_are_checked_and_reproduced_as_arguments(self):
        """A filter built from arguments gives back the same arguments and the same filter."""
        chosen = RejectedFilter.from_args({"from": "2026-02-01", "to": "2026-02-10", "tc": "4000", "code": "12",
                                           "listener": "mes", "page": "3", "size": "25"}, TODAY)
        self.assertEqual(chosen.paging.offset, 50)
        self.assertEqual(chosen.as_args(page=1), {"from": "2026-02-01", "to": "2026-02-10", "tc": "4000",
                                                  "code": "12", "listener": "mes", "page": "1", "size": "25"})
        self.assertEqual(RejectedFilter.from_args(chosen.as_args(), TODAY), chosen)

    def test_nonsense_is_a_bad_filter_naming_the_argument(self):
        """A bad date, range, TC, code, listener, page or size is a BadFilter naming that argument."""
        for args, name in [({"from": "2026-13-01"}, "from"), ({"from": "2026-02-10", "to": "2026-02-01"}, "from"),
                           ({"from": "2020-01-01"}, "from"), ({"tc": "40'0"}, "tc"), ({"code": "1"}, "code"),
                           ({"listener": "x"}, "listener"), ({"page": "0"}, "page"), ({"size": "-5"}, "size")]:
            with self.assertRaises(BadFilter, msg=str(args)) as caught:
                RejectedFilter.from_args(args, TODAY)
            self.assertTrue(str(caught.exception).startswith(name), str(caught.exception))

    def test_an_unoffered_page_size_falls_back_to_the_default(self):
        """A page size not offered falls back to the default of 50."""
        self.assertEqual(Paging.from_args({"size": "30"}).size, 50)

    def test_dead_letter_filter_views_and_channel(self):
        """The dead-letter filter takes a known view, channel and TC; anything else is a BadFilter."""
        self.assertEqual(DeadLetterFilter.from_args({}, TODAY).view, "dead")
        chosen = DeadLetterFilter.from_args({"view": "resent", "channel": "wpd", "tc": "4002"}, TODAY)
        self.assertEqual((chosen.view, chosen.channel, chosen.tc_code), ("resent", "wpd", "4002"))
        for bad in ({"view": "all"}, {"channel": "W PD"}):
            self.assertRaises(BadFilter, DeadLetterFilter.from_args, bad, TODAY)

    def test_listing_pages_and_cap(self):
        """A listing's page count follows its total, capped when the count was cut off."""
        self.assertEqual(Listing((), 0, False, Paging(1, 25)).pages, 1)
        self.assertEqual(Listing((), 51, False, Paging(1, 25)).pages, 3)
        self.assertEqual(Listing((), COUNT_CAP, True, Paging(1, 50)).pages, COUNT_CAP // 50)


class DissectTests(SynchronousTestCase):
    def test_a_good_telegram_shows_every_field_with_its_value_and_korean_text(self):
        """A good telegram is dissected into every field with its value, Korean text, and hex/ASCII rows."""
        raw = schedule(7, customer="이알텍㈜")
        view = dissect(raw, LAYOUTS)
        self.assertEqual((view.length, view.layout_name, view.verdict_code), (180, "schedule", None))
        fields = {f.name: f for f in view.fields if f.name != "spare"}
        self.assertEqual(fields["tc_code"].value, "4000")
        self.assertEqual(fields["sequence_no"].value, "7")
        self.assertEqual(fields["customer_name"].value, "이알텍㈜")
        self.assertEqual(fields["customer_name"].part, "body")
        self.assertTrue(all(f.problem is None for f in view.fields))
        self.assertIn("이알텍㈜", view.text)
        self.assertEqual(len(view.rows), 12)  # 180 bytes, 16 a row
        self.assertEqual(view.rows[0].hex.split("  ")[0], "34 30 30 30 43 43 4C 31")
        self.assertEqual(view.rows[0].ascii, "4000CCL100000700")

    def test_the_offending_field_carries_the_problem_and_the_verdict_its_code(self):
        """The field that makes a telegram refused carries the problem, and the verdict its NAK code."""
        raw = bytearray(speed(3))
        raw[40:44] = b"12x4"  # line_speed
        view = dissect(bytes(raw), LAYOUTS)
        self.assertEqual(view.verdict_code, "12")
        bad = [f for f in view.fields if f.problem]
        self.assertEqual([f.name for f in bad], ["line_speed"])
        self.assertEqual((bad[0].start, bad[0].end, bad[0].text), (40, 44, "12x4"))

    def test_unknown_tc_shows_the_header_only_and_a_short_telegram_its_missing_fields(self):
        """An unknown TC shows only the header; a short telegram marks its cut-short and missing fields."""
        raw = b"9999" + speed(3)[4:]
        view = dissect(raw, LAYOUTS)
        self.assertEqual((view.verdict_code, view.layout_name), ("10", None))
        self.assertTrue(all(f.part == "header" for f in view.fields))
        short = dissect(speed(3)[:30], LAYOUTS)
        self.assertEqual(short.verdict_code, "11")  # 30 bytes, not the 80 its length field says
        problems = {f.name: f.problem for f in short.fields if f.problem}
        self.assertIn("cut short", problems["time"])  # bytes 28-34, the telegram ends at 30
        self.assertIn("missing", problems["line_speed"])

    def test_bytes_beyond_the_layout_and_undecodable_bytes_never_raise(self):
        """Extra bytes, undecodable bytes and huge inputs are shown (capped), never raise."""
        raw = speed(3) + b"\xff\xfe\x00garbage"
        view = dissect(raw, LAYOUTS)
        self.assertEqual(view.fields[-1].part, "extra")
        self.assertEqual((view.fields[-1].start, view.fields[-1].end), (80, len(raw)))
        self.assertIn("\ufffd", view.text)
        self.assertIn("·", view.text)  # the NUL byte
        huge = dissect(b"\x81" * (SHOWN_BYTES + 100), LAYOUTS)
        self.assertEqual((huge.length, huge.shown, len(huge.rows)), (SHOWN_BYTES + 100, SHOWN_BYTES, SHOWN_BYTES // 16))
        self.assertEqual(dissect(b"", LAYOUTS).rows, ())
